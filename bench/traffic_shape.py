"""How concentrated a cache's traffic is: requests per distinct key and the top fifth's share.

A warm set of a fifth of a window's distinct keys leaves the other four fifths to miss once
each, so a window's p95 can be a hit only when 0.8 x distinct keys < 5 % of its requests,
i.e. when it has >= 16 requests per distinct key. This measures that figure, the share of
requests on the window's busiest fifth of keys, and the share of requests that miss even
with that best fifth warmed (each key left out missing once), in windows comparable to the
demo's:

* windows of 1,000 consecutive cacheable requests (the demo times 1,000 per phase);
* the first 10 % of each day (what `bench/real_logs.py` and `bench/prediction.py` score);

on every real log in ../shared/data (read in place, never copied; the key is the request
target), on the held-out-style API log (warmd/testing/apilog.py; the key leaves out the `_`
cache-buster, as its service's cache does) and on the demo's own measured window and
history (the shop's cache key). Deterministic (no timing); prints medians and quartiles, and
last a line `name=value ...` of the medians.

Usage: python bench/traffic_shape.py [--logs netnea elastic lpdaac api demo]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.prediction import cache_key as api_cache_key
from bench.real_logs import DATA, NASA_FORMAT
from warmd.analysis.formats import COMBINED, LineParser, Record
from warmd.demo.measure import MeasureSettings, first_screen_loads, target_key
from warmd.demo.traffic import TrafficSpec, history_lines
from warmd.runtime.ingest.worker import read_records
from warmd.testing.apilog import ApiLogSpec, generate_api_lines

WINDOW_REQUESTS = 1_000
DAY_S = 86_400.0
DEMO_END_S = 1_796_000_400.0  # an hour boundary, so the demo's window is its usual shape


@dataclass(frozen=True, slots=True)
class Shape:
    """One window: its requests, distinct keys and the busiest fifth's share of requests."""

    requests: int
    keys: int
    top_fifth_share: float

    @property
    def per_key(self) -> float:
        return self.requests / self.keys

    @property
    def miss_floor(self) -> float:
        """Share of the requests that miss with the best warm set of a fifth of the keys:
        every key left out misses once (at least); a p95 hit needs this under 5 %."""
        return (self.keys - self.keys // 5) / self.requests


def shape(keys: Sequence[str]) -> Shape:
    counts = sorted(Counter(keys).values(), reverse=True)
    top = sum(counts[:max(1, len(counts) // 5)])
    return Shape(len(keys), len(counts), top / len(keys))


def count_windows(keys: Sequence[str], size: int = WINDOW_REQUESTS) -> Iterator[Shape]:
    """Consecutive, non-overlapping windows of `size` requests (a short tail is dropped)."""
    for start in range(0, len(keys) - size + 1, size):
        yield shape(keys[start:start + size])


def day_openings(timed: Sequence[tuple[float, str]], offset_s: float = 0.0,
                 minimum: int = 10) -> Iterator[Shape]:
    """The first 10 % of each day's requests (days in the log's zone: `offset_s` east of UTC),
    days with fewer than `minimum` requests in that tenth skipped."""
    days: dict[int, list[str]] = {}
    for time_s, key in timed:
        days.setdefault(int((time_s + offset_s) // DAY_S), []).append(key)
    for keys in days.values():
        opening = keys[:len(keys) // 10]
        if len(opening) >= minimum:
            yield shape(opening)


def cacheable(record: Record) -> bool:
    return record.method == "GET" and 200 <= record.status < 400


def real_log(path: Path, log_format: str | None) -> list[tuple[float, str]]:
    records = read_records([str(path)], log_format).records
    return [(r.time_s, r.target) for r in records if cacheable(r)]


def api_log() -> list[tuple[float, str]]:
    records = LineParser(COMBINED).parse_many(generate_api_lines(ApiLogSpec()))
    return [(r.time_s, api_cache_key(r.target)) for r in records if cacheable(r)]


def demo_history() -> list[tuple[float, str]]:
    records = LineParser(COMBINED).parse_many(
        history_lines(TrafficSpec(days=5.0, sessions_per_day=1500), DEMO_END_S))
    return sorted((r.time_s, target_key(r.target)) for r in records)


def demo_window() -> list[str]:
    loads = first_screen_loads(MeasureSettings(), DEMO_END_S)
    return [target_key(call) for calls in loads for call in calls]


def describe(name: str, kind: str, shapes: list[Shape]) -> dict[str, float]:
    """Print one row (median and quartiles); return its medians."""
    if not shapes:
        print(f"| {name} | {kind} | 0 | - | - | - | - |")
        return {}
    per_key = [s.per_key for s in shapes]
    top = [s.top_fifth_share for s in shapes]
    floor = [s.miss_floor for s in shapes]
    size = statistics.median(s.requests for s in shapes)

    def spread(values: list[float], fmt: str) -> str:
        if len(values) < 4:
            return f"{statistics.median(values):{fmt}}"
        low, mid, high = statistics.quantiles(values, n=4)
        return f"{mid:{fmt}} ({low:{fmt}}-{high:{fmt}})"

    print(f"| {name} | {kind} | {len(shapes)} | {size:,.0f} | {spread(per_key, '.1f')} | "
          f"{spread(top, '.0%')} | {spread(floor, '.0%')} |", flush=True)
    return {"per_key": statistics.median(per_key), "top_fifth": statistics.median(top),
            "miss_floor": statistics.median(floor)}


SOURCES = {
    "netnea": lambda: real_log(DATA / "netnea-wordpress-2015/labor-04-example-access.log.gz",
                               None),
    "elastic": lambda: real_log(DATA / "elastic-apache-2015/apache_logs.gz", None),
    "lpdaac": lambda: real_log(DATA / "lpdaac-opendap-2015-2017/logs_for_opendap.txt.gz",
                               NASA_FORMAT),
    "api": api_log,
    "demo": demo_history,
}
ZONES = {"api": 8 * 3600.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="*", default=list(SOURCES))
    args = parser.parse_args()
    print("| log | window | windows | requests (median) | requests per distinct key | "
          "top fifth's share | misses left by the best fifth |")
    print("|---|---|---|---|---|---|---|")
    figures: dict[str, float] = {}
    for name in args.logs:
        timed = SOURCES[name]()
        keys = [key for _, key in timed]
        for kind, shapes in (("1,000 requests", list(count_windows(keys))),
                             ("first 10 % of a day",
                              list(day_openings(timed, ZONES.get(name, 0.0))))):
            for figure, value in describe(name, kind, shapes).items():
                figures[f"{name}_{'w1000' if kind[0] == '1' else 'day10'}_{figure}"] = value
        if name == "demo":
            window = shape(demo_window())
            figures.update(demo_measured_per_key=window.per_key,
                           demo_measured_top_fifth=window.top_fifth_share,
                           demo_measured_miss_floor=window.miss_floor)
            describe("demo", "the measured window", [window])
    print(" ".join(f"{name}={value:.3f}" for name, value in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
