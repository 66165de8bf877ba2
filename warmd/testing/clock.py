"""A virtual tick clock for simulations: time moves only when the simulator says so.

The Raft core counts ticks, never seconds; the simulator counts the same ticks here
so that message delays, fault schedules and client timeouts share one time axis.
"""

from __future__ import annotations


class VirtualClock:
    """Counts simulated ticks; `advance()` is the only way time moves (trio's MockClock idea)."""

    __slots__ = ("_now_ticks",)

    def __init__(self, start_ticks: int = 0) -> None:
        if start_ticks < 0:
            raise ValueError(f"start_ticks must be >= 0, got {start_ticks}")
        self._now_ticks = start_ticks

    @property
    def now_ticks(self) -> int:
        """The current simulated time in ticks."""
        return self._now_ticks

    def advance(self, ticks: int = 1) -> int:
        """Move time forward by `ticks` and return the new time.

        Raises:
            ValueError: when `ticks` is negative, since simulated time cannot go backwards.
        """
        if ticks < 0:
            raise ValueError(f"time can't go backwards: advance({ticks})")
        self._now_ticks += ticks
        return self._now_ticks
