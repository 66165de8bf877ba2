"""Watch cache servers for flushes and restarts, and keep their hit/miss counters over time.

`detect_events` is pure (two stats snapshots in, events out); `CacheWatcher` is the shell
that polls each backend's `stats()`, queues the events for the leader's planner and answers
"how many hits and misses in this window" for the effect record. It never closes backends.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise

from warmd.cache.base import BackendStats, CacheBackend, NodeStats
from warmd.cache.effect import points_between
from warmd.clock import Clock, SystemClock
from warmd.errors import CacheError, CacheUnavailable, ConfigError
from warmd.logging import get_logger

__all__ = [
    "CACHE_FLUSH", "CACHE_RESTART", "EVENT_KINDS", "CacheEvent", "CacheWatcher", "WatchSettings",
    "detect_events",
]

_log = get_logger("warmd.cache_watch")

CACHE_FLUSH = "cache-flush"
CACHE_RESTART = "cache-restart"
EVENT_KINDS = (CACHE_FLUSH, CACHE_RESTART)


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """How often to poll and what counts as a flush.

    `flush_fraction`: keys must fall to at most this share of the previous count.
    `min_keys`: a node that held fewer keys cannot be "flushed" (an almost empty cache
    emptying is normal churn, and warming it would buy nothing).
    `history_samples`: samples kept per cache for `hits_between` (3600 = one hour at 1 s).
    `stats_timeout_s`: a poll (all its attempts) slower than this counts as an outage, so
    one hung server cannot stall the watch of the others.
    `event_queue_size`: events kept for a slow consumer; past it the oldest are dropped
    (a flapping cache must not grow memory on a node whose planner is not reading).
    `stats_attempts`: tries per poll while the cache is unavailable. A server restart leaves
    each pooled connection stale and each fails once (Redis keeps 4 per node), so quick
    retries tell a restart apart from an outage; a refused connection fails in microseconds.
    """

    interval_s: float = 1.0
    flush_fraction: float = 0.1
    min_keys: int = 10
    history_samples: int = 3600
    stats_timeout_s: float = 5.0
    stats_attempts: int = 5
    event_queue_size: int = 1000

    def __post_init__(self) -> None:
        """Reject settings that would make the watcher spin, never fire or fire always.

        Raises:
            ConfigError: a non-positive interval or timeout, a fraction outside [0, 1),
                `min_keys` < 1 or fewer than 2 history samples.
        """
        for name in ("interval_s", "stats_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"cache watch {name} must be a positive number, got {value!r}")
        if not isinstance(self.flush_fraction, int | float) or not 0 <= self.flush_fraction < 1:
            raise ConfigError(
                f"cache watch flush_fraction must be in [0, 1), got {self.flush_fraction!r}")
        if not isinstance(self.min_keys, int) or self.min_keys < 1:
            raise ConfigError(f"cache watch min_keys must be an integer >= 1, "
                              f"got {self.min_keys!r}")
        if not isinstance(self.stats_attempts, int) or self.stats_attempts < 1:
            raise ConfigError(f"cache watch stats_attempts must be an integer >= 1, "
                              f"got {self.stats_attempts!r}")
        if not isinstance(self.event_queue_size, int) or self.event_queue_size < 1:
            raise ConfigError(f"cache watch event_queue_size must be an integer >= 1, "
                              f"got {self.event_queue_size!r}")
        if not isinstance(self.history_samples, int) or self.history_samples < 2:
            raise ConfigError(f"cache watch history_samples must be an integer >= 2, "
                              f"got {self.history_samples!r}")


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """A watched cache node was flushed or restarted (a reason to plan a warm-up).

    `at_s` is the monotonic time of the sample that showed the event (the watcher stamps
    it; the change happened between the previous sample and this one), so the planner can
    take the "before" window as ending one interval earlier.
    """

    cache: str
    kind: str  # "cache-flush" | "cache-restart"
    node: str
    detail: str
    at_s: float = 0.0


def _restart_detail(old: NodeStats, new: NodeStats) -> str | None:
    """Why `new` looks like a restarted server, or None.

    A known run_id on both sides decides alone: equal ids with lower counters are a
    CONFIG RESETSTAT, not a restart. Without ids, any counter going down means a reset.
    """
    if old.run_id and new.run_id:
        if old.run_id == new.run_id:
            return None
        return f"run_id {old.run_id} -> {new.run_id}"
    old_total, new_total = old.hits + old.misses, new.hits + new.misses
    if new_total < old_total or new.hits < old.hits or new.misses < old.misses:
        return f"hits+misses {old_total} -> {new_total}"
    return None


def _flush_detail(old: NodeStats, new: NodeStats, settings: WatchSettings) -> str | None:
    """Why `new` looks flushed, or None.

    A server that counts flush commands (memcached) is judged by that count alone: it
    rises on the next poll although memcached frees flushed items lazily, and a key count
    that collapses without it is mass TTL expiry. Otherwise (Redis) the keys must collapse
    from a real population, and not mostly through TTL expiry or eviction: keys warmed
    together expire together, and re-warming on that would chase our own TTLs.
    """
    if old.keys < settings.min_keys:
        return None
    if old.flushes is not None and new.flushes is not None:
        if new.flushes > old.flushes:
            return f"flushes {old.flushes} -> {new.flushes}, keys {old.keys} -> {new.keys}"
        return None
    if new.keys > settings.flush_fraction * old.keys:
        return None
    removed = max(0, new.expired - old.expired) + max(0, new.evictions - old.evictions)
    if removed * 2 >= old.keys - new.keys:
        return None
    return f"keys {old.keys} -> {new.keys}"


def detect_events(cache: str, previous: BackendStats, current: BackendStats,
                  settings: WatchSettings, at_s: float = 0.0) -> list[CacheEvent]:
    """Flush and restart events between two snapshots of one cache (pure).

    A restart hides a flush on the same node (a restarted server without persistence is
    empty anyway). Nodes absent from either snapshot give no event: a node that vanished
    is an outage (counted by the watcher), and a new node has nothing to compare with.
    """
    before = {node.node: node for node in previous.nodes}
    events: list[CacheEvent] = []
    seen: set[str] = set()
    for node in current.nodes:
        old = before.get(node.node)
        if old is None or node.node in seen:
            continue
        seen.add(node.node)
        detail = _restart_detail(old, node)
        if detail is not None:
            events.append(CacheEvent(cache, CACHE_RESTART, node.node, detail, at_s))
            continue
        detail = _flush_detail(old, node, settings)
        if detail is not None:
            events.append(CacheEvent(cache, CACHE_FLUSH, node.node, detail, at_s))
    return events


class CacheWatcher:
    """Polls every backend's counters, queues flush/restart events, keeps a hit history.

    One slow or unreachable cache never delays or stops the others: caches are polled
    concurrently, a failure is counted in `errors[cache]` and logged once per outage, and
    the last good snapshot stays the baseline, so a restart during the outage is still
    seen when the server answers again.
    """

    def __init__(self, backends: Mapping[str, CacheBackend],
                 settings: WatchSettings | None = None, *, clock: Clock | None = None) -> None:
        self.backends = dict(backends)
        self.settings = settings if settings is not None else WatchSettings()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.events: asyncio.Queue[CacheEvent] = asyncio.Queue(self.settings.event_queue_size)
        self.on_events: Callable[[], None] | None = None  # called after new events are queued
        self.errors: dict[str, int] = {name: 0 for name in self.backends}
        self.dropped_events = 0
        self._history: dict[str, deque[tuple[float, BackendStats]]] = {
            name: deque(maxlen=self.settings.history_samples) for name in self.backends}
        self._down: set[str] = set()

    def latest(self, cache: str) -> BackendStats | None:
        """The last snapshot of `cache` that succeeded, or None (unknown or never reached)."""
        history = self._history.get(cache)
        return history[-1][1] if history else None

    def is_down(self, cache: str) -> bool:
        """Whether the last poll of `cache` failed."""
        return cache in self._down

    async def run(self) -> None:
        """Poll every `interval_s` until cancelled (fixed rate: a slow poll is not added)."""
        while True:
            started_s = self.clock.monotonic()
            await self.poll_once()
            elapsed_s = self.clock.monotonic() - started_s
            await self.clock.sleep(max(0.0, self.settings.interval_s - elapsed_s))

    async def poll_once(self) -> list[CacheEvent]:
        """Poll every cache once, concurrently; queue and return the events found."""
        found = await asyncio.gather(*(self._poll_cache(name) for name in self.backends))
        events = [event for events in found for event in events]
        for event in events:
            if self.events.full():
                self.events.get_nowait()
                self.dropped_events += 1
            self.events.put_nowait(event)
        if events and self.on_events is not None:
            self.on_events()
        return events

    async def _poll_cache(self, cache: str) -> list[CacheEvent]:
        try:
            async with asyncio.timeout(self.settings.stats_timeout_s):
                stats = await self._read_stats(self.backends[cache])
        except (CacheError, TimeoutError) as error:
            self._record_failure(cache, error)
            return []
        at_s = self.clock.monotonic()
        if cache in self._down:
            self._down.discard(cache)
            _log.info("cache_watch_recovered", cache=cache, errors=self.errors[cache])
        previous = self.latest(cache)
        self._history[cache].append((at_s, stats))
        if previous is None:
            return []
        events = detect_events(cache, previous, stats, self.settings, at_s)
        for event in events:
            _log.info("cache_event", cache=cache, kind=event.kind, node=event.node,
                      detail=event.detail)
        return events

    async def _read_stats(self, backend: CacheBackend) -> BackendStats:
        """stats(), retried at once while unavailable (stale pooled connections)."""
        for _ in range(self.settings.stats_attempts - 1):
            try:
                return await backend.stats()
            except CacheUnavailable:
                continue
        return await backend.stats()

    def _record_failure(self, cache: str, error: Exception) -> None:
        self.errors[cache] += 1
        if cache not in self._down:
            self._down.add(cache)
            reason = str(error) or f"no stats within {self.settings.stats_timeout_s} s"
            _log.warning("cache_watch_unreachable", cache=cache, error=reason)

    def hits_between(self, cache: str, start_s: float, end_s: float) -> tuple[int, int] | None:
        """(hits, misses) of the service on `cache` between the first sample at or after
        `start_s` and the last at or before `end_s` (monotonic seconds of `clock`).

        Consecutive samples are differenced, so a counter reset inside the window counts
        from zero instead of going negative, and warmd's own reads are subtracted (as in
        `points_between`). Only samples inside the window are used, so traffic outside it
        is never counted; None when the window holds fewer than two samples (nothing to
        compare), the window is empty, or the cache is unknown.
        """
        history = self._history.get(cache)
        if history is None or not start_s <= end_s:
            return None
        inside = [stats for at_s, stats in history if start_s <= at_s <= end_s]
        if len(inside) < 2:
            return None
        hits = misses = 0
        for before, after in pairwise(inside):
            total = points_between(before, after, 0.0)[-1]
            hits += total.hits
            misses += total.misses
        return hits, misses

    def hits_before(self, event: CacheEvent, window_s: float) -> tuple[int, int] | None:
        """(hits, misses) over the `window_s` that ended with the last sample before the
        one that showed `event`, i.e. the service's traffic before the trigger."""
        return self.hits_between(event.cache, event.at_s - window_s,
                                 math.nextafter(event.at_s, -math.inf))
