"""Start-up on real processes with `[sources]` (issue #14 item 1): every start-up failure
exits promptly with its status and leaves no process behind (the analysis workers live in
the daemon's process group), and a Redis db other than 0 no longer stops the daemon.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from warmd.testing.procs import NodeProcess, ProcessCluster

EXIT_ERROR = 1
EXIT_CONFIG = 78
EXIT_OS_ERROR = 71
EXIT_PROMPT_S = 15.0
LOG_LINES = 3000


def _with_source_and_cache(cluster: ProcessCluster, redis_port: int, db: int = 1) -> NodeProcess:
    """Node 1 tails a non-empty access log (so its analysis worker starts at once), runs an
    executor and warms a Redis database other than 0."""
    node = cluster.nodes[1]
    log = node.directory / "access.log"
    log.write_text("".join(
        f'127.0.0.1 - - [06/Dec/2026:10:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
        f'"GET /item/{i % 97} HTTP/1.1" 200 5 "-" "curl/8"\n' for i in range(LOG_LINES)))
    node.executor = {"enabled": True}
    node.extra_config = f"""
[caches.redis]
kind = "redis"
address = "127.0.0.1:{redis_port}"
db = {db}

[sources.web]
paths = ["{log}"]
format = "combined"
"""
    cluster.write_config(node)
    return node


def _group_is_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_exit(node: NodeProcess) -> int:
    assert node.process is not None
    pid = node.process.pid
    try:
        status = node.process.wait(timeout=EXIT_PROMPT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the daemon did not exit within {EXIT_PROMPT_S} s:\n{node.log_text()}")
    deadline_s = time.monotonic() + 5.0
    while not _group_is_gone(pid) and time.monotonic() < deadline_s:
        time.sleep(0.05)
    assert _group_is_gone(pid), f"processes of the daemon outlived it:\n{node.log_text()}"
    node.process = None
    return status


@pytest.fixture
def cluster() -> Iterator[ProcessCluster]:
    with ProcessCluster(1) as made:
        yield made


def _port_in_use(node: NodeProcess) -> Callable[[], object]:
    listener = socket.create_server(("127.0.0.1", node.port))
    return listener.close


def _socket_is_a_directory(node: NodeProcess) -> Callable[[], object]:
    node.socket_path.mkdir()
    (node.socket_path / "keep").write_text("")
    return lambda: None


def _bad_certificate(node: NodeProcess) -> Callable[[], object]:
    for name in ("cert.pem", "key.pem", "ca.pem"):
        path = node.directory / name
        path.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        path.chmod(0o600)
    node.extra_config = node.extra_config.replace("[caches.redis]", f"""
[cluster.tls]
cert_file = "{node.directory}/cert.pem"
key_file = "{node.directory}/key.pem"
ca_file = "{node.directory}/ca.pem"

[caches.redis]""")
    return lambda: None


def _write_bad_config(cluster: ProcessCluster, node: NodeProcess,
                      breaker: Callable[[NodeProcess], Callable[[], object]]) -> Callable[[], object]:
    undo = breaker(node)
    cluster.write_config(node)
    return undo


@pytest.mark.parametrize(("breaker", "status", "message"), [
    (_port_in_use, EXIT_OS_ERROR, "address already in use"),
    (_socket_is_a_directory, EXIT_ERROR, "admin.sock exists and is not a socket"),
    (_bad_certificate, EXIT_CONFIG, "cluster.tls"),
])
def test_startup_failure_with_sources_exits_with_its_status(
        cluster: ProcessCluster, redis_server, breaker, status: int, message: str) -> None:
    """Each start-up failure stops what was started and exits with its own status, at once,
    with no analysis worker left running."""
    node = _with_source_and_cache(cluster, redis_server.port)
    undo = _write_bad_config(cluster, node, breaker)
    try:
        cluster.start(1)
        assert _wait_exit(node) == status
    finally:
        undo()
    assert message.lower() in node.log_text().lower()
    assert "Traceback" not in node.log_text()


def test_redis_db_other_than_zero_with_sources_runs_and_stops(
        cluster: ProcessCluster, redis_server) -> None:
    """The issue's file (`db = 1` and a source) starts, serves, and stops on SIGTERM with 0;
    `warmd check-config` agrees with `warmd run` about it."""
    node = _with_source_and_cache(cluster, redis_server.port, db=1)
    checked = subprocess.run([sys.executable, "-m", "warmd", "check-config", "--config",
                              str(node.config_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    cluster.start(1)
    cluster.wait_for_leader()
    cluster.wait_until(lambda: "log_file_tailed" in node.log_text(), 10.0, "the tailer")
    assert node.process is not None
    node.process.send_signal(signal.SIGTERM)
    assert _wait_exit(node) == 0
    events = [json.loads(line) for line in node.log_text().splitlines() if line.startswith("{")]
    assert len(events) > 5 and all(event.get("node_id") == 1 for event in events)


def test_check_config_runs_the_start_up_checks(cluster: ProcessCluster, redis_server) -> None:
    """A file `warmd run` refuses before binding (unloadable TLS files) is refused by
    `warmd check-config` too, with the same message and status."""
    node = _with_source_and_cache(cluster, redis_server.port)
    _write_bad_config(cluster, node, _bad_certificate)
    checked = subprocess.run([sys.executable, "-m", "warmd", "check-config", "--config",
                              str(node.config_path)], capture_output=True, text=True)
    assert checked.returncode == EXIT_CONFIG
    assert "cluster.tls" in checked.stderr and "cannot be loaded" in checked.stderr
