"""SimNetwork: a seeded, in-memory network between simulated Raft nodes.

It loses, delays, duplicates and reorders messages, and cuts links: symmetric and
one-way cuts, group partitions, and partial partitions (a node that reaches only
some peers). Every random choice comes from the injected `random.Random`, so one
seed replays the same deliveries.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from warmd.raft.types import Message

MessageFilter = Callable[[Message], bool]


@dataclass(frozen=True, slots=True)
class LinkFaults:
    """How every link misbehaves; delays are drawn uniformly, which also reorders."""

    loss_probability: float = 0.0
    duplicate_probability: float = 0.0
    delay_ticks_min: int = 1
    delay_ticks_max: int = 1

    def __post_init__(self) -> None:
        for name in ("loss_probability", "duplicate_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if not 1 <= self.delay_ticks_min <= self.delay_ticks_max:
            raise ValueError(
                "need 1 <= delay_ticks_min <= delay_ticks_max, got "
                f"{self.delay_ticks_min}..{self.delay_ticks_max}"
            )


@dataclass(frozen=True, slots=True)
class NetworkStatistics:
    """Counters since the network was made (a frozen snapshot)."""

    sent: int
    delivered: int
    lost: int
    blocked: int
    filtered: int
    duplicated: int
    in_flight: int


class SimNetwork:
    """Queues messages by delivery tick; `deliver_due(now)` hands over what has arrived.

    A message is dropped when its link is cut at send time or at delivery time (a
    partition swallows what was in flight), when a filter rejects it, or by loss.
    """

    def __init__(self, rng: random.Random, faults: LinkFaults | None = None) -> None:
        self._rng = rng
        self.faults = faults or LinkFaults()
        self._queue: list[tuple[int, int, Message]] = []
        self._sequence = 0
        self._blocked: set[tuple[int, int]] = set()
        self._slow: dict[tuple[int, int], int] = {}  # link -> extra delay of its messages
        self._filters: list[MessageFilter] = []
        self._counts = dict.fromkeys(
            ("sent", "delivered", "lost", "blocked", "filtered", "duplicated"), 0
        )

    # -- faults ---------------------------------------------------------------

    def set_faults(self, faults: LinkFaults) -> None:
        """Change loss, duplication and delay for messages sent from now on."""
        self.faults = faults

    def cut(self, node_a: int, node_b: int) -> None:
        """Cut the link between two nodes in both directions."""
        self._blocked.add((node_a, node_b))
        self._blocked.add((node_b, node_a))

    def cut_one_way(self, source: int, target: int) -> None:
        """Cut only `source -> target`: an asymmetric partition."""
        self._blocked.add((source, target))

    def slow(self, source: int, target: int, extra_ticks: int) -> None:
        """Delay `source -> target` by `extra_ticks` more ticks (a stalled connection):
        its messages straggle in after other traffic, e.g. a deposed leader's appends
        reaching a follower of its successor."""
        self._slow[(source, target)] = extra_ticks

    def isolate(self, node_id: int, peers: Iterable[int]) -> None:
        """Cut `node_id` off from every node in `peers`."""
        for peer in peers:
            if peer != node_id:
                self.cut(node_id, peer)

    def partition(self, groups: Sequence[Collection[int]]) -> None:
        """Cut every link between nodes of different groups; links inside a group stay."""
        for group_number, group in enumerate(groups):
            for other in groups[group_number + 1 :]:
                for node_a in group:
                    for node_b in other:
                        self.cut(node_a, node_b)

    def heal(self) -> None:
        """Restore every cut or slowed link (filters and loss settings stay)."""
        self._blocked.clear()
        self._slow.clear()

    def can_reach(self, source: int, target: int) -> bool:
        """Whether `source -> target` is currently not cut."""
        return (source, target) not in self._blocked

    def cut_links(self) -> frozenset[tuple[int, int]]:
        """The directed links that are cut now."""
        return frozenset(self._blocked)

    def add_filter(self, predicate: MessageFilter) -> MessageFilter:
        """Drop every message for which `predicate` returns True; returns it for removal."""
        self._filters.append(predicate)
        return predicate

    def remove_filter(self, predicate: MessageFilter) -> None:
        """Stop applying a filter added with `add_filter`."""
        self._filters.remove(predicate)

    # -- traffic --------------------------------------------------------------

    def send(self, message: Message, now_ticks: int) -> None:
        """Put a message on the wire at time `now_ticks` (it may be lost or doubled)."""
        self._counts["sent"] += 1
        if (message.from_id, message.to) in self._blocked:
            self._counts["blocked"] += 1
            return
        faults = self.faults
        rng = self._rng
        if faults.loss_probability and rng.random() < faults.loss_probability:
            self._counts["lost"] += 1
            return
        copies = 1
        if faults.duplicate_probability and rng.random() < faults.duplicate_probability:
            copies = 2
            self._counts["duplicated"] += 1
        for _ in range(copies):
            delay_ticks = faults.delay_ticks_min
            if faults.delay_ticks_max > delay_ticks:
                delay_ticks = rng.randint(faults.delay_ticks_min, faults.delay_ticks_max)
            if self._slow and (message.from_id, message.to) in self._slow:
                delay_ticks += self._slow[(message.from_id, message.to)]
            self._sequence += 1
            heapq.heappush(self._queue, (now_ticks + delay_ticks, self._sequence, message))

    def deliver_due(self, now_ticks: int) -> list[Message]:
        """Remove and return the messages due by `now_ticks`, in arrival order."""
        queue = self._queue
        arrived: list[Message] = []
        while queue and queue[0][0] <= now_ticks:
            message = heapq.heappop(queue)[2]
            if (message.from_id, message.to) in self._blocked:
                self._counts["blocked"] += 1
            elif self._filters and any(rule(message) for rule in self._filters):
                self._counts["filtered"] += 1
            else:
                arrived.append(message)
        self._counts["delivered"] += len(arrived)
        return arrived

    def drop_in_flight(self) -> int:
        """Discard every queued message (e.g. a whole-cluster restart); returns how many."""
        dropped = len(self._queue)
        self._queue.clear()
        return dropped

    def in_flight(self) -> int:
        """How many messages are queued and not yet delivered."""
        return len(self._queue)

    def statistics(self) -> NetworkStatistics:
        """A frozen snapshot of the traffic counters."""
        return NetworkStatistics(in_flight=len(self._queue), **self._counts)
