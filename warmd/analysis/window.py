"""Consecutive blocks of parsed columns aggregated per target, before a summary's per-target
work: the summary of a window is the summary of its blocks' columns concatenated.

Why: a summary's Python work runs once per distinct target of a batch (templating, slot
sketches, series), and on a real log most targets of a 4 MB block come back in later
blocks. A window keeps per target only what that work reads (count, first and last time,
last position, requests per hour, sampled clients), in dicts filled by C-level passes, so a
target pays that work once per window, not once per block. Pure.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress

from warmd.analysis.batch import per_hour_counts

CLIENT_SAMPLE = 8  # one kept line in CLIENT_SAMPLE gives its (target, client) pair
# How much a window holds before the summary takes it: distinct targets, and (target, hour)
# counts. A few hundred bytes each in the window's dicts, and while the summary takes it, a
# template info per target (~0.8 KB on LP DAAC's constraint expressions). Measured on LP DAAC
# repeated to 2M lines (the largest worker; 292 MB before windows): 20,000 / 50,000 289 MB,
# 30,000 / 75,000 299 MB, 40,000 / 100,000 303-314 MB, over the 300 MB target.
WINDOW_TARGETS = 20_000
WINDOW_HOUR_ENTRIES = 50_000


@dataclass
class Block:
    """One batch of columns reduced to what a window takes: the line counts and exclusions,
    and the cacheable lines' targets, times and clients with their requests per hour."""

    lines: int
    first_s: float
    last_s: float
    exclusions: list[tuple[str, int]]
    targets: list[str]
    times_s: list[float]
    clients: list[str]
    runs: list[tuple[int, dict[str, int]]]

    @classmethod
    def of(cls, targets: list[str], times_s: list[float], clients: list[str],
           keep: bytes | None, exclusions: list[tuple[str, int]]) -> Block:
        """The block of one batch; `keep` (one byte per line, None: all) marks the lines
        that may enter warm sets, `exclusions` counts the others by reason."""
        first_s, last_s = (min(times_s), max(times_s)) if times_s else (math.inf, -math.inf)
        lines = len(targets)
        if keep is not None:
            targets = list(compress(targets, keep))
            times_s = list(compress(times_s, keep))
            clients = list(compress(clients, keep))
        runs = per_hour_counts(targets, times_s) if targets else []
        return cls(lines, first_s, last_s, exclusions, targets, times_s, clients, runs)


@dataclass
class Window:
    """Blocks taken in log order, aggregated exactly as their concatenation would be.

    `runs` are the requests per target and hour in the order Counter(zip(targets, hours))
    of the concatenation lists them; `last_pos` is each target's last position among the
    kept lines (ties of last times are ordered by it, as one batch orders them)."""

    max_targets: int = WINDOW_TARGETS
    max_hour_entries: int = WINDOW_HOUR_ENTRIES
    lines: int = 0
    first_line_s: float = math.inf
    last_line_s: float = -math.inf
    excluded: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    first_kept_s: float = math.inf
    first_s: dict[str, float] = field(default_factory=dict)
    last_s: dict[str, float] = field(default_factory=dict)
    last_pos: dict[str, int] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    runs: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    hour_entries: int = 0
    runs_by_hour: dict[int, list[dict[str, int]]] = field(default_factory=dict)

    def full(self) -> bool:
        """True when the window holds as much as it may (the summary should take it)."""
        return len(self.last_s) >= self.max_targets or self.hour_entries >= self.max_hour_entries

    def accepts(self, block: Block) -> bool:
        """True when the window may take `block`: it is empty, or not full, or the block
        has no cacheable line."""
        return not self.kept or not block.runs or not self.full()

    def take(self, block: Block) -> None:
        """Fold `block` in (the caller checked `accepts`)."""
        self.lines += block.lines
        self.first_line_s = min(self.first_line_s, block.first_s)
        self.last_line_s = max(self.last_line_s, block.last_s)
        for reason, count in block.exclusions:
            self.excluded[reason] = self.excluded.get(reason, 0) + count
        if not block.targets:
            return
        self._take_targets(block)
        self._take_runs(block)
        start = -self.kept % CLIENT_SAMPLE  # the concatenation's sample continues here
        sample = slice(start, None, CLIENT_SAMPLE)
        self.pairs.update(zip(block.targets[sample], block.clients[sample], strict=True))
        self.kept += len(block.targets)

    def _take_targets(self, block: Block) -> None:
        targets, times_s = block.targets, block.times_s
        self.first_kept_s = min(self.first_kept_s, min(times_s))
        first_s = dict(zip(reversed(targets), reversed(times_s), strict=True))
        if self.first_s:  # kept in the block's order, not a set difference's hash order
            seen = self.first_s
            first_s = {target: time_s for target, time_s in first_s.items() if target not in seen}
        self.first_s.update(first_s)
        self.last_s.update(zip(targets, times_s, strict=True))
        self.last_pos.update(zip(targets, range(self.kept, self.kept + len(targets)), strict=True))
        self.counts.update(targets)

    def _take_runs(self, block: Block) -> None:
        """Continue the runs as the concatenation's Counter(zip(targets, hours)) lists them:
        a (target, hour) pair already in the window adds to its count where it is; the new
        pairs follow in the block's order, consecutive ones of one hour in one run."""
        by_hour = self.runs_by_hour
        for hour, counts in block.runs:
            if hour not in by_hour:  # every pair is new, and the last run is another hour
                run = dict(counts)
                self.runs.append((hour, run))
                by_hour[hour] = [run]
                self.hour_entries += len(run)
                continue
            new = _count_into(by_hour[hour], counts)
            if not new:
                continue
            if self.runs[-1][0] == hour:
                self.runs[-1][1].update(new)
            else:
                self.runs.append((hour, new))
                by_hour[hour].append(new)
            self.hour_entries += len(new)

    def order(self) -> list[str]:
        """The distinct targets by last time, ties by last position latest first (the
        order one batch of the concatenation would take them in)."""
        latest_first = sorted(self.last_pos, key=self.last_pos.__getitem__, reverse=True)
        return sorted(latest_first, key=self.last_s.__getitem__)


def _count_into(runs: list[dict[str, int]], counts: dict[str, int]) -> dict[str, int]:
    """Add `counts` to the runs of one hour holding their targets; the others, returned."""
    new: dict[str, int] = {}
    for target, count in counts.items():
        for run in runs:
            if target in run:
                run[target] += count
                break
        else:
            new[target] = count
    return new
