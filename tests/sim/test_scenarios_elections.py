"""Named election and commit scenarios, each driven step by step through SimCluster.

Every scenario runs with the safety checkers on, so besides its own assertions any
broken Raft invariant along the way fails it with a SafetyViolation.
"""

from __future__ import annotations

import random

import pytest

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.types import Message, MessageType, Role
from warmd.testing.checkers import SafetyViolation
from warmd.testing.cluster import ClusterOptions, CrashPoint, NodeFactory, SimCluster
from warmd.testing.mutants import CommitsOldTermByCounting, ForgetsItsVote


def make_cluster(node_count: int, node_factory: NodeFactory = RaftNode, seed: int = 1,
                 **raft: object) -> SimCluster:
    config = RaftConfig(node_id=1, **raft)  # type: ignore[arg-type]
    return SimCluster(random.Random(seed), ClusterOptions(node_count, config), node_factory)


def commit_write(cluster: SimCluster, leader: int, value: str, max_ticks: int = 300) -> int:
    """Write through `leader`, wait until it applied it, and return the entry's index."""
    cluster.put(leader, "k", value)
    index = cluster.raft(leader).log.last_index()
    cluster.wait_applied(index, [leader], max_ticks)
    return index


def _figure_8(cluster: SimCluster) -> tuple[int, int]:
    """Play Figure 8 of the Raft paper; returns (index of S1's old entry, its term)."""
    cluster.elect(1)
    cluster.wait_applied(cluster.raft(1).log.last_index(), [1, 2, 3, 4, 5])
    for peer in (3, 4, 5):  # (a) S1 replicates a new entry to S2 only
        cluster.network.cut(1, peer)
    cluster.put(1, "k", "from-term-of-s1")
    index, old_term = cluster.raft(1).log.last_index(), cluster.raft(1).term
    cluster.run(3)
    assert [entry.index for entry in cluster.log_entries(2)][-1] == index
    cluster.crash(1)  # (b) S5 wins with S3 and S4, appends at `index`, crashes unheard
    cluster.network.heal()
    cluster.nodes[5].crash_point = CrashPoint.AFTER_ELECTED
    cluster.raft(5).campaign()
    assert cluster.run_until(lambda: not cluster.nodes[5].up, 10)
    assert cluster.log_entries(5)[-1].index == index
    cluster.start(1)  # (c) S1 returns, wins, and gets its old entry onto a majority
    no_op_index = index + 1

    def hold_back_no_op(message: Message) -> bool:
        """Let S1's probes and its old entry through, but not its new term's no-op."""
        has_old_entry = cluster.nodes[message.to].storage.last_index() >= index
        return (message.type is MessageType.APPEND and message.from_id == 1 and has_old_entry
                and any(entry.index >= no_op_index for entry in message.entries))

    cluster.network.add_filter(hold_back_no_op)
    cluster.network.cut(1, 5)
    cluster.elect(1, max_ticks=20)
    cluster.run(10)
    holders = [node for node in (1, 2, 3, 4)
               if any(e.index == index and e.term == old_term for e in cluster.log_entries(node))]
    assert len(holders) >= 3, holders
    return index, old_term


def test_figure_8_old_term_entry_is_not_committed_by_counting() -> None:
    """§5.4.2: an old-term entry on a majority is not committed, so S5 may overwrite it."""
    cluster = make_cluster(5, election_timeout_ticks=40, pre_vote=False, check_quorum=False,
                           max_entries_per_message=1)
    index, old_term = _figure_8(cluster)
    assert cluster.raft(1).log.committed < index
    cluster.crash(1)  # (d) S5 returns and wins: its newer-term entry replaces S1's
    cluster.network.heal()
    cluster.start(5)
    cluster.elect(5, max_ticks=40)
    cluster.wait_applied(index + 1, [2, 3, 4, 5])
    assert cluster.checker.committed[index].term != old_term


def test_figure_8_with_counting_commit_is_reported() -> None:
    """The same history with a core that commits by counting is caught by the checkers."""
    cluster = make_cluster(5, CommitsOldTermByCounting, election_timeout_ticks=40,
                           pre_vote=False, check_quorum=False, max_entries_per_message=1)
    index, _old_term = _figure_8(cluster)
    assert cluster.raft(1).log.committed >= index  # the broken rule fired
    cluster.crash(1)
    cluster.network.heal()
    cluster.start(5)
    with pytest.raises(SafetyViolation, match=r"leader completeness|state machine|overwritten"):
        cluster.elect(5, max_ticks=40)
        cluster.wait_applied(index + 1, [2, 3, 4, 5])


def test_reelection_after_the_leader_is_cut_off() -> None:
    """The others elect a new leader of a higher term; the old one follows it after healing."""
    cluster = make_cluster(5)
    old = cluster.wait_for_leader()
    old_term = cluster.raft(old).term
    commit_write(cluster, old, "before")
    cluster.network.isolate(old, cluster.nodes)
    others = [node for node in cluster.nodes if node != old]
    new = cluster.wait_for_leader(among=others)
    assert cluster.raft(new).term > old_term
    index = commit_write(cluster, new, "after")
    cluster.network.heal()
    cluster.wait_applied(index, [old])
    assert cluster.raft(old).role is Role.FOLLOWER and cluster.raft(old).leader_id == new
    assert cluster.nodes[old].machine.values == {"k": "after"}


@pytest.mark.parametrize("pre_vote", [True, False])
def test_rejoining_node_does_not_depose_a_healthy_leader(pre_vote: bool) -> None:
    """§9.6: with pre-vote an isolated follower cannot raise its term and disrupt on return."""
    cluster = make_cluster(5, pre_vote=pre_vote)
    leader = cluster.wait_for_leader()
    term = cluster.raft(leader).term
    follower = next(node for node in cluster.nodes if node != leader)
    cluster.network.isolate(follower, cluster.nodes)
    cluster.run(20 * 10)
    cluster.network.heal()
    cluster.run(10 * 10)
    if pre_vote:
        assert cluster.raft(follower).term == term
        assert cluster.leader_id() == leader and cluster.raft(leader).term == term
    else:  # the contrast that shows what pre-vote buys
        assert cluster.raft(follower).term > term + 5
        assert cluster.raft(cluster.wait_for_leader()).term > term


@pytest.mark.parametrize("check_quorum", [True, False])
def test_leader_cut_off_from_the_quorum_steps_down(check_quorum: bool) -> None:
    """§6.2: a leader that hears from no quorum for an election timeout steps down."""
    cluster = make_cluster(3, check_quorum=check_quorum)
    leader = cluster.wait_for_leader()
    cluster.network.isolate(leader, cluster.nodes)
    cluster.run(2 * 10 + 2)
    stepped_down = cluster.raft(leader).role is not Role.LEADER
    assert stepped_down == check_quorum


def test_cloudflare_partial_partition_keeps_one_stable_leader() -> None:
    """One follower loses only its link to the leader: one leader, term +2 at most, writes go on."""
    cluster = make_cluster(5)
    leader = cluster.wait_for_leader()
    term = cluster.raft(leader).term
    follower = next(node for node in cluster.nodes if node != leader)
    cluster.network.cut(leader, follower)
    leaders_seen = set()
    for round_number in range(30):
        current = cluster.wait_for_leader()
        leaders_seen.add(current)
        commit_write(cluster, current, f"w{round_number}")
        cluster.run(10)
    final = cluster.wait_for_leader()
    assert len(leaders_seen) <= 2, leaders_seen
    assert cluster.raft(final).term <= term + 2
    assert cluster.nodes[final].machine.values == {"k": "w29"}
    assert cluster.nodes[final].machine.applied_index >= 30


def test_full_cluster_restart_never_overwrites_a_committed_entry() -> None:
    """Every node crashes at once; after the restart each committed entry is still there."""
    cluster = make_cluster(3)
    leader = cluster.wait_for_leader()
    for number in range(10):
        commit_write(cluster, leader, f"v{number}")
    cluster.run(3)
    committed = dict(cluster.checker.committed)
    for node in list(cluster.nodes):
        cluster.crash(node)
    cluster.network.drop_in_flight()
    for node in list(cluster.nodes):
        cluster.start(node)
    leader = cluster.wait_for_leader()
    for number in range(5):
        commit_write(cluster, leader, f"after{number}")
    for node in cluster.nodes:
        log = {entry.index: entry for entry in cluster.log_entries(node)}
        for index, entry in committed.items():
            assert log.get(index, entry) == entry, (node, index)
    assert cluster.nodes[leader].machine.values == {"k": "after4"}


def _vote_then_crash(cluster: SimCluster) -> None:
    """S1 campaigns; S3 grants and crashes right after sending; S2 then asks S3 in that term."""
    cluster.network.cut(1, 2)
    cluster.nodes[3].crash_point = CrashPoint.AFTER_VOTE
    cluster.raft(1).campaign()
    cluster.deliver([])
    assert cluster.run_until(lambda: not cluster.nodes[3].up, 5)
    assert cluster.run_until(lambda: cluster.raft(1).role is Role.LEADER, 5)
    cluster.network.cut(1, 3)  # only S3's disk can now stop it from voting again
    cluster.start(3)
    cluster.raft(2).campaign()
    cluster.run(5)


def test_double_vote_after_crash_right_after_voting_is_refused() -> None:
    """§5.2: the vote is on disk before the grant leaves, so a restarted node refuses a second."""
    cluster = make_cluster(3, election_timeout_ticks=30, pre_vote=False)
    _vote_then_crash(cluster)
    assert cluster.hard_state(3).vote == 1
    assert cluster.raft(2).term == cluster.raft(1).term
    assert cluster.raft(2).role is not Role.LEADER


def test_forgotten_vote_is_reported_as_two_leaders() -> None:
    """A core that forgets its vote on restart votes twice in a term, and is caught."""
    cluster = make_cluster(3, ForgetsItsVote, election_timeout_ticks=30, pre_vote=False)
    with pytest.raises(SafetyViolation, match=r"election safety|double vote"):
        _vote_then_crash(cluster)
