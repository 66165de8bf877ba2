"""A flood of unauthenticated connections on a follower's peer port, against real daemons.

The follower's descriptor limit is lowered to 256 (a small box, or the default 1,024 under a
bigger flood): before the listener capped connections in the handshake, the flood used every
descriptor within a second, admin calls failed and the next segment rotation (EMFILE) was
taken for a disk failure (exit 70).
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from warmd.admin.client import AdminClientError
from warmd.testing.procs import ProcessCluster

FLOOD_S = 6.0
DAEMON_OPEN_FILES = 256
FLOOD_CONNECTIONS_HELD = 1500
STATUS_CALLS = 12


def _flood(address: tuple[str, int], stop: threading.Event, opened: list[int]) -> None:
    """Open silent connections as fast as the listener takes them, holding the newest."""
    held: list[socket.socket] = []
    try:
        while not stop.is_set():
            try:
                held.append(socket.create_connection(address, timeout=0.2))
                opened[0] += 1
            except OSError:
                time.sleep(0.005)  # the backlog is full: the listener paused or is shedding
            if len(held) > FLOOD_CONNECTIONS_HELD:
                held.pop(0).close()
    finally:
        for sock in held:
            sock.close()


def test_follower_survives_a_connection_flood_and_keeps_committing(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """Under the flood the follower stays up, answers every status call and applies every write."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    cluster = make_cluster(3).start_all()
    try:
        leader = cluster.wait_for_leader()
        victim = next(node_id for node_id in (1, 2, 3) if node_id != leader)
        node = cluster.nodes[victim]
        assert node.process is not None
        resource.prlimit(node.process.pid, resource.RLIMIT_NOFILE,
                         (DAEMON_OPEN_FILES, DAEMON_OPEN_FILES))
        stop, opened = threading.Event(), [0]
        flooder = threading.Thread(target=_flood, args=(("127.0.0.1", node.port), stop, opened))
        flooder.start()
        failures: list[str] = []
        started_s = time.monotonic()
        try:
            for _ in range(STATUS_CALLS):
                with contextlib.suppress(AdminClientError):
                    cluster.call(leader, "check-write", count=200, timeout_s=10.0)
                try:
                    cluster.call(victim, "status", timeout_s=5.0)
                except AdminClientError as error:
                    failures.append(str(error))
                time.sleep(max(0.0, FLOOD_S / STATUS_CALLS - 0.05))
        finally:
            stop.set()
            flooder.join()
        flood_s = time.monotonic() - started_s
        assert node.running(), cluster.describe()
        assert not failures, f"{len(failures)} of {STATUS_CALLS} status calls failed: {failures[:3]}"
        commit = cluster.call(leader, "status")["commit_index"]
        assert commit > 2000  # the check-writes committed
        cluster.wait_applied(victim, commit, timeout_s=20.0)
        # More connections than the follower has descriptors: without shedding it ran out.
        assert opened[0] > 1.5 * DAEMON_OPEN_FILES, f"only {opened[0]} connections in {flood_s:.1f} s"
        assert '"peer_handshakes_full"' in node.log_text()
        assert len(list(node.data_dir.glob("log-*.seg"))) > 1  # segments rotated under the flood
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_daemon_raises_its_soft_open_files_limit_to_the_hard_one(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """Started with a soft limit of 100 (hard 4,096), the daemon runs with 4,096 and says so."""
    import subprocess
    import sys

    cluster = make_cluster(1)
    node = cluster.nodes[1]
    with open(node.log_path, "ab") as log_file:
        node.process = subprocess.Popen(
            ["prlimit", "--nofile=100:4096", sys.executable, "-m", "warmd", "run",
             "--config", str(node.config_path)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    cluster.wait_for_leader()
    limits = Path(f"/proc/{node.process.pid}/limits").read_text()
    line = next(line for line in limits.splitlines() if line.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"], line
    assert '"open_files_max": 4096' in node.log_text()
    assert '"open_files_max_before": 100' in node.log_text()
