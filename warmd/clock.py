"""Time for the I/O shell: the `Clock` protocol, the real clock and a manual one for tests.

Runtime code asks a Clock instead of calling `time`/`asyncio.sleep` directly, so a test can
drive timers deterministically with `ManualClock.advance()` (trio's MockClock idea).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol, TypeVarTuple

Ts = TypeVarTuple("Ts")


class Timer(Protocol):
    """A scheduled callback that can be cancelled before it runs."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """A monotonic time source that tasks can sleep on, and the wall clock."""

    def monotonic(self) -> float:
        """Seconds since an arbitrary fixed point; never goes backwards."""
        ...

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch: the time stamped into commands and logs.
        It may jump (NTP, an operator); use `monotonic()` to measure durations."""
        ...

    async def sleep(self, duration_s: float) -> None:
        """Suspend the calling task for `duration_s` seconds of this clock's time."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[*Ts], object],
                   *args: *Ts) -> Timer:
        """Run `callback(*args)` after `delay_s` of this clock's time (no task per timer:
        the driver sets one per proposal)."""
        ...


class SystemClock:
    """The real clock: `time.monotonic()` and `asyncio.sleep()`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, duration_s: float) -> None:
        _check_duration(duration_s)
        await asyncio.sleep(duration_s)

    def call_later(self, delay_s: float, callback: Callable[[*Ts], object],
                   *args: *Ts) -> Timer:
        return asyncio.get_running_loop().call_later(delay_s, callback, *args)


class ManualClock:
    """A clock that moves only when the test calls `advance()`; sleepers wake in deadline order.

    Sleeping tasks are woken by resolving their futures; they run the next time the test
    yields to the event loop (for example `await asyncio.sleep(0)`).
    """

    def __init__(self, start_s: float = 0.0, wall_start_ms: int = 1_767_225_600_000) -> None:
        self._now_s = start_s
        self._start_s = start_s
        self._wall_start_ms = wall_start_ms  # 2026-01-01T00:00:00Z unless told otherwise
        self.wall_offset_ms = 0  # a test sets it to make the wall clock jump
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._sequence = itertools.count()

    def monotonic(self) -> float:
        return self._now_s

    def wall_ms(self) -> int:
        """The wall clock moves with `advance()`, plus any jump set in `wall_offset_ms`."""
        elapsed_ms = round((self._now_s - self._start_s) * 1000)
        return self._wall_start_ms + elapsed_ms + self.wall_offset_ms

    async def sleep(self, duration_s: float) -> None:
        """Wait until the clock has been advanced by at least `duration_s`.

        Raises:
            ValueError: `duration_s` is negative or not a finite number.
        """
        _check_duration(duration_s)
        if duration_s == 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now_s + duration_s, next(self._sequence), future))
        await future

    def advance(self, duration_s: float) -> int:
        """Move time forward by `duration_s` and wake every sleeper now due; return how many.

        Raises:
            ValueError: `duration_s` is negative ("time can't go backwards").
        """
        _check_duration(duration_s)
        self._now_s += duration_s
        woken = 0
        while self._sleepers and self._sleepers[0][0] <= self._now_s:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():  # a cancelled sleeper is simply dropped
                future.set_result(None)
                woken += 1
        while self._timers and self._timers[0][0] <= self._now_s:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback(*timer.args)
                woken += 1
        return woken

    def call_later(self, delay_s: float, callback: Callable[[*Ts], object],
                   *args: *Ts) -> Timer:
        _check_duration(delay_s)
        timer = _ManualTimer(callback, args)
        heapq.heappush(self._timers, (self._now_s + delay_s, next(self._sequence), timer))
        return timer

    def sleeper_count(self) -> int:
        """How many tasks are still waiting on this clock (cancelled ones excluded)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    def next_deadline_s(self) -> float | None:
        """The earliest time a current sleeper wakes, or None when nobody sleeps."""
        pending = [deadline for deadline, _, future in self._sleepers if not future.done()]
        return min(pending, default=None)


def _check_duration(duration_s: float) -> None:
    if not isinstance(duration_s, int | float) or duration_s != duration_s:
        raise ValueError(f"duration must be a number of seconds, got {duration_s!r}")
    if duration_s < 0:
        raise ValueError(f"time can't go backwards (duration {duration_s} s)")


class _ManualTimer:
    __slots__ = ("args", "callback", "cancelled")

    def __init__(self, callback: Callable[..., object], args: tuple[object, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
