"""Start and stop REAL redis-server (standalone and cluster) and memcached processes.

Shipped test kit: each server runs on a free loopback port in its own temp dir, so tests
and benchmarks exercise the real protocol; `stop()` always reaps the process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from warmd.errors import WarmdError

STARTUP_TIMEOUT_S = 10.0
CLUSTER_BUS_OFFSET = 10000


class ServerStartError(WarmdError):
    """A test server binary is missing or did not come up in time."""


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free and below 65536 as well."""
    for _ in range(200):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET < 65536 and _port_is_free(port + CLUSTER_BUS_OFFSET):
            return port
    for port in range(20000, 55000, 7):  # the kernel kept choosing high ports
        if _port_is_free(port) and _port_is_free(port + CLUSTER_BUS_OFFSET):
            return port
    raise ServerStartError("no free port pair for a cluster node")


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise ServerStartError(f"{binary} not found on PATH (Debian: redis-server/memcached)")
    return path


def _wait_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll until the port accepts a connection; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(f"server on port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise ServerStartError(f"server on port {port} did not listen within {timeout_s}s")


@dataclass
class ServerProcess:
    """One running server process; `stop()` terminates it and removes its directory."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    owns_directory: bool = True

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Terminate the process (kill after 5 s) and delete its temp dir."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_redis(
    *, maxmemory_bytes: int = 0, extra_args: tuple[str, ...] = (), directory: Path | None = None,
    port: int | None = None,
) -> ServerProcess:
    """Start a redis-server without persistence on a free port.

    `maxmemory_bytes` > 0 sets `maxmemory` with `allkeys-lru`, for eviction tests.
    """
    binary = _require("redis-server")
    owns = directory is None
    work_dir = Path(tempfile.mkdtemp(prefix="warmd-redis-")) if directory is None else directory
    port = free_port() if port is None else port
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(work_dir),
            "--save", "", "--appendonly", "no", "--protected-mode", "no",
            "--logfile", str(work_dir / "redis.log")]
    if maxmemory_bytes > 0:
        args += ["--maxmemory", str(maxmemory_bytes), "--maxmemory-policy", "allkeys-lru"]
    args += list(extra_args)
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = ServerProcess("redis", port, process, work_dir, owns)
    try:
        _wait_port(port, process, STARTUP_TIMEOUT_S)
    except ServerStartError:
        server.stop()
        raise
    return server


def start_memcached(*, memory_mb: int = 64, threads: int = 2) -> ServerProcess:
    """Start a memcached on a free loopback port (TCP only)."""
    binary = _require("memcached")
    work_dir = Path(tempfile.mkdtemp(prefix="warmd-memcached-"))
    port = free_port()
    args = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", str(memory_mb),
            "-t", str(threads)]
    if os.geteuid() == 0:  # memcached refuses to run as root unless told which user to be
        args += ["-u", "root"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = ServerProcess("memcached", port, process, work_dir)
    try:
        _wait_port(port, process, STARTUP_TIMEOUT_S)
    except ServerStartError:
        server.stop()
        raise
    return server


def start_redis_sentinel(service_name: str, master_port: int) -> ServerProcess:
    """Start `redis-server --sentinel` monitoring 127.0.0.1:`master_port` as `service_name`
    (quorum 1); the config file lives in the sentinel's temp dir, which it rewrites."""
    binary = _require("redis-server")
    work_dir = Path(tempfile.mkdtemp(prefix="warmd-sentinel-"))
    port = free_port()
    config = work_dir / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {work_dir}\nprotected-mode no\n"
        f"sentinel monitor {service_name} 127.0.0.1 {master_port} 1\n")
    process = subprocess.Popen([binary, str(config), "--sentinel"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = ServerProcess("redis-sentinel", port, process, work_dir)
    try:
        _wait_port(port, process, STARTUP_TIMEOUT_S)
    except ServerStartError:
        server.stop()
        raise
    return server


@dataclass
class RedisCluster:
    """A running Redis Cluster of masters only; `stop()` stops every node."""

    nodes: list[ServerProcess] = field(default_factory=list)
    directory: Path | None = None

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_redis_cluster(master_count: int = 3) -> RedisCluster:
    """Start `master_count` cluster-enabled redis-servers and join them with redis-cli."""
    redis_cli = _require("redis-cli")
    directory = Path(tempfile.mkdtemp(prefix="warmd-cluster-"))
    cluster = RedisCluster(directory=directory)
    try:
        for position in range(master_count):
            node_dir = directory / f"node{position}"
            node_dir.mkdir()
            cluster.nodes.append(start_redis(
                directory=node_dir, port=free_cluster_port(),
                extra_args=("--cluster-enabled", "yes", "--cluster-config-file",
                            str(node_dir / "nodes.conf"), "--cluster-node-timeout", "5000"),
            ))
        subprocess.run(
            [redis_cli, "--cluster", "create", *cluster.addresses, "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )
        _wait_cluster_ok(redis_cli, cluster.nodes)
    except (subprocess.SubprocessError, ServerStartError) as error:
        cluster.stop()
        raise ServerStartError(f"redis cluster did not form: {error}") from error
    return cluster


def _wait_cluster_ok(redis_cli: str, nodes: list[ServerProcess]) -> None:
    """Wait until every node reports cluster_state:ok (slots agreed)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S * 2
    pending = list(nodes)
    while pending and time.monotonic() < deadline:
        node = pending[0]
        info = subprocess.run(
            [redis_cli, "-p", str(node.port), "cluster", "info"],
            capture_output=True, text=True, timeout=5, check=False,
        ).stdout
        if "cluster_state:ok" in info:
            pending.pop(0)
        else:
            time.sleep(0.05)
    if pending:
        raise ServerStartError("cluster_state did not become ok")
