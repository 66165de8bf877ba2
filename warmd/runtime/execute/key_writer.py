"""The simplest runner: write each of a task's keys into the cache its target URL names.

Used for tasks without a loader (`warmctl tasks submit`, chaos runs, benchmarks of the task
path): the value is the request's value (`--value`) or the task id, with the task's TTL.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from warmd.cache.base import CacheBackend, ItemColumns
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


@dataclass(frozen=True, slots=True)
class KeyTask:
    """A task that writes its own keys: one value for all (None: the task id), one TTL.
    The keys stay the spec's strings, with no object per key: a WarmRequest per key cost
    ~3 us, a third of the cluster's CPU per key in the scale bench, for fields never read."""

    task_id: str
    keys: Sequence[str]
    target: str
    ttl_s: int
    value: bytes | None = None
    checkpoint: int = 0  # keys already done: the run resumes here

    def columns(self, start: int, end: int) -> ItemColumns:
        """Keys [start, end) as columns (see ItemColumns), values and TTLs repeated."""
        keys = self.keys[start:end]
        value = self.value if self.value is not None else self.task_id.encode()
        return ItemColumns(keys, [value] * len(keys), [self.ttl_s] * len(keys))


def key_result(task: KeyTask, outcome: TaskOutcome, written: int, started_s: float,
               checkpoint: int, reason: str = "") -> WarmResult:
    """The WarmResult of a KeyTask's run."""
    return run_result(WarmTask(task_id=task.task_id, requests=(), target=task.target, loader="",
                               checkpoint=task.checkpoint),
                      outcome, written, started_s, checkpoint, reason)


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

    async def run(self, task: KeyTask, progress: ProgressCallback | None = None) -> WarmResult:
        started_s = self._clock.monotonic()
        done, written, total = task.checkpoint, 0, len(task.keys)
        try:
            backend = await self._backend(task.target)
            while done < total:
                batch = task.columns(done, done + self._batch_keys)
                await backend.write_many(batch)
                done, written = done + len(batch), written + len(batch)
                if self._keys_per_second:
                    await self._clock.sleep(len(batch) / self._keys_per_second)
                if progress is not None and done < total:
                    await progress(done)  # after the last batch, the Finish says it all
        except (CacheError, ConfigError) as error:
            return key_result(task, TaskOutcome.FAILED, written, started_s, done, str(error))
        return key_result(task, TaskOutcome.SUCCEEDED, written, started_s, done)

    async def close(self) -> None:
        """Close every backend opened so far."""
        for backend in self._backends.values():
            with contextlib.suppress(CacheError):
                await backend.close()
        self._backends.clear()
