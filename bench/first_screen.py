"""First-screen latency after a cache flush: cold, a naive warm set, warmd's warm-up, fully warm.

Each repetition is the whole demo on fresh child processes (redis-server, the demo shop and
a three-node warmd cluster, with days of seeded history split over the nodes' logs): flush +
restart, measure cold; start warmd; warm the last day's top targets through its executors,
measure naive; flush + restart, let warmd plan and warm, measure warm; settle, measure
steady. Each phase times 1,000 first-screen requests of the hour after the history (keys the
history never saw, that hour's hot products), and both warm sets get the same budget: a fifth
of that window's distinct keys. Prints each repetition, the medians, the targets, and last a
line `cold_p95_ms=... warm_p95_ms=... steady_p95_ms=... origin_cut=... naive_p95_ms=...
warmd_vs_naive_origin_ratio=... warmd_vs_naive_p95_ratio=...` (medians; a ratio below 1 means
warmd's phase needed fewer origin queries, or had a lower p95, than the naive one).

Usage: python bench/first_screen.py [--quick] [--repetitions N]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warmd.demo.measure import MeasureSettings, PhaseResult, format_table
from warmd.demo.runner import Children, DemoSettings, run_demo_phases, start_demo
from warmd.demo.traffic import TrafficSpec
from warmd.logging import configure as configure_logging


def origin_cut(results: dict[str, PhaseResult]) -> float:
    """Share of the cold phase's origin queries that the warm phase did not need."""
    cold = results["cold"].origin_queries
    return 1.0 - results["warm"].origin_queries / cold if cold else 0.0


def ratio(warmd: float, naive: float) -> float:
    """warmd's figure over the naive one's (inf when naive's is 0 and warmd's is not)."""
    if naive:
        return warmd / naive
    return 1.0 if not warmd else float("inf")


def medians(runs: list[dict[str, PhaseResult]]) -> dict[str, float]:
    """The last line's figures, each the median over the repetitions."""
    figures = {f"{phase}_p95_ms": statistics.median(run[phase].p95_ms for run in runs)
               for phase in ("cold", "warm", "steady")}
    figures["origin_cut"] = statistics.median(origin_cut(run) for run in runs)
    figures["naive_p95_ms"] = statistics.median(run["naive"].p95_ms for run in runs)
    figures["warmd_vs_naive_origin_ratio"] = statistics.median(
        ratio(run["warm"].origin_queries, run["naive"].origin_queries) for run in runs)
    figures["warmd_vs_naive_p95_ratio"] = statistics.median(
        ratio(run["warm"].p95_ms, run["naive"].p95_ms) for run in runs)
    return figures


async def one_run(settings: DemoSettings) -> dict[str, PhaseResult]:
    """A whole demo on fresh children: cold is measured before the daemons start, so each
    repetition needs its own redis, shop and warmd cluster."""
    children = Children()
    directory = Path(tempfile.mkdtemp(prefix="warmd-bench-first-screen-"))
    try:
        layout = await start_demo(settings, children, directory)
        return await run_demo_phases(settings, children, layout)
    finally:
        children.stop_all()
        shutil.rmtree(directory, ignore_errors=True)


async def bench(settings: DemoSettings, repetitions: int) -> list[dict[str, PhaseResult]]:
    runs = []
    for repetition in range(repetitions):
        started = time.monotonic()
        results = await one_run(settings)
        print(f"# repetition {repetition + 1}/{repetitions} "
              f"({time.monotonic() - started:.1f} s)\n{format_table(results)}", flush=True)
        runs.append(results)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller history, under a minute")
    parser.add_argument("--repetitions", type=int, default=0, help="default 2 quick, 5 full")
    args = parser.parse_args()
    configure_logging(level="warning")
    repetitions = args.repetitions or (2 if args.quick else 5)
    traffic = (TrafficSpec(days=3.0, sessions_per_day=1200) if args.quick
               else TrafficSpec(days=7.0, sessions_per_day=2000))
    settings = DemoSettings(traffic=traffic, measure=MeasureSettings(request_limit=1000))
    runs = asyncio.run(bench(settings, repetitions))
    figures = medians(runs)
    steady = figures["steady_p95_ms"]
    print(f"# targets: warmd/naive origin queries = "
          f"{figures['warmd_vs_naive_origin_ratio']:.3f} (< 1), warmd/naive p95 = "
          f"{figures['warmd_vs_naive_p95_ratio']:.3f} (< 1), warm/steady p95 = "
          f"{figures['warm_p95_ms'] / steady:.2f} (<= 1.3); cold/steady p95 = "
          f"{figures['cold_p95_ms'] / steady:.2f}, origin cut = {figures['origin_cut']:.1%}")
    print(" ".join(f"{name}={value:.3f}" for name, value in figures.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
