"""WriterThread: one long-lived thread that runs the log's writes and fsyncs in order.

The driver hands it every Ready's save. A ThreadPoolExecutor did the same job, but each
`submit` took two locks, a semaphore, a work item and a concurrent future chained to an
asyncio one: 8-14 % of a loaded member's event-loop time in a profile (issue 18). Here a
job is a tuple on a C `SimpleQueue`, and its asyncio future is settled with one
`call_soon_threadsafe`. Jobs run one at a time in the order given, as DiskStorage requires
(one writer); what they do, and so the durability, is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")
_Job = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]]


class WriterClosed(RuntimeError):
    """A job was given after `close()`."""


class WriterThread:
    """Runs `function(*args)` jobs in order on one thread; see the module docstring."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        # A daemon thread, so that a process that never stops its driver can still exit;
        # Driver.stop closes and joins it, so no write is cut short on a clean stop.
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def run(self, function: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Queue a job; the future of its result (or its exception).

        Raises:
            WriterClosed: after `close()`.
        """
        if self._closed:
            raise WriterClosed("the writer thread is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._jobs.put((loop, future, function, args))
        return future

    def close(self) -> None:
        """Run the jobs already queued, then end the thread and wait for it."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        self._thread.join()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, function, args = job
            try:
                result, error = function(*args), None
            except BaseException as raised:  # handed to the awaiting side, as an executor does
                result, error = None, raised
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
