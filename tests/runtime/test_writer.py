"""WriterThread (warmd/runtime/node/writer.py): jobs run in order on one thread, results and
errors come back to the loop, close() finishes what was queued."""

from __future__ import annotations

import asyncio
import threading

import pytest

from warmd.runtime.node.writer import WriterClosed, WriterThread


async def test_jobs_run_in_order_on_one_thread_and_answer_their_futures() -> None:
    writer = WriterThread("test-writer")
    ran: list[tuple[int, str]] = []

    def job(number: int) -> int:
        ran.append((number, threading.current_thread().name))
        return number * 2

    try:
        results = await asyncio.gather(*(writer.run(job, number) for number in range(200)))
    finally:
        writer.close()
    assert results == [number * 2 for number in range(200)]
    assert [number for number, _ in ran] == list(range(200))
    assert {name for _, name in ran} == {"test-writer"}


async def test_an_error_reaches_the_caller_and_the_next_job_still_runs() -> None:
    writer = WriterThread("test-writer")

    def fail() -> None:
        raise OSError(28, "No space left on device")

    try:
        with pytest.raises(OSError, match="No space"):
            await writer.run(fail)
        assert await writer.run(lambda: "next") == "next"
    finally:
        writer.close()


async def test_close_finishes_queued_jobs_then_refuses_new_ones() -> None:
    writer = WriterThread("test-writer")
    started, release = threading.Event(), threading.Event()
    done: list[int] = []

    def slow() -> None:
        started.set()
        release.wait(5)
        done.append(1)

    first = writer.run(slow)
    second = writer.run(done.append, 2)
    await asyncio.to_thread(started.wait, 5)
    release.set()
    await asyncio.to_thread(writer.close)
    assert done == [1, 2]
    await asyncio.gather(first, second)
    with pytest.raises(WriterClosed):
        writer.run(done.append, 3)


async def test_a_cancelled_wait_does_not_break_the_thread() -> None:
    """The caller gave up (its task was cancelled): the job still runs, the answer is
    dropped quietly, and later jobs are served."""
    writer = WriterThread("test-writer")
    release = threading.Event()
    try:
        waiting = writer.run(release.wait, 5)
        waiting.cancel()
        release.set()
        assert await writer.run(lambda: 7) == 7
    finally:
        writer.close()
