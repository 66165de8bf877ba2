"""The fault schedule of a simulated run: partitions, stalled links, link faults, crashes,
restarts and membership changes.

Every choice comes from the run's seeded RNG. Each seed draws a SwarmProfile: its own
subset of fault kinds with random weights and intensities (swarm testing, as
TigerBeetle's VOPR does), so some seeds hammer one fault hard. Crashes are short: a crashed node boots again within
a few election timeouts, and at most a minority of voters is down at once, except for
rare whole-cluster restarts. Armed crash points kill a node at a dangerous instant:
right after it persisted, right after it granted a vote, right after it won, and a
leader, at a per-seed rate, right after it appended new entries (before replicating
them) or right after it raised its commit index (before telling anyone).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from warmd.raft.errors import ProposalDropped
from warmd.raft.types import ConfChange, ConfChangeType, Ready, Role
from warmd.testing.cluster import CrashPoint, SimCluster, SimNode
from warmd.testing.network import LinkFaults

CALM = LinkFaults(delay_ticks_min=1, delay_ticks_max=2)
MEMBERS_MIN, MEMBERS_MAX = 3, 5  # voters kept within this range by membership changes
LEARNERS_MAX = 2  # learners present at once
ARMED_POINTS = (CrashPoint.AFTER_PERSIST, CrashPoint.AFTER_VOTE, CrashPoint.AFTER_ELECTED)
# Every fault kind and the weights a seed may give it; healing links is always on.
FAULT_WEIGHTS: dict[str, tuple[int, ...]] = {
    "partition-halves": (1, 2, 4), "isolate-leader": (1, 2, 4), "partial-partition": (1, 2, 4),
    "one-way-cuts": (1, 2, 4), "slow-links": (2, 4, 8), "heal-links": (1, 2, 4), "change-link-faults": (1, 2, 4),
    "crash-node": (1, 2, 4), "crash-leader": (1, 2, 4, 8), "arm-crash-point": (1, 2, 4),
    "reboot-node": (1, 2, 4),
    "restart-everyone": (1,), "change-membership": (2, 4, 8), "transfer-leadership": (1, 2, 4),
}
# How many kinds a seed enables: few kinds let one weak moment dominate a run.
KIND_ENABLED_PROBABILITIES = (0.0, 0.15, 0.35, 0.7)


@dataclass(frozen=True, slots=True)
class SwarmProfile:
    """One seed's fault mix and intensities (swarm testing, as TigerBeetle's VOPR does).

    Each seed turns fault kinds on or off and draws how hard each one hits, so some
    seeds hammer one weak moment (e.g. leaders crashing right after they append) that
    an even mix would rarely reach. It is a pure function of the seed's RNG and is
    printed with a failing seed.
    """

    event_probability: float
    weights: tuple[tuple[str, int], ...]  # the enabled fault kinds and their weights
    loss_probability_max: float
    duplicate_probability_max: float
    delay_ticks_max: int
    downtime_timeouts_max: int  # a crashed node stays down up to this many election timeouts
    tick_rates: tuple[float, ...]  # clock skew: per-node tick rate (empty: all 1)
    lose_unsynced_on_crash: bool  # a crash takes writes made without a sync
    # A leader dies right after persisting new entries, before replicating them (the
    # old-term entries of Figure 8 come from there), or right after raising its commit
    # index, before telling anyone; per such Ready.
    append_crash_probability: float
    commit_crash_probability: float

    @classmethod
    def draw(cls, rng: random.Random, node_count: int) -> SwarmProfile:
        enabled_probability = rng.choice(KIND_ENABLED_PROBABILITIES)
        weights = tuple(
            (kind, rng.choice(choices)) for kind, choices in FAULT_WEIGHTS.items()
            if kind == "heal-links" or rng.random() < enabled_probability
        )
        skewed = rng.random() < 0.3
        return cls(
            event_probability=rng.choice((0.02, 0.05, 0.1, 0.2)),
            weights=weights,
            loss_probability_max=rng.choice((0.0, 0.02, 0.1, 0.3)),
            duplicate_probability_max=rng.choice((0.0, 0.02, 0.1)),
            delay_ticks_max=rng.choice((1, 2, 3, 5, 8)),
            downtime_timeouts_max=rng.choice((1, 3, 6)),
            tick_rates=tuple(round(rng.uniform(0.6, 1.4), 2) for _ in range(node_count))
            if skewed else (),
            lose_unsynced_on_crash=rng.random() < 0.5,
            append_crash_probability=rng.choice((0.0, 0.5, 0.8)),
            commit_crash_probability=rng.choice((0.0, 0.3, 0.6)),
        )

    def describe(self) -> str:
        kinds = " ".join(f"{kind}={weight}" for kind, weight in self.weights)
        rates = ",".join(f"{rate:g}" for rate in self.tick_rates) or "1"
        return (f"profile: event_p={self.event_probability} [{kinds}] "
                f"loss<={self.loss_probability_max} dup<={self.duplicate_probability_max} "
                f"delay<={self.delay_ticks_max} downtime<={self.downtime_timeouts_max}T "
                f"tick_rates={rates} lose_unsynced={self.lose_unsynced_on_crash} "
                f"leader_crash_after_append={self.append_crash_probability} "
                f"leader_crash_after_commit={self.commit_crash_probability}")


class Nemesis:
    """Picks one fault now and then; `heal()` ends all of them for the liveness phase."""

    def __init__(self, rng: random.Random, cluster: SimCluster, profile: SwarmProfile) -> None:
        self._rng = rng
        self._cluster = cluster
        self.profile = profile
        self.event_probability = profile.event_probability
        self.events: list[str] = []  # what happened, for a failing seed's report
        actions: dict[str, Callable[[], str | None]] = {
            "partition-halves": self._partition_halves, "isolate-leader": self._isolate_leader,
            "partial-partition": self._partial_partition, "one-way-cuts": self._one_way_cuts,
            "slow-links": self._slow_links,
            "heal-links": self._heal_links, "change-link-faults": self._change_link_faults,
            "crash-node": self._crash_node, "crash-leader": self._crash_leader,
            "arm-crash-point": self._arm_crash_point,
            "reboot-node": self._reboot_node, "restart-everyone": self._restart_everyone,
            "change-membership": self._change_membership,
            "transfer-leadership": self._transfer_leadership,
        }
        self._actions = [actions[kind] for kind, _weight in profile.weights]
        self._weights = [weight for _kind, weight in profile.weights]
        if profile.append_crash_probability or profile.commit_crash_probability:
            cluster.crash_hook = self._maybe_crash_leader
        self._restart_at_ticks: dict[int, int] = {}  # crashed node -> when it boots again
        self._armed: set[int] = set()  # nodes with a crash point: they reboot at once
        timeout_ticks = cluster.options.raft.election_timeout_ticks
        self.downtime_ticks_max = profile.downtime_timeouts_max * timeout_ticks

    def maybe_act(self) -> None:
        """Boot nodes whose downtime is over; then maybe perform one weighted fault."""
        self._schedule_restarts()
        if self._rng.random() >= self.event_probability:
            return
        (action,) = self._rng.choices(self._actions, weights=self._weights)
        description = action()
        if description:
            self.events.append(f"t={self._cluster.now_ticks} {description}")

    def _schedule_restarts(self) -> None:
        cluster = self._cluster
        now_ticks = cluster.now_ticks
        for node_id, node in cluster.nodes.items():
            if node.up:
                continue
            due_ticks = self._restart_at_ticks.get(node_id)
            if due_ticks is None:
                quick = node_id in self._armed
                self._armed.discard(node_id)
                downtime_ticks_max = 2 if quick else self.downtime_ticks_max
                self._restart_at_ticks[node_id] = now_ticks + self._rng.randint(
                    1, downtime_ticks_max)
            elif due_ticks <= now_ticks:
                del self._restart_at_ticks[node_id]
                cluster.start(node_id)
                self.events.append(f"t={now_ticks} restart {node_id}")

    def heal(self) -> None:
        """Restore every link, calm the network and the clocks, boot every node that is down."""
        cluster = self._cluster
        cluster.crash_hook = None
        cluster.calm_clocks()
        cluster.network.heal()
        cluster.network.set_faults(CALM)
        self._restart_at_ticks.clear()
        self._armed.clear()
        for node_id, node in cluster.nodes.items():
            node.crash_point = CrashPoint.NONE
            if not node.up:
                cluster.start(node_id)
        self.events.append(f"t={cluster.now_ticks} heal")

    # -- partitions -------------------------------------------------------------------

    def _node_ids(self) -> list[int]:
        return list(self._cluster.nodes)

    def _partition_halves(self) -> str:
        node_ids = self._node_ids()
        self._rng.shuffle(node_ids)
        cut = self._rng.randint(1, len(node_ids) // 2 or 1)
        groups = [node_ids[:cut], node_ids[cut:]]
        self._cluster.network.partition(groups)
        return f"partition {groups}"

    def _isolate_leader(self) -> str | None:
        leader = self._cluster.leader_id()
        if leader is None:
            return None
        self._cluster.network.isolate(leader, self._node_ids())
        return f"isolate leader {leader}"

    def _partial_partition(self) -> str:
        """A node that reaches only some peers (e.g. only its link to the leader is cut)."""
        node_ids = self._node_ids()
        victim = self._rng.choice(node_ids)
        others = [node_id for node_id in node_ids if node_id != victim]
        if not others:
            return "partial: nothing to cut"
        leader = self._cluster.leader_id()
        if leader is not None and leader != victim and self._rng.random() < 0.5:
            lost = [leader]
        else:
            lost = self._rng.sample(others, self._rng.randint(1, len(others)))
        for peer in lost:
            self._cluster.network.cut(victim, peer)
        return f"partial: {victim} loses {lost}"

    def _one_way_cuts(self) -> str:
        node_ids = self._node_ids()
        cuts = []
        for _ in range(self._rng.randint(1, len(node_ids))):
            if len(node_ids) > 1:
                source, target = self._rng.sample(node_ids, 2)
                self._cluster.network.cut_one_way(source, target)
                cuts.append((source, target))
        return f"one-way cuts {cuts}"

    def _slow_links(self) -> str:
        """Stall a node's outgoing links, the leader's more often than not, by one to a few
        election timeouts: its followers elect a successor, and its appends straggle in
        after they serve that successor (§5.1)."""
        cluster = self._cluster
        leader = cluster.leader_id()
        node_ids = self._node_ids()
        if leader is not None and self._rng.random() < 0.75:
            victim = leader
        else:
            victim = self._rng.choice(node_ids)
        timeout_ticks = cluster.options.raft.election_timeout_ticks
        extra_ticks = self._rng.randint(timeout_ticks, 4 * timeout_ticks)
        for peer in node_ids:
            if peer != victim:
                cluster.network.slow(victim, peer, extra_ticks)
        return f"slow links from {victim} by {extra_ticks} ticks"

    def _heal_links(self) -> str:
        self._cluster.network.heal()
        return "heal links"

    def _change_link_faults(self) -> str:
        rng, profile = self._rng, self.profile
        faults = LinkFaults(
            loss_probability=rng.uniform(0.0, profile.loss_probability_max),
            duplicate_probability=rng.uniform(0.0, profile.duplicate_probability_max),
            delay_ticks_min=1,
            delay_ticks_max=rng.randint(1, profile.delay_ticks_max),
        )
        self._cluster.network.set_faults(faults)
        return f"link faults {faults}"

    # -- crashes ----------------------------------------------------------------------

    def _down_budget(self) -> int:
        cluster = self._cluster
        voters = cluster.conf_state().voters
        unavailable = sum(1 for node_id in voters if not cluster.nodes[node_id].up
                          or cluster.nodes[node_id].crash_point is not CrashPoint.NONE)
        return (len(voters) - 1) // 2 - unavailable

    def _crash_node(self) -> str | None:
        live = self._cluster.live_node_ids()
        if self._down_budget() <= 0 or not live:
            return None
        victim = self._rng.choice(live)
        self._cluster.crash(victim)
        return f"crash {victim}"

    def _crash_leader(self) -> str | None:
        leader = self._cluster.leader_id()
        if leader is None or self._down_budget() <= 0:
            return None
        self._cluster.crash(leader)
        return f"crash leader {leader}"

    def _arm_crash_point(self) -> str | None:
        live = self._cluster.live_node_ids()
        if self._down_budget() <= 0 or not live:
            return None
        victim = self._rng.choice(live)
        point = self._rng.choice(ARMED_POINTS)
        self._cluster.nodes[victim].crash_point = point
        self._armed.add(victim)
        return f"arm crash of {victim} at {point.value}"

    def _maybe_crash_leader(self, node: SimNode, ready: Ready) -> bool:
        """The crash hook: a leader may die right after appending or after committing.

        It reboots within two ticks, as an armed node does, so it can lead again: the
        history of Figure 8 (§5.4.2) needs leaders that come back.
        """
        raft = node.raft
        if raft is None or raft.role is not Role.LEADER:
            return False
        profile = self.profile
        appended = bool(ready.entries) and profile.append_crash_probability > 0
        committed = ready.hard_state is not None and profile.commit_crash_probability > 0
        if not appended and not committed:
            return False
        probability = profile.append_crash_probability if appended else 0.0
        if committed:
            probability = max(probability, profile.commit_crash_probability)
        if self._rng.random() >= probability or self._down_budget() <= 0:
            return False
        self._armed.add(node.node_id)
        moment = "appending" if appended else "committing"
        self.events.append(f"t={self._cluster.now_ticks} leader {node.node_id} crashes after {moment}")
        return True

    def _reboot_node(self) -> str | None:
        """Crash a node and boot it again at once: it keeps only what it persisted."""
        live = self._cluster.live_node_ids()
        if not live:
            return None
        victim = self._rng.choice(live)
        self._cluster.restart(victim)
        return f"reboot {victim}"

    def _change_membership(self) -> str | None:
        """Propose a membership change on the leader, and half the time a second one right
        behind it (§4.1 allows one at a time: the core must refuse the second)."""
        leader = self._cluster.leader_id()
        if leader is None:
            return None
        first = self._propose_membership(leader)
        if self._rng.random() < 0.5 and self._cluster.leader_id() == leader:
            return f"{first}; then {self._propose_membership(leader)}"
        return first

    def _propose_membership(self, leader: int) -> str:
        """Add a learner (a fresh id), promote one, or remove a voter (maybe the leader),
        whichever the configuration allows, with even odds.

        Learners may linger and be added to a full cluster, so elections happen while
        they are members (they must not count as voters, §4.2.1).
        """
        cluster, rng = self._cluster, self._rng
        conf = cluster.raft(leader).conf_state
        kinds = [kind for kind, allowed in (
            (ConfChangeType.ADD_LEARNER, len(conf.learners) < LEARNERS_MAX),
            (ConfChangeType.ADD_VOTER, bool(conf.learners) and len(conf.voters) < MEMBERS_MAX),
            (ConfChangeType.REMOVE_NODE, len(conf.voters) > MEMBERS_MIN)) if allowed]
        kind = rng.choice(kinds)
        if kind is ConfChangeType.ADD_VOTER:
            change = ConfChange(kind, rng.choice(conf.learners))
        elif kind is ConfChangeType.REMOVE_NODE:
            change = ConfChange(kind, rng.choice(conf.voters))
        else:
            new_id = max(cluster.nodes) + 1
            cluster.add_node(new_id)
            change = ConfChange(kind, new_id)
        try:
            cluster.propose_conf_change(leader, change)
        except ProposalDropped as refusal:
            return f"{change.type.name} {change.node_id} refused: {refusal.reason}"
        return f"propose {change.type.name} {change.node_id} on leader {leader}"

    def _transfer_leadership(self) -> str | None:
        """Ask the leader to hand over to a random voter (caught up or not)."""
        cluster = self._cluster
        leader = cluster.leader_id()
        if leader is None:
            return None
        targets = [node for node in cluster.raft(leader).conf_state.voters if node != leader]
        if not targets:
            return None
        target = self._rng.choice(targets)
        try:
            cluster.transfer_leadership(leader, target)
        except ProposalDropped as refusal:
            return f"transfer {leader} -> {target} refused: {refusal.reason}"
        return f"transfer leadership {leader} -> {target}"

    def _restart_everyone(self) -> str:
        cluster = self._cluster
        for node_id in cluster.live_node_ids():
            cluster.crash(node_id)
        cluster.network.drop_in_flight()
        for node_id in cluster.nodes:
            cluster.start(node_id)
        return "whole-cluster restart"
