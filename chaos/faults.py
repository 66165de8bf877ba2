"""The nemesis: faults drawn from a seeded random source and applied to real processes.

One fault at a time, each held for a while and then healed, so a majority stays able to
make progress most of the time (a partition may still leave the leader's side with only a
bare majority). The schedule is a pure function of the seed; what it hits (which node is
leader) depends on the run, so a replay reproduces the schedule, not every interleaving.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from chaos.disk_faults import cut_log_tail, wipe_data
from chaos.ops import pause
from chaos.proxy import FaultProxy, Link
from warmd.admin.client import AdminClientError
from warmd.testing.procs import ProcessCluster

FAULT_KINDS = ("kill-leader", "kill-follower", "pause", "partition-full", "partition-asymmetric",
               "partition-partial", "transfer-leader", "truncated-log", "wiped-data")
DISK_FAULTS = ("truncated-log", "wiped-data")  # a follower's disk loses what it acknowledged
CUT_ENTRIES_MAX = 5


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One injected fault, for the report."""

    kind: str
    nodes: tuple[int, ...]
    hold_s: float


class Nemesis:
    """Applies faults to `cluster` through `proxy`; `inject(rng)` does one and heals it."""

    def __init__(self, cluster: ProcessCluster, proxy: FaultProxy, lease_ms: int,
                 log: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.proxy = proxy
        self.lease_s = lease_ms / 1000
        self.log = log
        self.records: list[FaultRecord] = []

    def _leader(self) -> int | None:
        try:
            return self.cluster.wait_for_leader(timeout_s=10)
        except Exception:  # no agreed leader now: pick at random instead
            return None

    def inject(self, rng: random.Random) -> FaultRecord:
        """Draw one fault from `rng`, apply it, hold it, heal it; return what was done."""
        kind = rng.choice(FAULT_KINDS)
        ids = sorted(self.cluster.nodes)
        leader = self._leader() or rng.choice(ids)
        others = [node_id for node_id in ids if node_id != leader]
        victim = leader if kind == "kill-leader" else rng.choice(others)
        hold_s = round(rng.uniform(self.lease_s * 1.2, self.lease_s * 2.5), 2)
        nodes: tuple[int, ...] = (victim,)
        self.log(f"fault {len(self.records) + 1}: {kind} node {victim} for {hold_s} s")
        if kind in ("kill-leader", "kill-follower"):
            self.cluster.kill(victim)
            time.sleep(hold_s)
            self.cluster.start(victim)
        elif kind in DISK_FAULTS:
            self._damage_disk(kind, victim, hold_s, rng)
        elif kind == "pause":
            pause(self.cluster, victim, paused=True)
            time.sleep(hold_s)
            pause(self.cluster, victim, paused=False)
        elif kind == "transfer-leader":
            with_target = rng.choice(others)
            nodes = (leader, with_target)
            try:
                self.cluster.call(leader, "transfer-leader", node_id=with_target)
            except AdminClientError as error:
                self.log(f"  transfer refused: {error}")
            time.sleep(hold_s / 2)
        else:
            links, nodes = self._partition(kind, victim, ids, rng)
            self.proxy.block(links)
            time.sleep(hold_s)
            self.proxy.block(())
        record = FaultRecord(kind, nodes, hold_s)
        self.records.append(record)
        return record

    def _damage_disk(self, kind: str, victim: int, hold_s: float, rng: random.Random) -> None:
        """Kill a follower, take part of its disk away, restart it under the same id.

        The leader must find the loss at its next heartbeat, re-send what is missing and
        never spin on rejections (docs/raft.md, "A member whose disk lost entries").
        """
        self.cluster.kill(victim)
        data_dir = self.cluster.nodes[victim].data_dir
        if kind == "truncated-log":
            cut = cut_log_tail(data_dir, rng.randint(1, CUT_ENTRIES_MAX))
            self.log(f"  cut entries {cut.first_index}..{cut.last_index} "
                     f"(known committed up to {cut.commit_floor})")
        else:
            self.log(f"  wiped {wipe_data(data_dir)} files")
        time.sleep(hold_s / 2)
        self.cluster.start(victim)

    @staticmethod
    def _partition(kind: str, victim: int, ids: list[int],
                   rng: random.Random) -> tuple[set[Link], tuple[int, ...]]:
        """The links to block for a partition kind around `victim`."""
        others = [node_id for node_id in ids if node_id != victim]
        if kind == "partition-full":
            return {(victim, o) for o in others} | {(o, victim) for o in others}, (victim,)
        if kind == "partition-asymmetric":
            outbound = rng.random() < 0.5  # the victim cannot send, or cannot hear
            links = {(victim, o) for o in others} if outbound else {(o, victim) for o in others}
            return links, (victim,)
        # partial: the victim is a bridge; the others split in two halves that cannot talk
        shuffled = others[:]
        rng.shuffle(shuffled)
        half = max(1, len(shuffled) // 2)
        left, right = shuffled[:half], shuffled[half:]
        links = {(a, b) for a in left for b in right} | {(b, a) for a in left for b in right}
        return links, (*sorted(left), victim, *sorted(right))
