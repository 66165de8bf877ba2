"""Named membership, snapshot, transfer and ReadIndex scenarios through SimCluster.

The safety checkers run underneath every scenario; each test also asserts the
behaviour it is named for.
"""

from __future__ import annotations

import random

import pytest

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.errors import ProposalDropped
from warmd.raft.types import ConfChange, ConfChangeType, Message, MessageType, Role
from warmd.testing.cluster import ClusterOptions, NodeFactory, SimCluster
from warmd.testing.kvstore import PutCommand
from warmd.testing.linearizability import Operation, OperationKind, check_history
from warmd.testing.mutants import ServesReadsWithoutQuorum


def make_cluster(node_count: int, node_factory: NodeFactory = RaftNode, seed: int = 1,
                 compact_every_entries: int = 0, **raft: object) -> SimCluster:
    config = RaftConfig(node_id=1, **raft)  # type: ignore[arg-type]
    options = ClusterOptions(node_count, config, compact_every_entries=compact_every_entries)
    return SimCluster(random.Random(seed), options, node_factory)


def commit_write(cluster: SimCluster, leader: int, value: str, key: str = "k") -> int:
    cluster.put(leader, key, value)
    index = cluster.raft(leader).log.last_index()
    cluster.wait_applied(index, [leader])
    return index


def change_membership(cluster: SimCluster, leader: int, kind: ConfChangeType, node: int) -> int:
    """Propose a conf change on the leader and wait until the leader applied it."""
    cluster.raft(leader).propose_conf_change(ConfChange(kind, node))
    cluster.deliver([])
    index = cluster.raft(leader).log.last_index()
    cluster.wait_applied(index, [leader])
    return index


def test_removing_the_leader() -> None:
    """§4.2.2: a leader that removes itself steps down; the rest elect a leader and go on."""
    cluster = make_cluster(3)
    leader = cluster.wait_for_leader()
    commit_write(cluster, leader, "before")
    change_membership(cluster, leader, ConfChangeType.REMOVE_NODE, leader)
    cluster.run(3)
    assert cluster.raft(leader).role is not Role.LEADER
    rest = [node for node in cluster.nodes if node != leader]
    new = cluster.wait_for_leader(among=rest)
    assert cluster.raft(new).conf_state.voters == tuple(rest)
    commit_write(cluster, new, "after")
    cluster.run(10 * 10)
    assert cluster.leader_id() == new  # the removed node never campaigns again


def test_adding_a_learner_while_a_voter_is_down_and_promoting_it() -> None:
    """A learner catches up without counting for quorum, then as a voter keeps the quorum."""
    cluster = make_cluster(3)
    leader = cluster.wait_for_leader()
    down = next(node for node in cluster.nodes if node != leader)
    cluster.crash(down)
    for number in range(5):
        commit_write(cluster, leader, f"v{number}")
    cluster.add_node(4)
    index = change_membership(cluster, leader, ConfChangeType.ADD_LEARNER, 4)
    cluster.wait_applied(index, [4])
    assert cluster.raft(4).role is Role.LEARNER
    assert cluster.nodes[4].machine.values == {"k": "v4"}
    change_membership(cluster, leader, ConfChangeType.ADD_VOTER, 4)
    assert cluster.raft(leader).conf_state.voters == tuple(sorted({1, 2, 3, 4}))
    index = commit_write(cluster, leader, "with-four")  # 3 of 4 voters are up: still a quorum
    cluster.wait_applied(index, [4])
    assert cluster.raft(4).role is Role.FOLLOWER


@pytest.mark.parametrize("reaches_majority", [False, True])
def test_config_change_racing_a_leader_change(reaches_majority: bool) -> None:
    """A conf change in flight when its leader is cut off is kept or dropped, never split."""
    cluster = make_cluster(5)
    leader = cluster.wait_for_leader()
    commit_write(cluster, leader, "before")
    cluster.add_node(6)
    cluster.raft(leader).propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 6))
    cluster.deliver([])
    if reaches_majority:
        cluster.run(2)  # the APPEND reaches the followers before the partition
    cluster.network.isolate(leader, cluster.nodes)
    others = [node for node in cluster.nodes if node not in (leader, 6)]
    new = cluster.wait_for_leader(among=others)
    index = commit_write(cluster, new, "after")
    cluster.network.heal()
    cluster.wait_applied(index, [*others, leader])
    cluster.run(20)
    states = {cluster.raft(node).conf_state for node in (*others, leader)}
    assert len(states) == 1, states
    assert (6 in states.pop().learners) == reaches_majority
    other_kind = ConfChangeType.REMOVE_NODE if reaches_majority else ConfChangeType.ADD_LEARNER
    change_membership(cluster, new, other_kind, 6)  # and the next change goes through


def test_snapshot_install_to_a_lagging_follower_resumes_after_lost_chunks() -> None:
    """A follower behind the compacted log gets a chunked snapshot; a lost chunk is re-sent
    from its offset, not from zero."""
    cluster = make_cluster(3, compact_every_entries=5, snapshot_chunk_bytes=16,
                           max_inflight_messages=4)
    leader = cluster.wait_for_leader()
    lagging = next(node for node in cluster.nodes if node != leader)
    cluster.crash(lagging)
    for number in range(30):
        commit_write(cluster, leader, f"value-{number}", key=f"key{number % 4}")
    chunks: list[tuple[int, int]] = []
    dropped: set[int] = set()

    def lose_second_chunk_once(message: Message) -> bool:
        if message.type is not MessageType.SNAPSHOT or message.snapshot_meta is None:
            return False
        chunks.append((message.snapshot_meta.index, message.chunk_offset))
        if message.chunk_offset == 16 and 16 not in dropped:
            dropped.add(16)
            return True
        return False

    cluster.network.add_filter(lose_second_chunk_once)
    cluster.start(lagging)
    cluster.wait_applied(cluster.raft(leader).log.committed, [lagging])
    assert cluster.nodes[lagging].snapshot_index > 0
    assert cluster.nodes[lagging].machine.values == cluster.nodes[leader].machine.values
    first_snapshot = chunks[0][0]
    offsets = [offset for index, offset in chunks if index == first_snapshot]
    assert offsets.count(16) >= 2, offsets  # the lost chunk came again
    assert offsets.count(0) == 1, offsets  # but the transfer did not restart


def test_leadership_transfer_to_an_up_to_date_node() -> None:
    """§3.10: the target wins at once (TimeoutNow), without waiting for an election timeout."""
    cluster = make_cluster(3, election_timeout_ticks=20)
    leader = cluster.wait_for_leader()
    index = commit_write(cluster, leader, "v")
    target = next(node for node in cluster.nodes if node != leader)
    cluster.wait_applied(index, [target])
    term = cluster.raft(leader).term
    cluster.raft(leader).transfer_leadership(target)
    cluster.deliver([])
    assert cluster.run_until(lambda: cluster.leader_id() == target, 10)
    assert cluster.raft(target).term == term + 1


def test_leadership_transfer_to_a_lagging_node_catches_it_up_first() -> None:
    """A lagging target is brought up to date, then takes over with every entry."""
    cluster = make_cluster(3, election_timeout_ticks=20)
    leader = cluster.wait_for_leader()
    target = next(node for node in cluster.nodes if node != leader)
    cluster.network.isolate(target, cluster.nodes)
    for number in range(10):
        last = commit_write(cluster, leader, f"v{number}")
    cluster.network.heal()
    cluster.raft(leader).transfer_leadership(target)
    cluster.deliver([])
    with pytest.raises(ProposalDropped, match="transfer"):
        cluster.put(leader, "k", "during-transfer")
    assert cluster.run_until(lambda: cluster.leader_id() == target, 20)
    assert cluster.nodes[target].storage.last_index() >= last


def test_leadership_transfer_to_an_unreachable_lagging_node_is_aborted() -> None:
    """A target that cannot catch up within an election timeout: the transfer is abandoned."""
    cluster = make_cluster(3, election_timeout_ticks=20)
    leader = cluster.wait_for_leader()
    target = next(node for node in cluster.nodes if node != leader)
    cluster.network.cut(leader, target)
    commit_write(cluster, leader, "v")
    cluster.raft(leader).transfer_leadership(target)
    cluster.run(2 * 20 + 2)
    assert cluster.leader_id() == leader
    commit_write(cluster, leader, "after-abort")  # proposals are accepted again


def _read_across_leader_change(cluster: SimCluster) -> tuple[int, list[Operation]]:
    """Old leader cut off; a new one commits v2; then a read goes to the old leader."""
    old = cluster.wait_for_leader()
    history = [Operation(1, OperationKind.PUT, "k", "v1", cluster.now_ticks, None)]
    commit_write(cluster, old, "v1")
    history[0] = Operation(1, OperationKind.PUT, "k", "v1", history[0].call_ticks,
                           cluster.now_ticks)
    cluster.network.isolate(old, cluster.nodes)
    new = cluster.wait_for_leader(among=[node for node in cluster.nodes if node != old])
    call_ticks = cluster.now_ticks
    commit_write(cluster, new, "v2")
    history.append(Operation(2, OperationKind.PUT, "k", "v2", call_ticks, cluster.now_ticks))
    return old, history


@pytest.mark.parametrize("node_factory", [RaftNode, ServesReadsWithoutQuorum])
def test_read_index_across_leader_change_and_partition_has_no_stale_read(
    node_factory: NodeFactory,
) -> None:
    """A deposed, partitioned leader never answers a read with a stale value; a core that
    skips the quorum check is caught by the linearizability checker."""
    cluster = make_cluster(5, node_factory, check_quorum=False)  # the old leader never steps down
    old, history = _read_across_leader_change(cluster)
    cluster.run(1)  # the read starts strictly after the write returned
    call_ticks = cluster.now_ticks
    cluster.raft(old).read_index(b"read-on-old-leader")
    cluster.deliver([])
    cluster.run(3 * 10)
    for read_state in cluster.nodes[old].read_states:
        value = cluster.nodes[old].machine.values.get("k")
        history.append(Operation(3, OperationKind.GET, "k", value, call_ticks, cluster.now_ticks))
        assert read_state.index <= cluster.applied_index(old)
    linearizable = check_history(history).linearizable
    if node_factory is RaftNode:
        assert cluster.nodes[old].read_states == []  # no quorum: no answer at all
        cluster.network.heal()
        new = cluster.wait_for_leader()
        assert cluster.run_until(lambda: cluster.raft(old).leader_id == new, 50)
        cluster.raft(old).read_index(b"read-after-heal")  # now a follower: forwarded
        cluster.deliver([])
        assert cluster.run_until(lambda: bool(cluster.nodes[old].read_states), 50)
        cluster.wait_applied(cluster.nodes[old].read_states[0].index, [old])
        assert cluster.nodes[old].machine.values["k"] == "v2"
        assert cluster.raft(old).leader_id == new
        assert linearizable
    else:
        assert not linearizable  # the stale read is reported


def test_a_retried_write_is_applied_once_on_every_replica() -> None:
    """The session table skips a command whose (client, sequence) already took effect."""
    cluster = make_cluster(3)
    leader = cluster.wait_for_leader()
    retried = PutCommand(9, 1, "k", "first")
    cluster.raft(leader).propose(retried.encode())
    commit_write(cluster, leader, "second")  # another client writes after it
    follower = next(node for node in cluster.nodes if node != leader)
    cluster.raft(follower).propose(retried.encode())  # the retry, forwarded to the leader
    cluster.deliver([])
    cluster.run(10)
    for node in cluster.nodes.values():
        assert node.machine.values == {"k": "second"}
        assert node.machine.duplicates_skipped == 1
