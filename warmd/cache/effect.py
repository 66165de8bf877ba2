"""What a warm-up bought: hit-rate time series per node, and each task's window after it.

Only server counters are used (Redis INFO keyspace_hits/misses, memcached get_hits/misses).
warmd's own reads (verification, probes) are counted by the backend and subtracted from
the aggregate, so the figures describe the service's traffic, not ours.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from warmd.cache.base import BackendStats, CacheBackend
from warmd.errors import CacheError

IDLE_CLOCK_RESOLUTION_S = 1.0


@dataclass(frozen=True, slots=True)
class HitRatePoint:
    """Hits and misses seen on one node (or "*" for the backend) between two samples."""

    node: str
    at_s: float  # monotonic time of the later sample
    hits: int
    misses: int

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


def points_between(before: BackendStats, after: BackendStats, at_s: float
                   ) -> list[HitRatePoint]:
    """Per-node deltas (raw server counters) plus a '*' total without warmd's own reads.

    A counter that went down (server restarted) restarts from zero instead of going negative.
    """
    previous = {node.node: node for node in before.nodes}
    points = []
    for node in after.nodes:
        old = previous.get(node.node)
        hits = node.hits - old.hits if old and node.hits >= old.hits else node.hits
        misses = node.misses - old.misses if old and node.misses >= old.misses else node.misses
        points.append(HitRatePoint(node.node, at_s, hits, misses))
    own_hits = after.own_reads.hits - before.own_reads.hits
    own_misses = after.own_reads.misses - before.own_reads.misses
    total_hits = max(0, sum(p.hits for p in points) - own_hits)
    total_misses = max(0, sum(p.misses for p in points) - own_misses)
    points.append(HitRatePoint("*", at_s, total_hits, total_misses))
    return points


class StatsSampler:
    """Samples a backend every `interval_s` into a bounded hit-rate series (for the UI)."""

    def __init__(self, backend: CacheBackend, *, interval_s: float = 10.0,
                 history_points: int = 8640) -> None:
        self.backend, self.interval_s = backend, interval_s
        self.series: deque[HitRatePoint] = deque(maxlen=history_points)
        self.errors = 0
        self._last: BackendStats | None = None

    async def sample_once(self) -> list[HitRatePoint]:
        """Take one sample; the first only sets the baseline and returns no points."""
        stats = await self.backend.stats()
        points = [] if self._last is None else points_between(self._last, stats,
                                                              time.monotonic())
        self._last = stats
        self.series.extend(points)
        return points

    async def run(self) -> None:
        """Sample until cancelled; an unreachable backend is counted, not fatal."""
        while True:
            try:
                await self.sample_once()
            except CacheError:
                self.errors += 1
            await asyncio.sleep(self.interval_s)


@dataclass(frozen=True, slots=True)
class TaskEffect:
    """Traffic on the task's backend in the window after it finished, and (Redis) how
    many of a sample of its keys were read in that window or are gone."""

    task_id: str
    window_s: float
    hits: int
    misses: int
    sampled_keys: int = 0
    keys_read_in_window: int = 0
    keys_gone: int = 0

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None


async def measure_task_effect(task_id: str, backend: CacheBackend, keys: Sequence[str],
                              window_s: float) -> TaskEffect:
    """Counter deltas over `window_s` from now, then (if the backend can) an idle-time
    probe of `keys`, made after the window's closing sample so it cannot count in it.

    A key whose idle time is shorter than the window (less one second of clock resolution)
    was read or rewritten in it, so reads in the window's first ~2 s are not seen: use
    windows of minutes. OBJECT IDLETIME does not reset the idle clock.
    """
    started = await backend.stats()
    await asyncio.sleep(window_s)
    ended = await backend.stats()
    total = points_between(started, ended, time.monotonic())[-1]
    probe = getattr(backend, "idle_seconds", None)
    if probe is None or not keys:
        return TaskEffect(task_id, window_s, total.hits, total.misses)
    idle = await probe(list(keys))
    gone = sum(1 for seconds in idle.values() if seconds is None)
    # Redis keeps idle time in whole seconds, so a key written just before the window can
    # show up to one second less than the window: only clearly younger keys count as read.
    threshold_s = window_s - IDLE_CLOCK_RESOLUTION_S
    read = sum(1 for seconds in idle.values() if seconds is not None and seconds < threshold_s)
    return TaskEffect(task_id, window_s, total.hits, total.misses, len(idle), read, gone)


class EffectRecorder:
    """A LifecycleListener that measures each finished task's effect in the background and
    keeps the last `history_tasks` results for the UI (`effects[task_id]`).

    `task_finished` only schedules the measurement, so the runner's plugin timeout never
    waits for the window.
    """

    name = "effect_recorder"

    def __init__(self, backends: Mapping[str, CacheBackend], *, window_s: float = 300.0,
                 sample_keys: int = 200, history_tasks: int = 1000, seed: int = 0) -> None:
        self.backends, self.window_s, self.sample_keys = backends, window_s, sample_keys
        self.history_tasks = history_tasks
        self.effects: OrderedDict[str, TaskEffect] = OrderedDict()
        self.errors: dict[str, str] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._rng = random.Random(seed)

    async def task_started(self, task: Any) -> None:
        return None

    async def task_finished(self, task: Any, result: Any) -> None:
        backend = self.backends.get(task.target) if task.target else None
        if backend is None or result.outcome.value not in ("succeeded", "stopped"):
            return
        done = [request.key for request in task.requests[: result.checkpoint] if request.key]
        keys = self._rng.sample(done, min(len(done), self.sample_keys))
        measuring = asyncio.create_task(self._measure(task.task_id, backend, keys))
        self._pending.add(measuring)
        measuring.add_done_callback(self._pending.discard)

    async def _measure(self, task_id: str, backend: CacheBackend, keys: list[str]) -> None:
        try:
            effect = await measure_task_effect(task_id, backend, keys, self.window_s)
        except CacheError as error:
            self.errors[task_id] = str(error)
            return
        self.effects[task_id] = effect
        while len(self.effects) > self.history_tasks:
            self.effects.popitem(last=False)

    async def close(self) -> None:
        """Abandon the measurements still waiting out their window (shutdown)."""
        for measuring in list(self._pending):
            measuring.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait for every scheduled measurement (tests, shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
