"""The frontier of numeric slots: hour by hour, the largest value asked so far.

A sequence (articles published in turn, the current hour's stats) is a slot whose frontier
keeps moving with time, however many readers go back to older values; hot ids and page
numbers reach their largest value early and stay there. Read from the summary's per-hour
counts, which merge exactly across hosts and log parts. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from warmd.analysis.summary import SeriesStats, Summary
from warmd.analysis.target import value_type

HOUR_S = 3600


@dataclass(frozen=True)
class Frontier:
    """How a slot's largest value moved over the hours in which the slot was asked."""

    hours: int  # hours in which the slot was asked, after the first of them
    advances: int  # of those, the hours that asked a value above every earlier one

    @property
    def share(self) -> float:
        """Share of the hours in which the frontier advanced."""
        return self.advances / self.hours if self.hours else 0.0


# (template, series label) -> (epoch hour, per slot position the largest value or None)
Peaks = Mapping[tuple[str, tuple[str, ...]], list[tuple[int, tuple[int | None, ...]]]]


@dataclass(frozen=True)
class Frontiers:
    """Every numeric slot's frontier, and each series' largest values per hour."""

    slots: Mapping[str, Mapping[str, Frontier]]  # template -> slot -> frontier
    peaks: Peaks

    def of(self, pattern: str) -> Mapping[str, Frontier]:
        """The frontiers of one template's numeric slots (empty when never seen hourly)."""
        return self.slots.get(pattern, {})

    def leading_values(self, pattern: str, series: SeriesStats) -> tuple[str, ...]:
        """The series' values with each number at its largest since the series (re)started.

        The last value seen can be a late request for an older one (the previous hour's
        stats, yesterday's article): a series is extended from its leading edge instead.
        """
        hourly = self.peaks.get((pattern, _label(series.values)), [])
        first_hour = int(series.first_s // HOUR_S)
        out = list(series.values)
        for hour, values in hourly:
            if hour < first_hour:
                continue
            for position, value in enumerate(values):
                if value is not None and position < len(out) and _is_int(out[position]) \
                        and value > int(out[position]):
                    out[position] = str(value)
        return tuple(out)


def frontiers_of(summary: Summary) -> Frontiers:
    """Scan the summary's per-hour counts once: per hour, each numeric slot's largest value."""
    hourly: dict[tuple[str, tuple[str, ...]], dict[int, list[int | None]]] = {}
    names: dict[str, tuple[str, ...]] = {}
    for hour, window in summary.windows.items():
        for key, _entry in window:
            parts, _ = summary.split(str(key))
            values = parts.values
            numbers = [int(v) if _is_int(v) else None for v in values]
            if all(number is None for number in numbers):
                continue
            pattern = parts.template.pattern
            names[pattern] = parts.template.slot_names
            by_hour = hourly.setdefault((pattern, _label(values)), {})
            known = by_hour.get(hour)
            by_hour[hour] = numbers if known is None else _larger(known, numbers)
    peaks = {series: sorted((hour, tuple(values)) for hour, values in by_hour.items())
             for series, by_hour in hourly.items()}
    return Frontiers(_slot_frontiers(peaks, names), peaks)


def _slot_frontiers(peaks: Peaks, names: Mapping[str, tuple[str, ...]]
                    ) -> dict[str, dict[str, Frontier]]:
    """Per template and slot, the frontier over all of the template's series together."""
    merged: dict[str, dict[int, list[int | None]]] = {}
    for (pattern, _), hourly in peaks.items():
        by_hour = merged.setdefault(pattern, {})
        for hour, values in hourly:
            known = by_hour.get(hour)
            by_hour[hour] = list(values) if known is None else _larger(known, values)
    out: dict[str, dict[str, Frontier]] = {}
    for pattern, by_hour in merged.items():
        for position, name in enumerate(names[pattern]):
            maxima = [value for _, values in sorted(by_hour.items())
                      if (value := values[position]) is not None]
            if maxima:
                out.setdefault(pattern, {})[name] = _frontier(maxima)
    return out


def _frontier(maxima: list[int]) -> Frontier:
    advances, running = 0, maxima[0]
    for value in maxima[1:]:
        if value > running:
            advances, running = advances + 1, value
    return Frontier(len(maxima) - 1, advances)


def _larger(known: list[int | None], numbers: list[int | None] | tuple[int | None, ...]
            ) -> list[int | None]:
    return [b if a is None else a if b is None else max(a, b)
            for a, b in zip(known, numbers, strict=True)]


def _label(values: tuple[str, ...]) -> tuple[str, ...]:
    """The series a key belongs to, as the summary labels it: its non-numeric values."""
    return tuple(value for value in values if not _is_int(value))


def _is_int(value: str) -> bool:
    """A number as the summary types it (an 8-digit date is a date, not a number)."""
    return value_type(value) == "int"
