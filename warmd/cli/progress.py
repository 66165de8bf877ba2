"""A progress bar for long runs: lines, rate and time left on a terminal, silent when piped."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts lines and redraws one status line at most every `interval_s` on a TTY."""

    def __init__(self, total_lines: int | None = None, stream: TextIO | None = None,
                 interval_s: float = 0.2, label: str = "lines") -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total_lines = total_lines
        self.interval_s = interval_s
        self.label = label
        self.done = 0
        self._started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, lines: int) -> None:
        """Record `lines` more processed lines and redraw when due."""
        self.done += lines
        now = time.monotonic()
        if self.enabled and now - self._drawn >= self.interval_s:
            self._drawn = now
            self.stream.write("\r" + self.render(now - self._started))
            self.stream.flush()

    def render(self, elapsed_s: float) -> str:
        """The status line for `elapsed_s` seconds into the run."""
        rate = self.done / elapsed_s if elapsed_s > 0 else 0.0
        text = f"{self.done:,} {self.label}  {rate:,.0f}/s"
        if self.total_lines and rate > 0:
            share = min(1.0, self.done / self.total_lines)
            left_s = max(0.0, (self.total_lines - self.done) / rate)
            filled = int(share * 20)
            text = f"[{'#' * filled}{'.' * (20 - filled)}] {share:4.0%} {text}  {left_s:,.0f}s left"
        return text

    def close(self) -> None:
        """End the status line (nothing when silent)."""
        if self.enabled and self.done:
            self.stream.write("\r" + self.render(time.monotonic() - self._started) + "\n")
            self.stream.flush()
