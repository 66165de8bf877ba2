"""The simplest runner: write each of a task's keys into the cache its target URL names.

Used for tasks without a loader (`warmctl tasks submit`, chaos runs, benchmarks of the task
path): the value is the request's value (`--value`) or the task id, with the task's TTL.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from warmd.cache.base import CacheBackend, ItemColumns
from warmd.cache.factory import backend_from_url
from warmd.clock import Clock, SystemClock
from warmd.errors import CacheError, ConfigError
from warmd.hooks.base import WarmRequest
from warmd.hooks.task import ProgressCallback, TaskOutcome, WarmResult, WarmTask


def run_result(task: WarmTask, outcome: TaskOutcome, written: int, started_s: float,
               checkpoint: int, reason: str = "") -> WarmResult:
    """A WarmResult for a run that only wrote keys (no origin, no verification)."""
    return WarmResult(
        task_id=task.task_id, outcome=outcome, keys_ok=written, keys_failed=0,
        keys_skipped=task.checkpoint, bytes_written=0, origin_p50_ms=None,
        origin_p99_ms=None, duration_s=time.monotonic() - started_s,
        checkpoint=checkpoint, reason=reason)


def batch_items(task: WarmTask, batch: Sequence[WarmRequest]) -> ItemColumns:
    """The batch as columns (see ItemColumns): two list comprehensions and a repeated TTL
    cost a third of a tuple per key with its attribute lookups (~0.2 against ~0.55 us)."""
    default_value = task.task_id.encode()
    return ItemColumns([request.key for request in batch],
                       [request.value or default_value for request in batch],
                       [task.limits.ttl_s] * len(batch))


class KeyWriterRunner:
    """A Runner that writes each of a task's keys into the cache its target URL names
    (redis://, memcached://, ...), in batches, reporting a checkpoint after each batch but
    the last (the task's Finish follows it and marks every key done: one Raft commit less).
    The value is the request's value, or the task id: enough to prove the work was done."""

    def __init__(self, batch_keys: int, keys_per_second: float = 0.0,
                 clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._batch_keys = batch_keys
        self._keys_per_second = keys_per_second
        self._backends: dict[str, CacheBackend] = {}

    async def _backend(self, target: str) -> CacheBackend:
        backend = self._backends.get(target)
        if backend is None:
            backend = await backend_from_url(target)
            self._backends[target] = backend
        return backend

    async def run(self, task: WarmTask, progress: ProgressCallback | None = None) -> WarmResult:
        started_s = self._clock.monotonic()
        done, written = task.checkpoint, 0
        try:
            backend = await self._backend(task.target)
            while done < len(task.requests):
                batch = task.requests[done:done + self._batch_keys]
                await backend.write_many(batch_items(task, batch))
                done, written = done + len(batch), written + len(batch)
                if self._keys_per_second:
                    await self._clock.sleep(len(batch) / self._keys_per_second)
                if progress is not None and done < len(task.requests):
                    await progress(done)  # after the last batch, the Finish says it all
        except (CacheError, ConfigError) as error:
            return run_result(task, TaskOutcome.FAILED, written, started_s, done, str(error))
        return run_result(task, TaskOutcome.SUCCEEDED, written, started_s, done)

    async def close(self) -> None:
        """Close every backend opened so far."""
        for backend in self._backends.values():
            with contextlib.suppress(CacheError):
                await backend.close()
        self._backends.clear()
