"""The change feed: wake a loop when the part of the state it reads has changed.

The applier publishes the topics each batch of committed entries changed (see
`statemachine/topics.py`), the driver publishes leadership changes. A reader holds a
`Subscription` to the topics it cares about; changes accumulate in it between reads, so a
change published while the reader was busy is never lost, and many changes while it was
busy wake it once. `wait()` also returns at the reader's own deadline, so a loop wakes "on
a change or when its next timer is due", never on a fixed poll.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable
from typing import Any

from warmd.clock import Clock
from warmd.statemachine.topics import Topic


class Subscription:
    """Changes of some topics, accumulated until the reader takes them."""

    def __init__(self, feed: ChangeFeed, topics: frozenset[Topic]) -> None:
        self.topics = topics
        self._feed = feed
        self._pending: set[Topic] = set()
        self._wakeup = asyncio.Event()

    def _offer(self, topics: frozenset[Topic]) -> None:
        wanted = topics & self.topics
        if wanted:
            self._pending |= wanted
            self._wakeup.set()

    def poke(self) -> None:
        """Wake the reader without a topic (an event from outside the state)."""
        self._wakeup.set()

    def take(self) -> frozenset[Topic]:
        """The topics changed since the last take (empty when none)."""
        pending, self._pending = frozenset(self._pending), set()
        self._wakeup.clear()
        return pending

    async def wait(self, timeout_s: float | None = None) -> frozenset[Topic]:
        """Wait for a change (at once if one is pending) or `timeout_s` of the feed's clock;
        returns and clears the changed topics (empty on a timeout)."""
        if not self._pending and (timeout_s is None or timeout_s > 0):
            await self._feed.wait_event(self._wakeup, timeout_s)
        return self.take()

    def close(self) -> None:
        self._feed.unsubscribe(self)


class ChangeFeed:
    """Fan-out of change notices to subscriptions, plus waits for an applied index."""

    def __init__(self, clock: Clock, applied_index: int = 0) -> None:
        self.clock = clock
        self.applied_index = applied_index
        self._subscriptions: list[Subscription] = []
        self._index_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._sequence = itertools.count()

    def subscribe(self, topics: Iterable[Topic]) -> Subscription:
        subscription = Subscription(self, frozenset(topics))
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def publish(self, topics: Iterable[Topic], applied_index: int | None = None) -> None:
        """Tell every interested subscription; release index waiters now satisfied."""
        changed = frozenset(topics)
        if changed:
            for subscription in self._subscriptions:
                subscription._offer(changed)
        if applied_index is not None and applied_index > self.applied_index:
            self.applied_index = applied_index
            self._release_index_waiters()

    async def wait_applied(self, index: int, timeout_s: float | None = None) -> bool:
        """Wait until entries up to `index` are applied here; False on a timeout."""
        if self.applied_index >= index:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._index_waiters, (index, next(self._sequence), future))
        try:
            await self._within(future, timeout_s)
        finally:
            if not future.done():
                future.cancel()
        return self.applied_index >= index

    def _release_index_waiters(self) -> None:
        waiters = self._index_waiters
        while waiters and waiters[0][0] <= self.applied_index:
            _, _, future = heapq.heappop(waiters)
            if not future.done():
                future.set_result(None)

    async def wait_event(self, event: asyncio.Event, timeout_s: float | None) -> None:
        """Wait for `event` or `timeout_s` seconds of this feed's clock, whichever is first."""
        waiter = asyncio.ensure_future(event.wait())
        try:
            await self._within(waiter, timeout_s)
        finally:
            waiter.cancel()

    async def _within(self, awaitable: asyncio.Future[Any],
                      timeout_s: float | None) -> None:
        if timeout_s is None:
            await awaitable
            return
        timer = asyncio.ensure_future(self.clock.sleep(max(0.0, timeout_s)))
        try:
            await asyncio.wait({awaitable, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
