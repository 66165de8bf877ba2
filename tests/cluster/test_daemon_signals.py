"""The daemon's contract with systemd and signals, seen from outside a real process."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from warmd.runtime.execute.executor import ExecutorOptions
from warmd.testing.procs import ProcessCluster


@pytest.fixture
def notify_socket() -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET (short path under /tmp)."""
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="wn-"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(directory / "notify"))
    listener.settimeout(0.2)
    yield listener
    listener.close()
    (directory / "notify").unlink(missing_ok=True)
    directory.rmdir()


def _collect(listener: socket.socket, until: Callable[[list[str]], bool],
             timeout_s: float) -> list[str]:
    received: list[str] = []
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s and not until(received):
        try:
            received.extend(listener.recv(4096).decode().split("\n"))
        except TimeoutError:
            continue
    return received


def test_sd_notify_ready_watchdog_status_reload_and_stopping(
        make_cluster: Callable[..., ProcessCluster], notify_socket: socket.socket) -> None:
    """A real daemon sends READY=1 with a STATUS once it leads, pings the watchdog from its
    loop, answers SIGHUP with RELOADING=1 then READY=1, and SIGTERM with STOPPING=1 and
    exit status 0."""
    cluster = make_cluster(1)
    cluster.start(1, {"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "200000"})
    lines = _collect(notify_socket,
                     lambda got: "READY=1" in got and got.count("WATCHDOG=1") >= 3, 15)
    assert "READY=1" in lines and lines.count("WATCHDOG=1") >= 3
    status = next(line for line in lines if line.startswith("STATUS=") and "leader" in line)
    assert "term" in status
    config = cluster.nodes[1].config_path
    config.write_text(config.read_text().replace('level = "info"', 'level = "debug"'))
    assert cluster.nodes[1].process is not None
    cluster.nodes[1].process.send_signal(signal.SIGHUP)
    lines = _collect(notify_socket, lambda got: "RELOADING=1" in got and "READY=1" in got, 10)
    assert lines.index("RELOADING=1") < len(lines) - 1 - lines[::-1].index("READY=1")
    cluster.wait_until(lambda: "config_reloaded" in cluster.nodes[1].log_text(), 10, "reload")
    assert '"applied": ["logging"]' in cluster.nodes[1].log_text()
    assert cluster.stop(1) == 0
    lines = _collect(notify_socket, lambda got: "STOPPING=1" in got, 5)
    assert "STOPPING=1" in lines
    assert "daemon_stopped" in cluster.nodes[1].log_text()


def test_a_restarted_single_node_keeps_its_state(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """After a clean stop and start, a single node leads again with every write applied."""
    cluster = make_cluster(1).start_all()
    cluster.wait_for_leader()
    written = cluster.call(1, "check-write", count=50)
    digest = cluster.call(1, "read")["digest"]
    assert cluster.stop(1) == 0
    cluster.start(1)
    cluster.wait_for_leader()
    assert cluster.wait_applied(1, written["applied_index"])["term"] >= 2
    assert cluster.call(1, "read")["digest"] == digest


def test_a_broken_config_on_sighup_is_refused_and_a_bad_one_at_start_exits_78(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """SIGHUP with an unparsable file keeps the running config; `warmd run` on a bad
    config exits 78 (EX_CONFIG) naming the key."""
    cluster = make_cluster(1).start_all()
    cluster.wait_for_leader()
    node = cluster.nodes[1]
    good = node.config_path.read_text()
    node.config_path.write_text(good + "\n[raft]\nnot toml at all\n")
    assert node.process is not None
    node.process.send_signal(signal.SIGHUP)
    cluster.wait_until(lambda: "reload_refused" in node.log_text(), 10, "the refusal")
    assert cluster.call(1, "check-write", count=3)["rejected"] == 0
    assert cluster.stop(1) == 0
    node.config_path.write_text(good.replace("election_timeout_ticks = 25",
                                             "election_timeout_ticks = 1"))
    cluster.start(1)
    assert node.process is not None
    assert node.process.wait(timeout=20) == 78
    node.process = None
    assert "raft.election_timeout_ticks" in node.log_text()


def test_a_taken_peer_port_exits_71_with_a_message(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """When the listen port is in use the daemon says so and exits 71 (EX_OSERR)."""
    cluster = make_cluster(1)
    node = cluster.nodes[1]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)
        squatter.bind(("127.0.0.1", node.port))
        squatter.listen()
        cluster.start(1)
        assert node.process is not None
        assert node.process.wait(timeout=20) == 71
    node.process = None
    assert "warmd: cannot start:" in node.log_text()
    assert not node.socket_path.exists()


def test_sighup_applies_sources_executor_and_analysis_live(
        make_cluster: Callable[..., ProcessCluster], tmp_path: Path) -> None:
    """A reload that changes `[sources]`, `[executor]` and `[analysis]` restarts the node's
    warm-up services on the new config: the new log is tailed and shipped, the executor
    re-registers with the new capacity; a `[raft]` change is reported as needing a restart."""
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    line = ('127.0.0.1 - - [06/Dec/2026:10:00:00 +0000] "GET /api/item/{n} HTTP/1.1" 200 12 '
            '"-" "curl/8"\n')
    first.write_text("".join(line.format(n=n) for n in range(20)))
    second.write_text("".join(line.format(n=n) for n in range(35)))
    cluster = make_cluster(1)
    node = cluster.nodes[1]
    node.executor = {"enabled": True, "capacity": 2}
    node.extra_config = (f'[sources.web]\npaths = ["{first}"]\nformat = "combined"\n\n'
                         '[analysis]\nship_interval_ms = 200\npoll_interval_ms = 100\n')
    cluster.write_config(node)
    cluster.start_all()
    cluster.wait_for_leader()

    def shipped(lines: int) -> bool:
        local = cluster.call(1, "summaries")["local"]
        return any(item["lines_read"] == lines for item in local)

    cluster.wait_until(lambda: shipped(20), 20, "the first log read")
    held = ExecutorOptions(capacity=2).holds  # its slots and the tasks held ahead of them
    cluster.wait_until(lambda: [n["capacity"] for n in cluster.call(1, "nodes")["nodes"]] == [held],
                       20, "the executor registered with capacity 2")
    node.executor = {"enabled": True, "capacity": 5}
    node.extra_config = node.extra_config.replace(str(first), str(second))
    cluster.write_config(node)
    text = node.config_path.read_text()
    node.config_path.write_text(text.replace("heartbeat_ticks = 2", "heartbeat_ticks = 3"))
    assert node.process is not None
    node.process.send_signal(signal.SIGHUP)
    cluster.wait_until(lambda: "services_restarted" in node.log_text(), 10, "the restart")
    cluster.wait_until(lambda: shipped(35), 20, "the second log read")
    held = ExecutorOptions(capacity=5).holds  # its slots and the tasks held ahead of them
    cluster.wait_until(lambda: [n["capacity"] for n in cluster.call(1, "nodes")["nodes"]] == [held],
                       20, "the executor re-registered with capacity 5")
    log = node.log_text()
    assert "reload_needs_restart" in log and '"raft"' in log
    assert cluster.call(1, "check-write", count=3)["rejected"] == 0
