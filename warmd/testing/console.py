"""A real one-node cluster serving the console, with a named token per role: for the console's
HTTP and browser tests and for trying the console by hand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from warmd.access import Role
from warmd.admin.client import AdminClient
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import free_port


class Console:
    """A one-node cluster serving the console, and a token per role."""

    def __init__(self, cluster: ProcessCluster, port: int) -> None:
        self.cluster = cluster
        self.base = f"http://127.0.0.1:{port}"
        self.secrets: dict[Role, str] = {}

    def add_token(self, name: str, role: str, **args: Any) -> str:
        return str(self.cluster.call(1, "token-add", name=name, role=role, **args)["secret"])

    def as_token(self, secret: str, command: str, **args: Any) -> Any:
        """An admin-socket call acting as a token (what `warmctl --token` sends)."""
        with AdminClient(self.cluster.nodes[1].socket_path, token=secret) as client:
            return client.call(command, **args)

    def headers(self, role: Role | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if role is not None:
            headers["Authorization"] = f"Bearer {self.secrets[role]}"
        return headers


@contextmanager
def running_console() -> Iterator[Console]:
    """Start the node with `[web]` on a free loopback port; add `viewer-1`, `operator-1` and
    `admin-1` tokens (through the admin socket, as its uid: an admin)."""
    port = free_port()
    with ProcessCluster(1) as cluster:
        cluster.nodes[1].web = {"enabled": True, "listen": f"127.0.0.1:{port}"}
        cluster.write_config(cluster.nodes[1])
        cluster.start_all().wait_for_leader(timeout_s=20)
        console = Console(cluster, port)
        for role in Role:
            console.secrets[role] = console.add_token(f"{role.name.lower()}-1", role.name.lower())
        yield console
