"""Elections under CPU starvation: late answers, bunched ticks, a partition healed.

Seen in a soak on a machine at load 20-30: after the nemesis healed everything the
cluster stayed 30 s without a leader, the node with the longest log a follower the
whole time while the others cycled through pre-vote and candidacy without winning.
Each candidacy it refused restarted its election timer, so it never campaigned.
These runs replay that in the seeded simulator; every one prints its seed.
"""

from __future__ import annotations

import random

import pytest

from warmd.raft.config import RaftConfig
from warmd.raft.types import Message, MessageType, Role
from warmd.testing.cluster import ClusterOptions, SimCluster
from warmd.testing.kvstore import PutCommand
from warmd.testing.network import LinkFaults
from warmd.testing.sim import LIVENESS_ELECTION_TIMEOUTS

TIMEOUT_TICKS = 10


def make_cluster(seed: int, tick_rates: tuple[float, ...] = (),
                 faults: LinkFaults | None = None) -> SimCluster:
    config = RaftConfig(node_id=1, election_timeout_ticks=TIMEOUT_TICKS)
    options = ClusterOptions(5, config, tick_rates=tick_rates)
    return SimCluster(random.Random(seed), options, faults=faults)


@pytest.mark.parametrize("seed", [7, 19, 23])
def test_the_longest_log_is_elected_while_the_others_keep_losing(seed: int) -> None:
    """The others' elections never complete (their votes come back too late); each of
    their candidacies reaches node 1, whose log is the longest and whose loop is the
    most starved (a starved driver's ticker fires once however long it slept: its clock
    runs at half speed). Node 1 must still time out, campaign and win: only a leader's
    message or a vote it grants restarts its election clock, not a refused candidacy."""
    cluster = make_cluster(seed, tick_rates=(0.5,))
    cluster.elect(1)
    cluster.put(1, "k", "committed")
    cluster.wait_applied(cluster.raft(1).log.last_index(), [1, 2, 3, 4, 5])
    cluster.network.isolate(1, cluster.nodes)
    cluster.put(1, "k", "only-on-node-1")  # node 1's log is now the longest
    longest = cluster.raft(1).log.last_index()

    def late_vote(message: Message) -> bool:
        return message.type is MessageType.VOTE_RESPONSE and message.to != 1

    cluster.network.add_filter(late_vote)
    assert cluster.run_until(lambda: cluster.raft(1).role is not Role.LEADER, 6 * TIMEOUT_TICKS)
    cluster.run(5 * TIMEOUT_TICKS)  # the others campaign and lose, round after round
    assert cluster.leader_id() is None
    assert max(cluster.raft(node).term for node in (2, 3, 4, 5)) > cluster.raft(1).term
    cluster.network.heal()
    bound_ticks = LIVENESS_ELECTION_TIMEOUTS * TIMEOUT_TICKS
    assert cluster.run_until(lambda: cluster.leader_id() == 1, bound_ticks), (
        f"seed={seed}: no leader {bound_ticks} ticks after healing; roles "
        f"{[(n, cluster.raft(n).role.name, cluster.raft(n).term) for n in cluster.nodes]}")
    cluster.wait_applied(longest, [1, 2, 3, 4, 5])


STALL_PROBABILITY = 0.03  # per node and tick, while not already stalled
STALL_TICKS_MAX = 25  # up to 2.5 election timeouts without running


def _starve(cluster: SimCluster, rng: random.Random) -> None:
    """Stall some nodes for a while: each wakes to a burst of messages and one tick."""
    for node_id, node in cluster.nodes.items():
        if node.stalled_until <= cluster.now_ticks and rng.random() < STALL_PROBABILITY:
            cluster.stall(node_id, rng.randint(1, STALL_TICKS_MAX))


def _run_starved(cluster: SimCluster, rng: random.Random, ticks: int) -> None:
    for _ in range(ticks):
        _starve(cluster, rng)
        cluster.tick()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_healed_partition_elects_and_commits_while_every_node_starves(seed: int) -> None:
    """Nodes stall at random (bunched ticks and deliveries) through a partition and after
    it heals; a leader must still commit a write within the simulator's liveness bound (the
    client retries on the next leader when a deposed one may have lost it)."""
    rng = random.Random(seed)
    cluster = make_cluster(rng.getrandbits(64), faults=LinkFaults(delay_ticks_max=3))
    cluster.wait_for_leader()
    _run_starved(cluster, rng, 100)
    members = list(cluster.nodes)
    rng.shuffle(members)
    cluster.network.partition([members[:2], members[2:]])
    _run_starved(cluster, rng, rng.randint(50, 200))
    cluster.network.heal()
    bound_ticks = LIVENESS_ELECTION_TIMEOUTS * TIMEOUT_TICKS
    command = PutCommand(1, 1, "k", "after-heal")
    deadline = cluster.now_ticks + 2 * bound_ticks
    while cluster.now_ticks < deadline:
        leader = _running_leader(cluster, rng, deadline)
        assert cluster.submit_write(leader, command.encode()) is None
        index, term = cluster.raft(leader).log.last_index(), cluster.raft(leader).term

        def settled(leader: int = leader, index: int = index, term: int = term) -> bool:
            """Applied, or the leader was deposed and may have lost it (a client retries)."""
            raft = cluster.raft(leader)
            return cluster.applied_index(leader) >= index or raft.term != term or (
                raft.role is not Role.LEADER)

        cluster.run_until(settled, deadline - cluster.now_ticks)
        if cluster.applied_index(leader) >= index and any(
                entry.data == command.encode() for entry in cluster.log_entries(leader)):
            return
    raise AssertionError(f"seed={seed}: no write committed within {2 * bound_ticks} ticks")


def _running_leader(cluster: SimCluster, rng: random.Random, deadline: int) -> int:
    """Tick (starving nodes) until a leader that is not stalled exists."""
    while cluster.now_ticks < deadline:
        leader = cluster.leader_id()
        if leader is not None and cluster.nodes[leader].stalled_until <= cluster.now_ticks:
            return leader
        _starve(cluster, rng)
        cluster.tick()
    raise AssertionError(f"no running leader by tick {deadline}")
