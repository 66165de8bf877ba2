"""The fault schedule of a simulated run: partitions, link faults, crashes and restarts.

Every choice comes from the run's seeded RNG. Each seed enables its own random subset
of fault kinds with random weights (swarm testing, as TigerBeetle's VOPR does), so
some seeds hammer one fault hard. Crashes are short: a crashed node boots again within
a few election timeouts, and at most a minority of voters is down at once, except for
rare whole-cluster restarts. Armed crash points kill a node at a dangerous instant:
right after it persisted, right after it granted a vote, right after it won.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from warmd.raft.errors import ProposalDropped
from warmd.raft.types import ConfChange, ConfChangeType
from warmd.testing.cluster import CrashPoint, SimCluster
from warmd.testing.network import LinkFaults

CALM = LinkFaults(delay_ticks_min=1, delay_ticks_max=2)
MEMBERS_MIN, MEMBERS_MAX = 3, 5  # voters kept within this range by membership changes
_WEIGHTS = {"_restart_everyone": (1,), "_change_membership": (2, 4, 8)}  # default (1, 2, 4)
ARMED_POINTS = (CrashPoint.AFTER_PERSIST, CrashPoint.AFTER_VOTE, CrashPoint.AFTER_ELECTED)


class Nemesis:
    """Picks one fault now and then; `heal()` ends all of them for the liveness phase."""

    def __init__(self, rng: random.Random, cluster: SimCluster, event_probability: float) -> None:
        self._rng = rng
        self._cluster = cluster
        self.event_probability = event_probability
        self.events: list[str] = []  # what happened, for a failing seed's report
        actions: list[Callable[[], str | None]] = [
            self._partition_halves, self._isolate_leader, self._partial_partition,
            self._one_way_cuts, self._heal_links, self._change_link_faults,
            self._crash_node, self._crash_leader, self._arm_crash_point,
            self._reboot_node, self._restart_everyone, self._change_membership,
            self._transfer_leadership,
        ]
        # Swarm testing: each kind is off for some seeds; healing never is.
        self._actions = [action for action in actions
                         if action == self._heal_links or rng.random() < 0.7]
        self._weights = [
            rng.choice(_WEIGHTS.get(action.__name__, (1, 2, 4))) for action in self._actions
        ]
        self._restart_at_ticks: dict[int, int] = {}  # crashed node -> when it boots again
        self._armed: set[int] = set()  # nodes with a crash point: they reboot at once
        self.downtime_ticks_max = 3 * cluster.options.raft.election_timeout_ticks

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
        """Restore every link, calm the network and boot every node that is down."""
        cluster = self._cluster
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

    def _heal_links(self) -> str:
        self._cluster.network.heal()
        return "heal links"

    def _change_link_faults(self) -> str:
        rng = self._rng
        faults = LinkFaults(
            loss_probability=rng.choice((0.0, 0.02, 0.1, 0.3)),
            duplicate_probability=rng.choice((0.0, 0.02, 0.1)),
            delay_ticks_min=1,
            delay_ticks_max=rng.choice((1, 2, 3, 5, 8)),
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

    def _reboot_node(self) -> str | None:
        """Crash a node and boot it again at once: it keeps only what it persisted."""
        live = self._cluster.live_node_ids()
        if not live:
            return None
        victim = self._rng.choice(live)
        self._cluster.restart(victim)
        return f"reboot {victim}"

    def _change_membership(self) -> str | None:
        """Add a learner (a fresh id), promote one, or remove a voter (maybe the leader)."""
        cluster = self._cluster
        leader = cluster.leader_id()
        if leader is None:
            return None
        conf = cluster.raft(leader).conf_state
        if conf.learners:
            change = ConfChange(ConfChangeType.ADD_VOTER, self._rng.choice(conf.learners))
        elif len(conf.voters) > MEMBERS_MIN and (len(conf.voters) >= MEMBERS_MAX
                                                 or self._rng.random() < 0.5):
            change = ConfChange(ConfChangeType.REMOVE_NODE, self._rng.choice(conf.voters))
        else:
            new_id = max(cluster.nodes) + 1
            cluster.add_node(new_id)
            change = ConfChange(ConfChangeType.ADD_LEARNER, new_id)
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
