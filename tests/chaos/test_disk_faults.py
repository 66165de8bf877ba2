"""Real daemons whose follower lost acknowledged entries: caught up without spinning, or refused.

A wiped data directory restarted under the same id used to make the leader resend from
the old match forever (a hot loop on both nodes, the follower never caught up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.disk_faults import cut_log_tail, wipe_data
from warmd.testing.procs import ProcessCluster

IDLE_WINDOW_S = 4.0
IDLE_CPU_SHARE_MAX = 0.3  # the hot loop burned 45-85 % of a core on both nodes
EXIT_DATA_ERROR = 65


@pytest.fixture
def cluster() -> Iterator[ProcessCluster]:
    with ProcessCluster(3) as running:
        yield running


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loaded(cluster: ProcessCluster) -> tuple[int, int, int]:
    """Start, write 300 entries; returns (leader, follower, leader's applied index), read
    after the reply: the write's audit record is the last entry, applied before it."""
    cluster.start_all()
    leader = cluster.wait_for_leader()
    cluster.call(leader, "check-write", count=300)
    applied = cluster.call(leader, "status")["applied_index"]
    victim = next(node_id for node_id in sorted(cluster.nodes) if node_id != leader)
    cluster.wait_applied(victim, applied, timeout_s=20)
    return leader, victim, applied


@pytest.mark.timeout(120)
def test_wiped_follower_catches_up_and_nobody_spins(cluster: ProcessCluster) -> None:
    """A follower restarted on an empty data directory is caught up, then both nodes idle."""
    leader, victim, applied = _loaded(cluster)
    cluster.kill(victim)
    assert wipe_data(cluster.nodes[victim].data_dir) > 0
    cluster.start(victim)
    cluster.wait_applied(victim, applied, timeout_s=30)
    pids = [cluster.nodes[node_id].process.pid for node_id in (leader, victim)]  # type: ignore[union-attr]
    before = [_cpu_seconds(pid) for pid in pids]
    time.sleep(IDLE_WINDOW_S)
    used = [_cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]
    assert max(used) < IDLE_CPU_SHARE_MAX * IDLE_WINDOW_S, used
    assert cluster.wait_for_leader() == leader
    warnings = [line for line in cluster.nodes[leader].log_text().splitlines()
                if "follower_lost_entries" in line]
    assert warnings and f'"peer_id": {victim}' in warnings[0], "the leader names the node"


@pytest.mark.timeout(120)
def test_follower_that_lost_entries_it_knew_committed_refuses_to_start(
        cluster: ProcessCluster) -> None:
    """Exit 65 with the recovery procedure, instead of voting with a log missing commits."""
    _leader, victim, applied = _loaded(cluster)
    assert cluster.stop(victim) == 0
    cut = cut_log_tail(cluster.nodes[victim].data_dir, 3, keep_committed=False)
    assert cut.last_index >= cut.first_index and cut.last_index <= applied
    cluster.start(victim)
    process = cluster.nodes[victim].process
    assert process is not None and process.wait(timeout=30) == EXIT_DATA_ERROR
    text = cluster.nodes[victim].log_text()
    assert "past the last log index" in text and "new id" in text
