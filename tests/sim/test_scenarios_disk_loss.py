"""A follower whose disk lost acknowledged entries is found, reported and caught up.

Raft assumes a disk keeps what it synced. When one does not (a truncated log, a
wiped data directory), the leader must not resend from the old match forever: it
re-probes below it, reports the loss, and stops counting the member for what it
lost. These scenarios bound the time and the messages that takes (docs/raft.md).
"""

from __future__ import annotations

import random

import pytest

from warmd.raft.config import RaftConfig
from warmd.raft.types import Message, MessageType
from warmd.testing.cluster import ClusterOptions, SimCluster

ELECTION_TIMEOUT_TICKS = 10
RECOVERY_TICKS_MAX = 3 * ELECTION_TIMEOUT_TICKS  # found and caught up within this
MESSAGES_TO_VICTIM_MAX = 40  # to the victim, from its restart until it caught up
IDLE_TICKS = 200


def loaded_cluster(compact_every_entries: int) -> tuple[SimCluster, int, int]:
    """Three nodes, 30 writes applied everywhere; returns (cluster, leader, last index)."""
    config = RaftConfig(node_id=1, election_timeout_ticks=ELECTION_TIMEOUT_TICKS,
                        max_entries_per_message=4)
    options = ClusterOptions(3, config, compact_every_entries=compact_every_entries)
    cluster = SimCluster(random.Random(7), options)
    leader = cluster.wait_for_leader()
    for number in range(30):
        cluster.put(leader, "k", f"v{number}")
    last_index = cluster.raft(leader).log.last_index()
    cluster.wait_applied(last_index, cluster.nodes)
    return cluster, leader, last_index


def match_of(cluster: SimCluster, leader: int, node_id: int) -> int:
    return next(peer.match for peer in cluster.raft(leader).status().progress
                if peer.node_id == node_id)


@pytest.mark.parametrize(("fault", "compact_every_entries"), [
    ("truncated", 0), ("wiped", 0), ("wiped", 8),
])
def test_follower_that_lost_acknowledged_entries_is_reported_and_caught_up(
    fault: str, compact_every_entries: int,
) -> None:
    """Found at the first heartbeat, reported with node and range, caught up in bounded work."""
    cluster, leader, last_index = loaded_cluster(compact_every_entries)
    victim = next(node for node in sorted(cluster.nodes) if node != leader)
    acknowledged = match_of(cluster, leader, victim)
    assert acknowledged == last_index
    if fault == "truncated":
        kept_index = cluster.lose_log_tail(victim, 5)
    else:
        cluster.wipe(victim)
        kept_index = 0
    to_victim: list[Message] = []
    cluster.network.add_filter(lambda message: message.to == victim
                               and to_victim.append(message) is not None)
    cluster.start(victim)
    started_ticks = cluster.now_ticks

    def caught_up() -> bool:
        return (cluster.applied_index(victim) >= last_index
                and match_of(cluster, leader, victim) >= last_index)

    assert cluster.run_until(caught_up, RECOVERY_TICKS_MAX), (
        f"{fault}: victim applied {cluster.applied_index(victim)} of {last_index} "
        f"after {RECOVERY_TICKS_MAX} ticks")
    assert len(to_victim) <= MESSAGES_TO_VICTIM_MAX
    reports = [report for ticks, report in cluster.lost_entries if ticks >= started_ticks]
    assert reports, "the leader did not report the loss"
    report = reports[0]
    assert report.node_id == victim and report.last_index == acknowledged
    assert report.first_index <= kept_index + 1
    assert cluster.leader_id() == leader  # no election was needed

    # Idle afterwards: heartbeats only, no resend loop.
    to_victim.clear()
    cluster.run(IDLE_TICKS)
    appends = [m for m in to_victim if m.type in (MessageType.APPEND, MessageType.SNAPSHOT)]
    assert len(appends) <= 2
    assert len(to_victim) <= IDLE_TICKS // cluster.options.raft.heartbeat_ticks + 2


def test_lost_entries_do_not_count_toward_commit_until_resent() -> None:
    """The leader re-counts a member that lost entries only for what it acknowledged again."""
    cluster, leader, last_index = loaded_cluster(0)
    followers = [node for node in sorted(cluster.nodes) if node != leader]
    cluster.wipe(followers[0])
    cluster.crash(followers[1])
    cluster.start(followers[0])
    cluster.network.add_filter(lambda message: message.to == followers[0]
                               and message.type is MessageType.APPEND and message.index > 0)
    cluster.run(3 * ELECTION_TIMEOUT_TICKS)  # only the first APPEND (from index 1) gets through
    assert match_of(cluster, leader, followers[0]) < last_index
    cluster.put(leader, "k", "after")
    cluster.run(ELECTION_TIMEOUT_TICKS)
    # Only the leader holds the new entry: a wiped member's old match must not count.
    assert cluster.raft(leader).log.committed == last_index
