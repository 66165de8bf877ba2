"""In-memory twins of the node's disk and transport, for shell tests on virtual time.

`MemoryDisk` is `DiskStorage`'s write side over the core's `MemoryStorage`; `MemoryNetwork`
connects `MemoryTransport`s in one event loop, with links that can be cut. Together with
`ManualClock` they run real drivers, appliers, executors and leader loops on virtual time
(as hashicorp/raft's in-memory transport does), so a test about scheduling or pick-up
needs neither sockets nor fsync nor wall-clock waits. Properties about sockets, files and
processes keep their real-process tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from warmd.clock import ManualClock, Timer
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfState, Entry, HardState, Message, Snapshot
from warmd.runtime.node.transport import Deliver, TransportStatistics


class MemoryDisk(MemoryStorage):
    """What the driver writes, kept in memory; "durable" the moment `save` returns."""

    def __init__(self, conf_state: ConfState | None = None) -> None:
        super().__init__(conf_state)
        self.saves = 0

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None, sync: bool) -> None:
        if snapshot is not None:
            self.apply_snapshot(snapshot)
        if entries:
            self.append(entries)
        if hard_state is not None:
            self.set_hard_state(hard_state)
        self.saves += 1

    def save_all(self, saves: Sequence[tuple[HardState | None, Sequence[Entry]]]) -> None:
        """The writer's merged saves (DiskStorage.save_all): each in turn."""
        for hard_state, entries in saves:
            self.save(hard_state, entries, None, sync=False)

    def sync(self) -> None:
        """Nothing to sync: every save is "durable" already."""

    def write_snapshot_file(self, snapshot: Snapshot) -> None:
        """Nothing to write: `adopt_snapshot` keeps it."""

    def adopt_snapshot(self, snapshot: Snapshot) -> None:
        self.save_compaction(snapshot)

    @property
    def failed(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to release."""


class MemoryNetwork:
    """Delivers messages between the transports attached to it; links can be cut."""

    def __init__(self) -> None:
        self._inboxes: dict[int, asyncio.Queue[Message]] = {}
        self._cut: set[frozenset[int]] = set()
        self.delivered = 0

    def attach(self, node_id: int) -> MemoryTransport:
        self._inboxes[node_id] = asyncio.Queue()
        return MemoryTransport(self, node_id)

    def detach(self, node_id: int) -> None:
        self._inboxes.pop(node_id, None)

    def cut(self, a: int, b: int) -> None:
        self._cut.add(frozenset({a, b}))

    def heal(self) -> None:
        self._cut.clear()

    def isolate(self, node_id: int) -> None:
        for other in self._inboxes:
            if other != node_id:
                self.cut(node_id, other)

    def deliver(self, message: Message) -> None:
        inbox = self._inboxes.get(message.to)
        if inbox is None or frozenset({message.from_id, message.to}) in self._cut:
            return
        inbox.put_nowait(message)
        self.delivered += 1

    def inbox(self, node_id: int) -> asyncio.Queue[Message]:
        return self._inboxes[node_id]


class MemoryTransport:
    """The `Transport` protocol over a MemoryNetwork."""

    def __init__(self, network: MemoryNetwork, node_id: int) -> None:
        self._network = network
        self.node_id = node_id

    async def start(self) -> None:
        """Attached already."""

    async def send(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self._network.deliver(message)

    async def received(self) -> AsyncIterator[Message]:
        inbox = self._network.inbox(self.node_id)
        while True:
            yield await inbox.get()

    def deliver_to(self, deliver: Deliver | None) -> None:
        """Messages come through `received()` only: the fake keeps its one inbox per node."""

    def update_peers(self, peers: Mapping[int, tuple[str, int]]) -> None:
        """Every attached node is reachable by id: addresses are not needed."""

    def statistics(self) -> TransportStatistics:
        return TransportStatistics()

    async def close(self) -> None:
        self._network.detach(self.node_id)


class SkewedClock:
    """Another node's view of a shared ManualClock: the same monotonic time and timers, a
    wall clock off by `offset_ms` (set it again to make the clock jump)."""

    def __init__(self, base: ManualClock, offset_ms: int) -> None:
        self.base = base
        self.offset_ms = offset_ms

    def monotonic(self) -> float:
        return self.base.monotonic()

    def wall_ms(self) -> int:
        return self.base.wall_ms() + self.offset_ms

    async def sleep(self, duration_s: float) -> None:
        await self.base.sleep(duration_s)

    def call_later(self, delay_s: float, callback: Callable[..., object], *args: Any) -> Timer:
        return self.base.call_later(delay_s, callback, *args)
