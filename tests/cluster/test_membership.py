"""Membership, leadership transfer and snapshot commands against real processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from warmd import codec
from warmd.admin.client import AdminClientError
from warmd.raft.types import Snapshot
from warmd.runtime.node.segment import read_single_record
from warmd.testing.procs import ProcessCluster


def test_add_a_learner_promote_it_then_remove_a_node(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """A joining node catches up as a learner, becomes a voter, and a removed node leaves."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    written = cluster.call(leader, "check-write", count=100)
    joiner = cluster.add_joining_node(4)
    cluster.start(4)
    conf = cluster.call(leader, "add-learner", timeout_s=30, node_id=4, address=joiner.address)
    assert conf == {"voters": [1, 2, 3], "learners": [4]}
    learner = cluster.wait_applied(4, written["applied_index"])
    assert learner["role"] == "learner"
    conf = cluster.call(leader, "promote", timeout_s=30, node_id=4)
    assert conf == {"voters": [1, 2, 3, 4], "learners": []}
    assert cluster.wait_until(lambda: cluster.status(4)["role"] == "follower", 10, "promotion")

    removed = next(node_id for node_id in (1, 2, 3) if node_id != leader)
    term = cluster.status(leader)["term"]
    conf = cluster.call(leader, "remove", timeout_s=30, node_id=removed)
    assert removed not in conf["voters"]
    members = cluster.call(leader, "members")["members"]
    assert sorted(member["node_id"] for member in members) == sorted({1, 2, 3, 4} - {removed})
    # As in etcd, the leader stops talking to a removed node at once, so it may never learn
    # of its removal; pre-vote keeps its campaigns from disturbing the remaining members.
    after = cluster.call(leader, "check-write", count=50)
    cluster.wait_applied(4, after["applied_index"])
    cluster.stop(removed)
    assert cluster.status(leader)["term"] == term
    assert cluster.call(leader, "check-write", count=10)["rejected"] == 0


def test_invalid_membership_requests_get_clear_errors(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """Bad arguments are bad_request; promoting a non-member is refused, not crashing."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    with pytest.raises(AdminClientError) as bad:
        cluster.call(leader, "add-learner", node_id=0, address="127.0.0.1:1")
    assert bad.value.code == "bad_request"
    with pytest.raises(AdminClientError) as bad_address:
        cluster.call(leader, "add-learner", node_id=9, address="nowhere")
    assert bad_address.value.code == "bad_request"
    with pytest.raises(AdminClientError) as refused:
        cluster.call(leader, "remove", node_id=42)
    assert refused.value.code == "failed"
    assert cluster.status(leader)["role"] == "leader"


def test_transfer_leadership_to_a_chosen_voter_and_back(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """transfer-leader hands over to the named node, and without an id to a caught-up one."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    target = next(node_id for node_id in (1, 2, 3) if node_id != leader)
    assert cluster.call(leader, "transfer-leader", timeout_s=30, node_id=target) == {
        "leader_id": target}
    assert cluster.wait_for_leader() == target
    follower = next(node_id for node_id in (1, 2, 3) if node_id != target)
    with pytest.raises(AdminClientError) as not_leader:
        cluster.call(follower, "transfer-leader")
    assert not_leader.value.code == "not_leader" and f"leader is {target}" in str(not_leader.value)
    assert not_leader.value.exit_status == 75
    moved = cluster.call(target, "transfer-leader", timeout_s=30)["leader_id"]
    assert moved != target
    assert cluster.wait_for_leader() == moved
    assert cluster.call(moved, "check-write", count=10)["rejected"] == 0


def test_snapshot_and_snapshot_save_write_a_readable_file(
        make_cluster: Callable[..., ProcessCluster], tmp_path: Path) -> None:
    """`snapshot` compacts at the applied index; `snapshot-save` writes that snapshot as a
    record file the data directory format can read back."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    written = cluster.call(leader, "check-write", count=120)
    taken = cluster.call(leader, "snapshot", timeout_s=30)
    assert taken["index"] >= written["applied_index"] and taken["data_bytes"] > 0
    target = tmp_path / "backup.snap"
    saved = cluster.call(leader, "snapshot-save", timeout_s=30, path=str(target))
    assert saved["index"] == taken["index"]
    snapshot = read_single_record(target.read_bytes(), str(target), 1 << 30)
    assert isinstance(snapshot, Snapshot)
    assert snapshot.meta.index == taken["index"]
    assert sorted(snapshot.meta.conf_state.voters) == [1, 2, 3]
    cluster.wait_until(lambda: cluster.status(leader)["snapshot_index"] == taken["index"], 10,
                       "the snapshot to be persisted")
    assert codec.decode(codec.encode(snapshot)) == snapshot
