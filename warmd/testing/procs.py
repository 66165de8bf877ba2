"""ProcessCluster: N real `warmd run` processes on loopback, for tests and local trials.

It writes a shared secret and one config per node into a fresh temporary directory (short,
so admin socket paths stay under the kernel's 107-byte limit), starts each daemon in its
own process group with its log in `node<ID>/daemon.log`, finds the leader through the admin
sockets, kills (any signal) and restarts nodes, and always cleans up: `close()` kills every
process group it started and removes the directory. Use it as a context manager.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from warmd.admin.client import AdminClient, AdminClientError
from warmd.errors import WarmdError
from warmd.testing.servers import free_port

_T = TypeVar("_T")
STOP_TIMEOUT_S = 10.0


class ClusterTimeout(WarmdError):
    """The cluster did not reach the awaited state in time (the message says which)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Raft timing for test clusters: short ticks keep elections within 250-500 ms, long
    enough that a loaded 2-core machine does not see spurious elections."""

    tick_interval_ms: int = 10
    election_timeout_ticks: int = 25
    heartbeat_ticks: int = 2
    snapshot_interval_entries: int = 100_000
    proposal_timeout_ms: int = 3000


@dataclass(slots=True)
class NodeProcess:
    node_id: int
    port: int
    directory: Path
    join: bool
    process: subprocess.Popen[bytes] | None = None
    extra_environment: dict[str, str] = field(default_factory=dict)
    # The [executor] section; test clusters are Raft-only unless a test enables it.
    executor: dict[str, int | bool] = field(default_factory=lambda: {"enabled": False})
    # The [web] section; test clusters serve no console unless a test enables it.
    web: dict[str, str | bool] = field(default_factory=lambda: {"enabled": False})
    # TOML appended to the generated config ([caches.X], [sources.X], [planner] ...).
    extra_config: str = ""
    # The console and API on 127.0.0.1:web_port when set; test daemons serve no web otherwise.
    web_port: int | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "warmd.toml"

    @property
    def socket_path(self) -> Path:
        return self.directory / "admin.sock"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "daemon.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ProcessCluster:
    """See the module docstring. `ProcessCluster(3).start_all().wait_for_leader()`."""

    def __init__(self, size: int, timing: Timing | None = None, cluster_id: str = "warmd-test",
                 secret: bytes | None = None) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.timing = timing or Timing()
        self.cluster_id = cluster_id
        self.root = Path(tempfile.mkdtemp(prefix="warmd-"))
        self.secret_path = self.root / "cluster.secret"
        self._write_secret(self.secret_path, secret or secrets.token_hex(32).encode())
        self.nodes: dict[int, NodeProcess] = {}
        for node_id in range(1, size + 1):
            self._make_node(node_id, join=False)
        for node in self.nodes.values():
            self.write_config(node)

    # ------------------------------------------------------------------ configs

    @staticmethod
    def _write_secret(path: Path, secret: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secret)

    def _make_node(self, node_id: int, join: bool) -> NodeProcess:
        directory = self.root / f"node{node_id}"
        directory.mkdir()
        node = NodeProcess(node_id, free_port(), directory, join)
        self.nodes[node_id] = node
        return node

    def write_config(self, node: NodeProcess, secret_path: Path | None = None) -> None:
        """(Re)write a node's config; the founding members are every non-joining node."""
        timing = self.timing
        executor = "\n".join(f"{key} = {str(value).lower()}" for key, value in node.executor.items())
        web_settings: dict[str, str | bool] = dict(node.web)
        if node.web_port:  # the console on a port of its own, as the console tests ask
            web_settings |= {"enabled": True, "listen": f"127.0.0.1:{node.web_port}"}
        web = "\n".join(f"{key} = {json.dumps(value)}" for key, value in web_settings.items())
        peers = "\n".join(
            f'[peers.{other.node_id}]\naddress = "{other.address}"'
            for other in self.nodes.values() if not other.join
        )
        node.config_path.write_text(f"""\
[node]
id = {node.node_id}
listen = "{node.address}"
advertise = "{node.address}"
data_dir = "{node.data_dir}"
join = {"true" if node.join else "false"}

[cluster]
id = "{self.cluster_id}"
secret_file = "{secret_path or self.secret_path}"

{peers}

[raft]
tick_interval_ms = {timing.tick_interval_ms}
election_timeout_ticks = {timing.election_timeout_ticks}
heartbeat_ticks = {timing.heartbeat_ticks}
snapshot_interval_entries = {timing.snapshot_interval_entries}
proposal_timeout_ms = {timing.proposal_timeout_ms}
segment_bytes = 65536

[admin]
socket = "{node.socket_path}"

[web]
{web}

[logging]
level = "info"
format = "json"

[executor]
{executor}

{node.extra_config}
""")

    def add_joining_node(self, node_id: int) -> NodeProcess:
        """A node with `join = true` whose [peers] lists the current founding members."""
        node = self._make_node(node_id, join=True)
        self.write_config(node)
        return node

    # ------------------------------------------------------------------ processes

    def start(self, node_id: int, environment: dict[str, str] | None = None) -> NodeProcess:
        """Start `warmd run` for one node in its own process group (log appended)."""
        node = self.nodes[node_id]
        if node.running():
            raise RuntimeError(f"node {node_id} is already running")
        env = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
        env.update(node.extra_environment)
        env.update(environment or {})
        with open(node.log_path, "ab") as log_file:
            node.process = subprocess.Popen(
                [sys.executable, "-m", "warmd", "run", "--config", str(node.config_path)],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,
            )
        return node

    def start_all(self) -> ProcessCluster:
        for node_id in self.nodes:
            self.start(node_id)
        return self

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> int | None:
        """Send `sig` to the node's process group and wait for it; returns its exit status."""
        node = self.nodes[node_id]
        if node.process is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, sig)
        try:
            status = node.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            status = node.process.wait(timeout=STOP_TIMEOUT_S)
        node.process = None
        return status

    def stop(self, node_id: int) -> int | None:
        """A clean stop (SIGTERM); returns the exit status."""
        return self.kill(node_id, signal.SIGTERM)

    def close(self) -> None:
        """Kill every process group started here and delete the directory."""
        for node in self.nodes.values():
            if node.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.process.wait(timeout=STOP_TIMEOUT_S)
                node.process = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ProcessCluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ admin

    def call(self, target: int, command: str, /, timeout_s: float = 10.0, **args: Any) -> Any:
        """One admin call to node `target`; raises AdminClientError as warmctl would see it."""
        with AdminClient(self.nodes[target].socket_path, timeout_s=timeout_s) as client:
            return client.call(command, **args)

    def status(self, node_id: int) -> dict[str, Any] | None:
        """The node's status, or None when it does not answer."""
        if not self.nodes[node_id].running():
            return None
        try:
            return self.call(node_id, "status", timeout_s=2.0)
        except AdminClientError:
            return None

    def wait_until(self, condition: Callable[[], _T | None], timeout_s: float, what: str) -> _T:
        """Poll `condition` until it returns a truthy value; ClusterTimeout names `what`."""
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() < deadline_s:
            value = condition()
            if value:
                return value
            time.sleep(0.02)
        raise ClusterTimeout(f"timed out after {timeout_s} s waiting for {what}\n{self.describe()}")

    def leader(self, among: Iterator[int] | None = None) -> int | None:
        """The leader that every answering node in `among` (default: running) agrees on."""
        ids = list(among) if among is not None else [n for n, p in self.nodes.items() if p.running()]
        statuses = [status for status in map(self.status, ids) if status is not None]
        leaders = {status["leader_id"] for status in statuses}
        if len(statuses) < len(ids) or len(leaders) != 1 or 0 in leaders:
            return None
        leader = leaders.pop()
        # A leader that stops answering between the two reads is no leader (was a TypeError).
        if leader not in ids or (self.status(leader) or {}).get("role") != "leader":
            return None
        return int(leader)

    def wait_for_leader(self, timeout_s: float = 10.0, among: list[int] | None = None) -> int:
        """The leader all running nodes (or `among`) agree on."""
        return self.wait_until(lambda: self.leader(iter(among) if among else None), timeout_s,
                               "an agreed leader")

    def wait_applied(self, node_id: int, index: int, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait until the node has applied `index`; returns its status."""
        def applied() -> dict[str, Any] | None:
            status = self.status(node_id)
            return status if status is not None and status["applied_index"] >= index else None
        return self.wait_until(applied, timeout_s, f"node {node_id} to apply index {index}")

    def describe(self) -> str:
        """Each node's state and the tail of its log, for failure messages."""
        lines = []
        for node_id, node in self.nodes.items():
            lines.append(f"--- node {node_id} running={node.running()} status={self.status(node_id)}")
            lines.extend(node.log_text().splitlines()[-8:])
        return "\n".join(lines)
