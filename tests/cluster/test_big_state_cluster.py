"""A three-node cluster holding a big state snapshots, digests and installs a snapshot on a
new learner while writes go on, and nobody calls an election.

Before snapshots were forked and installs stepped, serialising, hashing or decoding a state
this size held the event loop for longer than the test cluster's 250-500 ms election
timeout, so the leader missed its heartbeats and the term moved.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from warmd.admin.client import AdminClientError
from warmd.testing.procs import ProcessCluster

TASKS = 400
KEYS_PER_TASK = 2_500  # ~1M keys: a state of some 40 MB


def _fill(cluster: ProcessCluster, leader: int) -> None:
    for number in range(TASKS):
        cluster.call(leader, "task-submit", timeout_s=30, task_id=f"big-{number}",
                     target="redis://127.0.0.1:1", key_prefix=f"big-{number}:{'k' * 16}:",
                     key_count=KEYS_PER_TASK)


def _writes(cluster: ProcessCluster, leader: int, stop: threading.Event,
            failures: list[str]) -> None:
    while not stop.is_set():
        try:
            cluster.call(leader, "check-write", timeout_s=10, count=20)
        except AdminClientError as error:
            failures.append(str(error))


def _terms(cluster: ProcessCluster, nodes: tuple[int, ...]) -> dict[int, int]:
    return {node_id: cluster.status(node_id)["term"] for node_id in nodes}  # type: ignore[index]


@pytest.mark.timeout(300)
def test_snapshot_digest_and_install_of_a_big_state_cause_no_election(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    _fill(cluster, leader)
    terms = _terms(cluster, (1, 2, 3))
    stop, failures = threading.Event(), []
    writer = threading.Thread(target=_writes, args=(cluster, leader, stop, failures))
    writer.start()
    try:
        snapshot = cluster.call(leader, "snapshot", timeout_s=120)
        assert snapshot["data_bytes"] > 20_000_000, snapshot
        digests = {cluster.call(node_id, "read", timeout_s=60)["digest"] for node_id in (1, 2, 3)}
        assert digests  # every node answered while the others kept going
        joiner = cluster.add_joining_node(4)
        cluster.start(4)
        cluster.call(leader, "add-learner", timeout_s=60, node_id=4, address=joiner.address)
        applied = cluster.status(leader)["applied_index"]  # type: ignore[index]
        cluster.wait_applied(4, applied, timeout_s=120)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert _terms(cluster, (1, 2, 3)) == terms
    assert failures == []
