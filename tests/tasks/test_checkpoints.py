"""Background checkpoints: one in flight, the newest wins, nothing before the Start, and a
lost fence stops the run at its next report."""

from __future__ import annotations

import asyncio

import pytest

from warmd.runtime.execute.checkpoints import Checkpoints, FenceLost


class SlowLog:
    """Takes one checkpoint per `release()`, recording what was proposed and when."""

    def __init__(self) -> None:
        self.proposed: list[int] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.gate = asyncio.Event()

    async def propose(self, keys_done: int) -> None:
        self.proposed.append(keys_done)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await self.gate.wait()
        self.gate.clear()
        self.in_flight -= 1

    async def release(self) -> None:
        self.gate.set()
        await _settle()


async def _settle() -> None:
    """Let the sender's callbacks run (no time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_reports_never_wait_and_coalesce_into_one_in_flight() -> None:
    log = SlowLog()
    started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    checkpoints = Checkpoints(log.propose, started)
    for keys_done in (10, 20, 30):
        await asyncio.wait_for(checkpoints.report(keys_done), 0.1)  # returns at once
    await _settle()
    assert log.proposed == []  # nothing before the Start is in the log
    started.set_result(True)
    await _settle()
    assert log.proposed == [30]  # the newest only
    for keys_done in (40, 50, 60):
        await checkpoints.report(keys_done)
    await log.release()
    assert log.proposed == [30, 60]  # 40 and 50 were overtaken while 30 committed
    await log.release()
    assert log.most_in_flight == 1 and log.in_flight == 0
    await checkpoints.close()


async def test_a_lost_fence_stops_the_run_at_its_next_report() -> None:
    async def refused(keys_done: int) -> None:
        raise FenceLost("t")

    started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    started.set_result(True)
    checkpoints = Checkpoints(refused, started)
    await checkpoints.report(10)
    await asyncio.sleep(0.01)
    with pytest.raises(FenceLost):
        await checkpoints.report(20)
    await checkpoints.close()


async def test_a_start_that_never_landed_sends_nothing_and_stops_the_run() -> None:
    log = SlowLog()
    started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    checkpoints = Checkpoints(log.propose, started)
    await checkpoints.report(10)
    started.set_result(False)
    await asyncio.sleep(0.01)
    assert log.proposed == []
    with pytest.raises(FenceLost):
        await checkpoints.report(20)


async def test_close_cancels_the_checkpoint_in_flight_and_drops_the_rest() -> None:
    log = SlowLog()
    started: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    started.set_result(True)
    checkpoints = Checkpoints(log.propose, started)
    await checkpoints.report(10)
    await _settle()
    await checkpoints.report(20)
    await checkpoints.close()
    await log.release()
    assert log.proposed == [10] and not started.cancelled()  # the Start is not ours to cancel
