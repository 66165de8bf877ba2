"""First-screen measurement: timed loads of the shop's first screen and its /_stats deltas.

A load is the list of API calls of one first screen, sent at once as a browser would; a
phase times `request_limit` requests: the first screens of the hour (`window_s`) that follows
the history, so they hold keys the history never saw (the hour's stats, new articles) and that
hour's hot products. `run_phases` measures `cold` (cache flushed, shop restarted), `naive` (a
warm set of the same budget chosen without prediction), `warm` (flushed again, then warmd's
warm-up) and `steady` (fully warm). A warmed phase also reports its warm set's waste: the share
of the keys it warmed that no request of the window read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

from warmd.cache.http import HttpClient
from warmd.demo.shop import ShopStats, cache_key
from warmd.demo.traffic import ShopTraffic, TrafficSpec
from warmd.errors import CacheError
from warmd.runtime.execute.warmer import percentile_ms

PHASES = ("cold", "naive", "warm", "steady")
BUDGET_SHARE = 5  # the demo's warm budget: a fifth of the window's distinct keys

WarmUp = Callable[[], Awaitable[list[str]]]  # warms the cache; returns the requests it warmed


@dataclass(frozen=True, slots=True)
class MeasureSettings:
    """How many requests a phase times, over which window after the history, and the seed
    of its first-screen loads (the catalogue, hence the hot products, is the history's)."""

    request_limit: int = 1000
    seed: int = 4242
    window_s: float = 3600.0
    steady_passes_max: int = 4  # untimed passes before `steady` until one misses nothing
    # Calls of one load in flight at once. A browser sends them together, but the shop is one
    # Python process: at 7 in flight the p95 of hits measures its queue, not the cache.
    parallel_calls: int = 1

    def validate(self) -> MeasureSettings:
        if min(self.request_limit, self.steady_passes_max, self.parallel_calls) < 1:
            raise ValueError("request_limit, steady_passes_max and parallel_calls must be >= 1")
        if self.window_s <= 0:
            raise ValueError("window_s must be > 0")
        return self


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One phase: shop-side hit rate and origin queries, client-side latency percentiles."""

    phase: str
    requests: int
    loads: int
    errors: int
    hit_rate: float
    p50_ms: float
    p95_ms: float
    origin_queries: int
    duration_s: float
    warm_set: int = 0  # distinct cache keys warmed before the phase
    wasted: int = 0  # of those, keys no request of the phase read

    @property
    def waste(self) -> float | None:
        """Share of the warm set never read in the window; None when nothing was warmed."""
        return self.wasted / self.warm_set if self.warm_set else None

    def summary(self) -> dict[str, float | int | None]:
        """The numbers of the issue's table, rounded for printing and JSON."""
        waste = self.waste
        return {"hit_rate": round(self.hit_rate, 4), "p50_ms": round(self.p50_ms, 3),
                "p95_ms": round(self.p95_ms, 3), "origin_queries": self.origin_queries,
                "warm_set": self.warm_set, "waste": None if waste is None else round(waste, 4)}


class ShopControl(Protocol):
    """What the phases need from whoever runs the shop."""

    base_url: str

    async def reset(self) -> None:
        """Flush the cache and restart the shop (a cold start)."""


def first_screen_loads(settings: MeasureSettings, start_s: float) -> list[list[str]]:
    """The loads of one phase, spread evenly over the window that opens at `start_s` and
    cut so that they hold exactly `request_limit` calls."""
    traffic = ShopTraffic(TrafficSpec(seed=settings.seed))
    loads: list[list[str]] = []
    remaining = settings.request_limit
    while remaining > 0:
        done = settings.request_limit - remaining
        moment_s = start_s + settings.window_s * done / settings.request_limit
        calls = traffic.first_screen(moment_s)[:remaining]
        loads.append(calls)
        remaining -= len(calls)
    return loads


def target_key(target: str) -> str:
    """The shop's cache key for a request target (path and query string)."""
    parts = urlsplit(target)
    return cache_key(parts.path, dict(parse_qsl(parts.query)))


def window_keys(loads: list[list[str]]) -> set[str]:
    """The distinct cache keys the loads read."""
    return {target_key(call) for calls in loads for call in calls}


def warm_budget(loads: list[list[str]]) -> int:
    """The demo's budget: a fifth of the distinct keys of the measured window, so that
    warming everything is impossible and the choice of keys is what is measured."""
    return len(window_keys(loads)) // BUDGET_SHARE


def with_waste(result: PhaseResult, warmed: Iterable[str],
               loads: list[list[str]]) -> PhaseResult:
    """`result` with its warm set's size and the keys of it that the loads never read."""
    warmed_keys = {target_key(target) for target in warmed}
    return replace(result, warm_set=len(warmed_keys),
                   wasted=len(warmed_keys - window_keys(loads)))


async def fetch_stats(client: HttpClient) -> ShopStats:
    """The shop's counters from /_stats.

    Raises:
        CacheError: the shop did not answer or answered nonsense.
    """
    response = await client.get("/_stats", keep_body=True)
    try:
        return ShopStats(**json.loads(response.body or b""))
    except (ValueError, TypeError) as error:
        raise CacheError(f"bad /_stats answer: {error}") from error


async def _timed_get(client: HttpClient, target: str) -> float | None:
    try:
        return (await client.get(target)).latency_s
    except CacheError:
        return None


async def run_loads(client: HttpClient, loads: list[list[str]], parallel_calls: int = 1
                    ) -> tuple[list[float], int]:
    """Loads one after the other, `parallel_calls` calls of a load at a time;
    return (latencies_s, errors)."""
    latencies_s: list[float] = []
    errors = 0
    gate = asyncio.Semaphore(parallel_calls)

    async def call_once(target: str) -> float | None:
        async with gate:
            return await _timed_get(client, target)

    for calls in loads:
        for latency_s in await asyncio.gather(*(call_once(call) for call in calls)):
            if latency_s is None:
                errors += 1
            else:
                latencies_s.append(latency_s)
    return latencies_s, errors


async def measure_phase(base_url: str, phase: str, loads: list[list[str]],
                        parallel_calls: int = 1) -> PhaseResult:
    """Time the loads against the shop; counters are /_stats deltas."""
    client = HttpClient(base_url=base_url, headers={"User-Agent": "warmd-demo-measure"})
    try:
        before = await fetch_stats(client)
        started = time.perf_counter()
        latencies_s, errors = await run_loads(client, loads, parallel_calls)
        duration_s = time.perf_counter() - started
        after = await fetch_stats(client)
    finally:
        await client.close()
    hits = after.cache_hits - before.cache_hits
    lookups = hits + after.cache_misses - before.cache_misses
    return PhaseResult(
        phase=phase, requests=sum(map(len, loads)), loads=len(loads), errors=errors,
        hit_rate=hits / lookups if lookups else 0.0,
        p50_ms=percentile_ms(latencies_s, 0.5) or 0.0,
        p95_ms=percentile_ms(latencies_s, 0.95) or 0.0,
        origin_queries=after.origin_queries - before.origin_queries, duration_s=duration_s)


async def settle(base_url: str, loads: list[list[str]], settings: MeasureSettings) -> int:
    """Run the phase's loads untimed until a pass misses nothing; return the passes run."""
    for passes in range(1, settings.steady_passes_max + 1):
        result = await measure_phase(base_url, "settle", loads, settings.parallel_calls)
        if result.hit_rate >= 1.0:
            return passes
    return settings.steady_passes_max


async def run_phases(control: ShopControl, warm_up: WarmUp, settings: MeasureSettings,
                     loads: list[list[str]],
                     before_warm: Callable[[], Awaitable[object]] | None = None,
                     naive_warm_up: WarmUp | None = None) -> dict[str, PhaseResult]:
    """cold; a reset, then `before_warm()`; naive (`naive_warm_up()`); a reset, `warm_up()`
    and warm; then steady (after traffic filled every key).

    `before_warm` starts what must not see the cold phase, such as a warmd cluster that
    would warm the cache while cold is measured; the reset before it leaves the cache empty,
    so the naive warm set starts from nothing and only the reset after it (a flush of a full
    cache) triggers warmd's warm-up."""
    settings.validate()
    parallel = settings.parallel_calls
    await control.reset()
    results = {"cold": await measure_phase(control.base_url, "cold", loads, parallel)}
    await control.reset()
    if before_warm is not None:
        await before_warm()
    if naive_warm_up is not None:
        warmed = await naive_warm_up()
        naive = await measure_phase(control.base_url, "naive", loads, parallel)
        results["naive"] = with_waste(naive, warmed, loads)
        await control.reset()
    warmed = await warm_up()
    results["warm"] = with_waste(await measure_phase(control.base_url, "warm", loads, parallel),
                                 warmed, loads)
    await settle(control.base_url, loads, settings)
    results["steady"] = await measure_phase(control.base_url, "steady", loads, parallel)
    return results


def results_json(results: dict[str, PhaseResult]) -> dict[str, dict[str, float | int | None]]:
    return {phase: results[phase].summary() for phase in PHASES if phase in results}


def format_table(results: dict[str, PhaseResult]) -> str:
    """The before/after table: one row per phase (warm is warmd's warm-up)."""
    rows = [f"{'phase':<8}{'hit rate':>10}{'p50 ms':>10}{'p95 ms':>10}{'origin queries':>16}"
            f"{'warm set':>10}{'waste':>8}"]
    for phase in PHASES:
        if phase in results:
            result = results[phase]
            waste = "-" if result.waste is None else f"{result.waste:.0%}"
            rows.append(f"{phase:<8}{result.hit_rate:>10.1%}{result.p50_ms:>10.2f}"
                        f"{result.p95_ms:>10.2f}{result.origin_queries:>16d}"
                        f"{result.warm_set:>10d}{waste:>8}")
    return "\n".join(rows)


def phase_rows(results: dict[str, PhaseResult]) -> list[dict[str, object]]:
    """Every field of every phase (for benchmarks that keep the raw numbers)."""
    return [asdict(results[phase]) for phase in PHASES if phase in results]
