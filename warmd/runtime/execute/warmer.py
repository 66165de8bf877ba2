"""The warm runner: readiness gates → loader (behind the origin limiter) → cache writes.

The executor hands `Runner.run` one `WarmTask` and gets one `WarmResult`; progress is
reported per batch as a checkpoint (requests done) so a reassigned task resumes there.
Plugins are called through `call_plugin`: a bad plugin fails its task, never the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from operator import itemgetter, sub

from warmd.cache.base import (
    CacheBackend,
    CacheItem,
    Item,
    ItemColumns,
    KeyFailure,
    WriteOutcome,
    values_bytes,
)
from warmd.cache.guard import MemoryGuard
from warmd.cache.http import is_transient
from warmd.clock import Clock, SystemClock
from warmd.errors import CacheError, CacheUnavailable, ConfigError
from warmd.hooks.base import PluginError, WarmRequest, call_plugin
from warmd.hooks.loaders import ReplayLoader, RequestKeyMapper, ValueLoader
from warmd.hooks.registry import HookRegistry
from warmd.hooks.task import (
    LimitConfig,
    ProgressCallback,
    TaskOutcome,
    WarmLimits,
    WarmResult,
    WarmTask,
)
from warmd.logging import get_logger
from warmd.runtime.execute.limiter import OriginLimiter
from warmd.runtime.execute.replay import replay_batch

_log = get_logger("warmd.warmer")
FAILURE_SAMPLE_SIZE = 20
KEY_OF = itemgetter(0)
REQUEST_OVERHEAD_BYTES = 64  # protocol framing and per-key server overhead, per item
WRITES_IN_FLIGHT = 2  # batches written at once: one queued at the cache while one loads


def percentile_ms(latencies_s: Sequence[float], fraction: float) -> float | None:
    if not latencies_s:
        return None
    ordered = sorted(latencies_s)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000.0


def jittered_ttls(base_ttl_s: int, ratio: float, count: int, rng: random.Random) -> list[int]:
    """TTLs spread uniformly over [base * (1 - ratio), base] so a bulk warm does not
    expire at one instant; never above the TTL the rule allows.

    A large batch draws 16 random bits per key (one `randbytes` call) and looks the TTL up
    in a table spread evenly over the range, all in C: ~3x cheaper per key than one
    `random()` and a float multiply each, which matters at 10^5 keys per second.
    """
    if base_ttl_s == 0 or ratio == 0:
        return [base_ttl_s] * count
    low = max(1.0, base_ttl_s * (1.0 - ratio))
    if count >= JITTER_TABLE_MIN_COUNT and base_ttl_s - int(low + 0.5) < JITTER_TABLE_SIZE:
        table = _jitter_table(int(low + 0.5), base_ttl_s)
        return [table[draw] for draw in memoryview(rng.randbytes(2 * count)).cast("H")]
    start, span, draw = low + 0.5, base_ttl_s - low, rng.random
    return [int(start + draw() * span) for _ in range(count)]


JITTER_TABLE_SIZE = 1 << 16  # one entry per 16-bit draw
JITTER_TABLE_MIN_COUNT = 4096  # below this, building a table costs more than it saves


@functools.lru_cache(maxsize=4)
def _jitter_table(low_s: int, high_s: int) -> tuple[int, ...]:
    """Every TTL in [low_s, high_s] repeated evenly over 2**16 slots (counts differ by at
    most one), so a uniform 16-bit draw gives a uniform TTL; one table serves every batch
    of every task with the same TTL and ratio."""
    size = high_s - low_s + 1
    # TTL number j owns the slots s with j * 2**16 <= s * size < (j + 1) * 2**16.
    bounds = [-(-j * JITTER_TABLE_SIZE // size) for j in range(size + 1)]
    runs = map(repeat, range(low_s, high_s + 1), map(sub, bounds[1:], bounds[:-1]))
    return tuple(chain.from_iterable(runs))


@dataclass
class _Tally:
    """Mutable counters of one run (private to WarmRunner)."""

    ok: int = 0
    failed: int = 0
    skipped: int = 0
    bytes_written: int = 0
    failures: list[KeyFailure] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    written: list[Item] = field(default_factory=list)

    def add_failures(self, failures: Sequence[KeyFailure]) -> None:
        self.failed += len(failures)
        room = FAILURE_SAMPLE_SIZE - len(self.failures)
        if room > 0:
            self.failures.extend(failures[:room])

    def add_outcome(self, outcome: WriteOutcome) -> None:
        self.ok += outcome.written
        self.skipped += outcome.skipped
        self.bytes_written += outcome.bytes_written
        self.add_failures(outcome.failures)


class WarmRunner:
    """Runs warm tasks against named backends with plugins from a HookRegistry."""

    def __init__(self, backends: Mapping[str, CacheBackend], registry: HookRegistry,
                 clock: Clock | None = None) -> None:
        self.backends = dict(backends)
        self.registry = registry
        self._clock = clock or SystemClock()
        # One limiter per origin loader, shared by every task that uses it: the hard cap
        # is the origin's, so two tasks at once must not each get the whole of it.
        self.limiters: dict[str, OriginLimiter] = {}
        if "request_key" not in registry.plugins["key_mapper"]:
            registry.add(RequestKeyMapper())
        if "value" not in registry.plugins["loader"]:
            registry.add(ValueLoader())

    async def run(self, task: WarmTask, progress: ProgressCallback | None = None
                  ) -> WarmResult:
        """Run one task to a result; never raises for plugin, origin or cache failures."""
        started = self._clock.monotonic()
        tally = _Tally()
        state = _RunState(task.checkpoint)
        try:
            task.limits.validate()
            await self._notify("task_started", task)
            reason = await self._check_readiness(task)
            if reason:
                outcome = TaskOutcome.NOT_READY
            else:
                outcome, reason = await self._run_batches(task, tally, state, progress)
                state.verified, state.mismatches = await self._verify(task, tally)
        except (PluginError, CacheError, ConfigError, LookupError) as error:
            outcome, reason = TaskOutcome.FAILED, str(error)
        result = self._result(task, tally, state, started, outcome, reason)
        try:
            await self._notify("task_finished", task, result)
        except PluginError as error:
            result = self._result(task, tally, state, started, TaskOutcome.FAILED, str(error))
        _log.info("warm_task_finished", task_id=task.task_id, outcome=result.outcome.value,
                  keys_ok=result.keys_ok, keys_failed=result.keys_failed,
                  checkpoint=result.checkpoint, duration_s=round(result.duration_s, 3),
                  reason=result.reason)
        return result

    def limiter_for(self, loader_name: str, config: LimitConfig) -> OriginLimiter:
        """The shared limiter of this loader's origin (created with the first task's caps)."""
        limiter = self.limiters.get(loader_name)
        if limiter is None:
            limiter = self.limiters[loader_name] = OriginLimiter(config, self._clock)
        return limiter

    def _result(self, task: WarmTask, tally: _Tally, state: _RunState, started: float,
                outcome: TaskOutcome, reason: str) -> WarmResult:
        return WarmResult(
            task_id=task.task_id, outcome=outcome, keys_ok=tally.ok, keys_failed=tally.failed,
            keys_skipped=tally.skipped, bytes_written=tally.bytes_written,
            origin_p50_ms=percentile_ms(tally.latencies_s, 0.5),
            origin_p99_ms=percentile_ms(tally.latencies_s, 0.99),
            duration_s=self._clock.monotonic() - started, checkpoint=state.checkpoint, reason=reason,
            failures=tuple(tally.failures), verified_keys=state.verified,
            verify_mismatches=state.mismatches, origin_in_flight_max=state.in_flight_max,
            finished_at_s=self._clock.monotonic())

    async def _notify(self, method: str, task: WarmTask, *args: object) -> None:
        for listener in self.registry.plugins["listener"].values():
            await call_plugin(listener.name, getattr(listener, method), task, *args,
                              timeout_s=task.limits.plugin_timeout_s)

    async def _check_readiness(self, task: WarmTask) -> str:
        """Return '' when every gate is open, else the first closed gate's evidence."""
        for name in task.readiness:
            check = self.registry.get("readiness", name)
            answer = await call_plugin(name, check.check, task.context,
                                       timeout_s=task.limits.plugin_timeout_s)
            if not hasattr(answer, "ready"):
                raise PluginError(name, f"returned {type(answer).__name__}, not Readiness")
            if not answer.ready:
                return f"not ready: {name}: {answer.detail}"
        return ""

    async def _run_batches(self, task: WarmTask, tally: _Tally, state: _RunState,
                           progress: ProgressCallback | None) -> tuple[TaskOutcome, str]:
        loader = self.registry.get("loader", task.loader)
        limits = task.limits
        backend = self.backends.get(task.target) if task.target else None
        if task.target and backend is None:
            raise ConfigError(f"task {task.task_id}: unknown target {task.target!r}")
        limiter = self.limiter_for(loader.name, limits.origin) if loader.uses_origin else None
        guard = await MemoryGuard.start(backend, limits) if backend else None
        rng = random.Random(f"{task.task_id}:{task.seed}")
        writing: deque[_PendingWrite] = deque()  # oldest first; settled in this order
        try:
            for start in range(task.checkpoint, len(task.requests), limits.batch_keys):
                batch = task.requests[start:start + limits.batch_keys]
                items = await self._load_batch(task, batch, loader, limiter, tally, rng)
                size_bytes = batch_bytes(items) if guard is not None else 0
                if guard is not None:
                    # Writes still in flight are not in the server's memory figure yet.
                    unconfirmed_bytes = sum(write.size_bytes for write in writing)
                    stop_reason = await guard.check(size_bytes + unconfirmed_bytes)
                    if stop_reason:
                        await self._settle_all(writing, tally, state, progress)
                        return TaskOutcome.STOPPED, stop_reason
                if limiter is not None:
                    state.in_flight_max = limiter.statistics().in_flight_max
                end = start + len(batch)
                if backend is None or not items:
                    await self._settle_all(writing, tally, state, progress)
                    await self._advance(state, end, progress)
                    continue
                tally.written.extend(items[: limits.verify_sample_keys])
                writing.append(_PendingWrite(
                    asyncio.create_task(self._write(backend, items, limits)), end, size_bytes))
                # Waiting on the older write lets the new one start sending, so the cache
                # has a batch queued while this loop loads the next (it costs CPU too).
                while len(writing) >= WRITES_IN_FLIGHT:
                    await self._settle(writing.popleft(), tally, state, progress)
            await self._settle_all(writing, tally, state, progress)
        finally:
            for write in writing:  # failing: let writes finish so connections stay sane
                with contextlib.suppress(CacheError):
                    await write.task
        return TaskOutcome.SUCCEEDED, ""

    async def _settle(self, writing: _PendingWrite, tally: _Tally, state: _RunState,
                      progress: ProgressCallback | None) -> None:
        tally.add_outcome(await writing.task)
        await self._advance(state, writing.end, progress)

    async def _settle_all(self, writing: deque[_PendingWrite], tally: _Tally,
                          state: _RunState, progress: ProgressCallback | None) -> None:
        """Wait for every write in flight, oldest first (the checkpoint only moves up)."""
        while writing:
            await self._settle(writing[0], tally, state, progress)
            writing.popleft()

    @staticmethod
    async def _advance(state: _RunState, checkpoint: int,
                       progress: ProgressCallback | None) -> None:
        state.checkpoint = checkpoint
        if progress is not None:
            await progress(checkpoint)

    async def _load_batch(self, task: WarmTask, batch: Sequence[WarmRequest], loader: object,
                          limiter: OriginLimiter | None, tally: _Tally, rng: random.Random
                          ) -> Sequence[Item]:
        if (isinstance(loader, ReplayLoader) and limiter is not None
                and await self._replay(task, batch, loader, limiter, tally)):
            return ItemColumns([], [], [])  # replayed: the service's own cache filled
        keys = await self._map_keys(task, batch)
        ttls = jittered_ttls(task.limits.ttl_s, task.limits.ttl_jitter_ratio, len(batch), rng)
        if isinstance(loader, ValueLoader):  # direct fill: no origin, no per-key plugin call
            values: list[bytes | None] = [request.value for request in batch]
            if None in values:
                tally.add_failures([KeyFailure(k, "no value")
                                    for k, v in zip(keys, values, strict=True) if v is None])
        else:
            values = await _OriginBatch(task, loader, limiter, tally, self._clock).load_all(
                batch, keys)
        if None in values:  # failed or replayed keys: nothing to write for them
            kept = [value is not None for value in values]
            keys = list(compress(keys, kept))
            ttls = list(compress(ttls, kept))
            values = list(compress(values, kept))
        if values and not task.target:
            raise ConfigError(f"task {task.task_id}: loader {task.loader!r} returned values "
                              "but the task has no target to write them to")
        # Columns, not a tuple per item: see ItemColumns (allocation and GC cost per item).
        return ItemColumns(keys, values, ttls)  # type: ignore[arg-type]

    async def _replay(self, task: WarmTask, batch: Sequence[WarmRequest], loader: ReplayLoader,
                      limiter: OriginLimiter, tally: _Tally) -> bool:
        """The replay batch path (see replay.py); False when it does not apply. Keys only
        name failures here, so the built-in mapper runs for a failed request alone."""
        mapper = self.registry.get("key_mapper", task.key_mapper)
        keys = None if isinstance(mapper, RequestKeyMapper) else await self._map_keys(task, batch)

        def key_of(index: int) -> str:
            return mapper.key_for(batch[index]) if keys is None else keys[index]

        return await replay_batch(loader, limiter, task.limits, batch, key_of, self._clock,
                                  tally)

    async def _map_keys(self, task: WarmTask, batch: Sequence[WarmRequest]) -> list[str]:
        mapper = self.registry.get("key_mapper", task.key_mapper)
        if isinstance(mapper, RequestKeyMapper):
            keys = [request.key for request in batch]  # the planner usually set every key
            if all(keys):
                return keys
            return [mapper.key_for(request) for request in batch]

        def map_all() -> list[str]:
            return [mapper.key_for(request) for request in batch]

        keys = await call_plugin(mapper.name, map_all, timeout_s=task.limits.plugin_timeout_s)
        if len(keys) != len(batch) or not all(isinstance(k, str) and k for k in keys):
            raise PluginError(mapper.name, "key_for must return a non-empty str per request")
        return keys

    async def _write(self, backend: CacheBackend, items: Sequence[Item],
                     limits: WarmLimits) -> WriteOutcome:
        """Write with exponential backoff on CacheUnavailable; other errors fail the task."""
        for attempt in range(limits.retry_attempts):
            try:
                return await backend.write_many(items, only_if_absent=limits.only_if_absent)
            except CacheUnavailable:
                if attempt + 1 == limits.retry_attempts:
                    raise
                await self._clock.sleep(limits.retry_backoff_s * 2**attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _verify(self, task: WarmTask, tally: _Tally) -> tuple[int, int]:
        """Read back a seeded sample of written keys; return (checked, mismatched)."""
        backend = self.backends.get(task.target) if task.target else None
        if backend is None or not tally.written or task.limits.verify_sample_keys == 0:
            return 0, 0
        rng = random.Random(f"verify:{task.task_id}:{task.seed}")
        drawn = rng.sample(tally.written, min(len(tally.written), task.limits.verify_sample_keys))
        sample = [CacheItem(*item) for item in drawn]  # a few: named access is worth it
        actual = await backend.read_many([item.key for item in sample])
        verifier = self.registry.get("verifier", task.verifier) if task.verifier else None
        mismatches = 0
        for item in sample:
            if verifier is None:
                good = actual.get(item.key) == item.value
            else:
                good = await call_plugin(verifier.name, verifier.verify, item.key, item.value,
                                         actual.get(item.key), expect=bool,
                                         timeout_s=task.limits.plugin_timeout_s)
            mismatches += 0 if good else 1
        return len(sample), mismatches


@dataclass(frozen=True, slots=True)
class _PendingWrite:
    task: asyncio.Task[WriteOutcome]
    end: int  # the checkpoint once this write is done
    size_bytes: int  # batch_bytes of its items (0 when no memory guard watches)


def batch_bytes(items: Sequence[Item]) -> int:
    """Bytes a batch adds to the cache (and to its pipeline buffer while it runs)."""
    keys = items.keys if isinstance(items, ItemColumns) else map(KEY_OF, items)
    return values_bytes(items) + sum(map(len, keys)) + REQUEST_OVERHEAD_BYTES * len(items)


@dataclass
class _RunState:
    checkpoint: int
    verified: int = 0
    mismatches: int = 0
    in_flight_max: int = 0


class _OriginBatch:
    """Loads one batch through the origin limiter with retries for transient errors."""

    def __init__(self, task: WarmTask, loader: object, limiter: OriginLimiter | None,
                 tally: _Tally, clock: Clock) -> None:
        self.task, self.loader, self.limiter, self.tally = task, loader, limiter, tally
        self._clock = clock

    async def load_all(self, batch: Sequence[WarmRequest], keys: list[str]) -> list[bytes | None]:
        values: list[bytes | None] = [None] * len(batch)
        positions = list(range(len(batch) - 1, -1, -1))
        worker_count = min(len(batch), self.task.limits.origin.concurrency_max)

        async def worker() -> None:
            while positions:
                position = positions.pop()
                values[position] = await self._load_one(batch[position], keys[position])

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(worker_count):
                    group.create_task(worker())
        except BaseExceptionGroup as errors:  # surface the plugin's own error, not a group
            first = errors.exceptions[0]
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None
        return values

    async def _load_one(self, request: WarmRequest, key: str) -> bytes | None:
        limits = self.task.limits
        name = getattr(self.loader, "name", "loader")
        for attempt in range(limits.retry_attempts):
            try:
                return await self._attempt(request, name)
            except CacheError as error:
                if not is_transient(error) or attempt + 1 == limits.retry_attempts:
                    self.tally.add_failures([KeyFailure(key, str(error))])
                    return None
                await self._clock.sleep(limits.retry_backoff_s * 2**attempt)
        return None

    async def _attempt(self, request: WarmRequest, name: str) -> bytes | None:
        timeout_s = self.task.limits.plugin_timeout_s
        load = self.loader.load  # type: ignore[attr-defined]
        if self.limiter is None:
            return await call_plugin(name, load, request, timeout_s=timeout_s,
                                     expect=(bytes, type(None)))
        async with self.limiter.slot() as report:
            started = time.perf_counter()
            try:
                value = await call_plugin(name, load, request, timeout_s=timeout_s,
                                          expect=(bytes, type(None)))
            except CacheError:
                report.failed = True
                raise
            self.tally.latencies_s.append(time.perf_counter() - started)
            if value is None:
                self.tally.ok += 1  # replay: the request itself warmed the service
            return value
