"""Per-batch aggregation of parsed columns in C-level passes (no Python code per line).

What Summary.add_columns needs before its per-target work: which lines may enter warm sets
(with the exclusions by reason) and the requests per target and hour. Pure.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from typing import Any

EXCLUSION_REASONS = ("method", "status", "bot")  # the order in which a line is judged


def verdicts(column: list[Any], test: Callable[[Any], bool]) -> bytes:
    """One byte per line, 1 where `test` holds; `test` runs once per distinct value."""
    verdict = {value: test(value) for value in set(column)}
    return bytes(map(verdict.__getitem__, column))


def cacheable_mask(method_ok: bytes, status_ok: bytes,
                   agent_ok: bytes) -> tuple[bytes | None, list[tuple[str, int]]]:
    """The lines whose method, status and agent all pass (None when every line does), and
    the excluded lines counted by their first failing test, each reason listed in the order
    its first line came (the order a line-by-line count would give them).

    The verdicts are ANDed as big integers (one byte per line) and counted with popcounts.
    """
    line_count = len(method_ok)
    by_method = int.from_bytes(method_ok)
    by_status = by_method & int.from_bytes(status_ok)
    kept = by_status & int.from_bytes(agent_ok)
    if kept.bit_count() == line_count:
        return None, []
    every_line = int.from_bytes(b"\x01" * line_count)
    excluded = dict(zip(EXCLUSION_REASONS, (every_line & ~by_method, by_method & ~by_status,
                                            by_status & ~kept), strict=True))
    first_line = {reason: lines.to_bytes(line_count).find(1)
                  for reason, lines in excluded.items() if lines}
    exclusions = [(reason, excluded[reason].bit_count())
                  for reason in sorted(first_line, key=first_line.__getitem__)]
    return kept.to_bytes(line_count), exclusions


def per_hour_counts(targets: list[str], times_s: list[float]) -> list[tuple[int, dict[str, int]]]:
    """Requests per target and hour as runs of one hour each, in the order Counter(zip(
    targets, hours)) would list them (first seen first), but without a tuple per line when
    the hours never go back: a batch within one hour is one Counter, a time-ordered one is
    cut at the hour boundaries, and only one whose hours go back counts (target, hour)
    pairs."""
    first_hour, last_hour = int(min(times_s) // 3600), int(max(times_s) // 3600)
    if first_hour == last_hour:
        return [(first_hour, Counter(targets))]
    hours = range(first_hour, last_hour + 1)
    if times_s == sorted(times_s):  # t // 3600 >= h exactly when t >= h * 3600
        bounds = [bisect_left(times_s, hour * 3600) for hour in hours] + [len(times_s)]
        return [(hour, Counter(targets[start:end]))
                for hour, (start, end) in zip(hours, pairwise(bounds), strict=True)
                if end > start]
    hour_of = {time_s: int(time_s // 3600) for time_s in set(times_s)}
    line_hours = list(map(hour_of.__getitem__, times_s))
    if line_hours == sorted(line_hours):  # disordered only within hours (logging jitter)
        bounds = [bisect_left(line_hours, hour) for hour in hours] + [len(times_s)]
        return [(hour, Counter(targets[start:end]))
                for hour, (start, end) in zip(hours, pairwise(bounds), strict=True)
                if end > start]
    runs: list[tuple[int, dict[str, int]]] = []
    for (target, hour), count in Counter(zip(targets, line_hours, strict=True)).items():
        if not runs or runs[-1][0] != hour:
            runs.append((hour, {}))
        runs[-1][1][target] = count
    return runs
