"""WriterThread: one long-lived thread that runs the log's writes and fsyncs in order.

The driver hands it every Ready's save. A ThreadPoolExecutor did the same job, but each
`submit` took two locks, a semaphore, a work item and a concurrent future chained to an
asyncio one: 8-14 % of a loaded member's event-loop time in a profile (issue 18). Here a
job is a tuple on a C `SimpleQueue`, and its asyncio future is settled with one
`call_soon_threadsafe`. Jobs run one at a time in the order given, as DiskStorage requires
(one writer); what they do, and so the durability, is unchanged.

Group commit across jobs: the driver hands over a Ready's save while earlier ones are
still being synced (asynchronous storage writes), so the jobs queued behind an fsync are
taken together: each is run (written, not synced), then the group's `sync` once, and
only then is any of their futures settled (all in one hand-over to the loop). A job is
never reported done before the sync that covers it has returned. Consecutive `run_merged`
jobs of one function are handed to it in one call: the Readys' saves of a group become
one write, because every system call gives up the GIL and, with the loop busy, taking it
back costs up to the switch interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")
_Sync = Callable[[], None]
_Job = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], tuple[Any, ...],
             _Sync | None, bool]  # ..., merged: args is (item,) for function([items])
_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]
GROUP_JOBS_MAX = 256  # jobs written before one sync (bounds a group's latency)
# How long the interpreter lets the event loop keep the GIL while this thread waits for
# it (CPython's default is 5 ms). The loop no longer idles while a save is synced, so a
# returned fsync waited up to that long to be reported, a whole fsync more per write.
GIL_SWITCH_INTERVAL_S = 0.0005


class WriterClosed(RuntimeError):
    """A job was given after `close()`."""


class WriterThread:
    """Runs `function(*args)` jobs in order on one thread; see the module docstring."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        self._closed = False
        # A daemon thread, so that a process that never stops its driver can still exit;
        # Driver.stop closes and joins it, so no write is cut short on a clean stop.
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def run(self, function: Callable[..., _T], *args: Any,
            sync: _Sync | None = None) -> asyncio.Future[_T]:
        """Queue a job; the future of its result (or its exception). With `sync`, the job
        is settled only after `sync()` has run once after it (shared by the jobs queued
        together with it; its error fails them all).

        Raises:
            WriterClosed: after `close()`.
        """
        return self._put(function, args, sync, merged=False)

    def run_merged(self, function: Callable[[list[Any]], _T], item: Any,
                   sync: _Sync | None = None) -> asyncio.Future[_T]:
        """As `run`, but consecutive queued jobs of the same `function` are done by one call
        `function([item, ...])`, whose result or error each of them gets.

        Raises:
            WriterClosed: after `close()`.
        """
        return self._put(function, (item,), sync, merged=True)

    def _put(self, function: Callable[..., _T], args: tuple[Any, ...], sync: _Sync | None,
             merged: bool) -> asyncio.Future[_T]:
        if self._closed:
            raise WriterClosed("the writer thread is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((loop, future, function, args, sync, merged))
        return future

    def close(self) -> None:
        """Run the jobs already queued, then end the thread and wait for it."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        self._thread.join()

    def _work(self) -> None:
        closing = False
        while not closing and (job := self._jobs.get()) is not None:
            group = [job]
            while len(group) < GROUP_JOBS_MAX:
                try:
                    queued = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if queued is None:
                    closing = True
                    break
                group.append(queued)
            self._run_group(group)

    @staticmethod
    def _run_group(group: list[_Job]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        sync: _Sync | None = None
        start = 0
        while start < len(group):
            function, merged = group[start][2], group[start][5]
            end = start + 1
            while merged and end < len(group) and group[end][5] and group[end][2] is function:
                end += 1
            args = ([job[3][0] for job in group[start:end]],) if merged else group[start][3]
            try:
                outcome: tuple[Any, BaseException | None] = (function(*args), None)
            except BaseException as raised:  # handed to the awaiting side, as an executor does
                outcome = (None, raised)
            outcomes += [outcome] * (end - start)
            sync = next((job[4] for job in group[start:end] if job[4] is not None), sync)
            start = end
        if sync is not None:
            try:
                sync()
            except BaseException as raised:  # nothing in the group is durable
                outcomes = [(None, error or raised) for _, error in outcomes]
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for (loop, future, *_), (result, error) in zip(group, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((future, result, error))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle_all, settled)


def _settle_all(settled: list[_Outcome]) -> None:
    for future, result, error in settled:
        _settle(future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
