"""warmd.clock: ManualClock wakes sleepers only when advanced, in deadline order."""

from __future__ import annotations

import asyncio
import time

import pytest

from warmd.clock import ManualClock, SystemClock


async def settle() -> None:
    """Let woken tasks run."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_sleepers_wake_only_when_advanced_and_in_deadline_order() -> None:
    """A sleeper wakes once the clock passes its deadline, and earlier deadlines wake first."""
    clock = ManualClock()
    woke: list[str] = []

    async def sleeper(name: str, duration_s: float) -> None:
        await clock.sleep(duration_s)
        woke.append(f"{name}@{clock.monotonic()}")

    tasks = [asyncio.create_task(sleeper(n, d)) for n, d in [("late", 3.0), ("early", 1.0)]]
    await settle()
    assert clock.sleeper_count() == 2 and clock.next_deadline_s() == 1.0
    assert clock.advance(0.5) == 0
    await settle()
    assert woke == []
    assert clock.advance(0.5) == 1
    await settle()
    assert woke == ["early@1.0"]
    clock.advance(5.0)
    await settle()
    assert woke == ["early@1.0", "late@6.0"]
    await asyncio.gather(*tasks)
    assert clock.sleeper_count() == 0 and clock.next_deadline_s() is None


async def test_hours_of_virtual_time_take_no_real_time() -> None:
    """450 virtual seconds of 0.5 s sleeps finish in well under a real second (trio's check)."""
    clock = ManualClock()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await clock.sleep(0.5)
            ticks += 1

    task = asyncio.create_task(ticker())
    started_s = time.monotonic()
    for _ in range(900):
        await asyncio.sleep(0)
        clock.advance(0.5)
    await settle()
    task.cancel()
    assert ticks == 900 and clock.monotonic() == 450.0
    assert time.monotonic() - started_s < 1.0


async def test_cancelled_sleeper_is_not_counted_or_woken() -> None:
    """Cancelling a sleeping task removes it from the count and advance() skips it."""
    clock = ManualClock()
    task = asyncio.create_task(clock.sleep(1.0))
    await settle()
    task.cancel()
    await settle()
    assert clock.sleeper_count() == 0
    assert clock.advance(2.0) == 0


async def test_negative_durations_are_refused() -> None:
    """Time can't go backwards: negative or NaN durations raise ValueError."""
    clock = ManualClock()
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        await clock.sleep(-0.1)
    with pytest.raises(ValueError, match="number"):
        await SystemClock().sleep(float("nan"))


async def test_zero_sleep_yields_without_advancing() -> None:
    """sleep(0) just yields to the loop; it needs no advance()."""
    clock = ManualClock(start_s=10.0)
    await asyncio.wait_for(clock.sleep(0), timeout=1.0)
    assert clock.monotonic() == 10.0


async def test_system_clock_really_sleeps() -> None:
    """SystemClock.sleep waits real time and monotonic() moves forward."""
    clock = SystemClock()
    before_s = clock.monotonic()
    await clock.sleep(0.02)
    assert clock.monotonic() - before_s >= 0.019
