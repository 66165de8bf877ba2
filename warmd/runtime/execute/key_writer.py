"""The simplest runner: write each of a task's keys into the cache its target URL names.

Used for tasks without a loader (`warmctl tasks submit`, chaos runs, benchmarks of the task
path): the value is the request's value (`--value`) or the task id, with the task's TTL.
"""

from __future__ import annotations

import contextlib
import time

from warmd.cache.base import CacheBackend
from warmd.cache.factory import backend_from_url
from warmd.clock import Clock, SystemClock
from warmd.errors import CacheError, ConfigError
from warmd.hooks.task import ProgressCallback, TaskOutcome, WarmResult, WarmTask


def run_result(task: WarmTask, outcome: TaskOutcome, written: int, started_s: float,
               checkpoint: int, reason: str = "") -> WarmResult:
    """A WarmResult for a run that only wrote keys (no origin, no verification)."""
    return WarmResult(
        task_id=task.task_id, outcome=outcome, keys_ok=written, keys_failed=0,
        keys_skipped=task.checkpoint, bytes_written=0, origin_p50_ms=None,
        origin_p99_ms=None, duration_s=time.monotonic() - started_s,
        checkpoint=checkpoint, reason=reason)


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
                items = [(request.key, request.value or task.task_id.encode(), task.limits.ttl_s)
                         for request in batch]
                await backend.write_many(items)  # type: ignore[arg-type]
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
