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


async def test_jobs_queued_behind_a_sync_share_it_and_merged_jobs_share_one_call() -> None:
    """While one group syncs, the saves queued behind it are written together (merged jobs
    of one function in one call) and synced once; none is settled before that sync."""
    writer = WriterThread("test-writer")
    started, release = threading.Event(), threading.Event()
    calls: list[list[int]] = []
    syncs: list[list[list[int]]] = []

    def blocking_sync() -> None:
        started.set()
        release.wait(5)

    def write(items: list[int]) -> int:
        calls.append(items)
        return sum(items)

    try:
        first = writer.run(lambda: "first", sync=blocking_sync)
        await asyncio.to_thread(started.wait, 5)
        merged = [writer.run_merged(write, number, sync=lambda: syncs.append(list(calls)))
                  for number in range(5)]
        await asyncio.sleep(0.05)
        assert not any(future.done() for future in merged)  # queued behind the first sync
        release.set()
        assert await first == "first"
        assert await asyncio.gather(*merged) == [10] * 5
    finally:
        writer.close()
    assert calls == [[0, 1, 2, 3, 4]]
    assert syncs == [[[0, 1, 2, 3, 4]]]  # one sync, after the one write


async def test_a_failed_sync_fails_every_job_of_its_group() -> None:
    writer = WriterThread("test-writer")

    def failing_sync() -> None:
        raise OSError(5, "Input/output error")

    try:
        jobs = [writer.run_merged(len, number, sync=failing_sync) for number in range(3)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        writer.close()
    assert all(isinstance(result, OSError) for result in results)
