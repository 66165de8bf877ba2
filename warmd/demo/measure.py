"""First-screen measurement: timed loads of the shop's first screen and its /_stats deltas.

A load is the list of API calls of one first screen, sent at once as a browser would; a
phase times its first `request_limit` requests. `run_phases` measures `cold` (cache flushed,
shop restarted), `warm` (the same, then the warm-up passed in) and `steady` (fully warm).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Protocol

from warmd.cache.http import HttpClient
from warmd.demo.shop import ShopStats
from warmd.demo.traffic import ShopTraffic, TrafficSpec
from warmd.errors import CacheError
from warmd.runtime.execute.warmer import percentile_ms

PHASES = ("cold", "warm", "steady")


@dataclass(frozen=True, slots=True)
class MeasureSettings:
    """How many requests a phase times, and the seed of its first-screen loads."""

    request_limit: int = 1000
    seed: int = 4242
    steady_passes_max: int = 4  # untimed passes before `steady` until one misses nothing
    # Calls of one load in flight at once. A browser sends them together, but the shop is one
    # Python process: at 7 in flight the p95 of hits measures its queue, not the cache.
    parallel_calls: int = 1

    def validate(self) -> MeasureSettings:
        if min(self.request_limit, self.steady_passes_max, self.parallel_calls) < 1:
            raise ValueError("request_limit, steady_passes_max and parallel_calls must be >= 1")
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

    def summary(self) -> dict[str, float | int]:
        """The four numbers of the issue's table, rounded for printing and JSON."""
        return {"hit_rate": round(self.hit_rate, 4), "p50_ms": round(self.p50_ms, 3),
                "p95_ms": round(self.p95_ms, 3), "origin_queries": self.origin_queries}


class ShopControl(Protocol):
    """What the phases need from whoever runs the shop."""

    base_url: str

    async def reset(self) -> None:
        """Flush the cache and restart the shop (a cold start)."""


def first_screen_loads(settings: MeasureSettings, day: date) -> list[list[str]]:
    """The loads of one phase, cut so that they hold exactly `request_limit` calls."""
    traffic = ShopTraffic(TrafficSpec(seed=settings.seed))
    loads: list[list[str]] = []
    remaining = settings.request_limit
    while remaining > 0:
        calls = traffic.first_screen(day)[:remaining]
        loads.append(calls)
        remaining -= len(calls)
    return loads


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


async def measure_phase(base_url: str, phase: str, settings: MeasureSettings,
                        day: date) -> PhaseResult:
    """Time the phase's loads against the shop; counters are /_stats deltas."""
    settings.validate()
    loads = first_screen_loads(settings, day)
    client = HttpClient(base_url=base_url, headers={"User-Agent": "warmd-demo-measure"})
    try:
        before = await fetch_stats(client)
        started = time.perf_counter()
        latencies_s, errors = await run_loads(client, loads, settings.parallel_calls)
        duration_s = time.perf_counter() - started
        after = await fetch_stats(client)
    finally:
        await client.close()
    hits = after.cache_hits - before.cache_hits
    lookups = hits + after.cache_misses - before.cache_misses
    return PhaseResult(
        phase=phase, requests=settings.request_limit, loads=len(loads), errors=errors,
        hit_rate=hits / lookups if lookups else 0.0,
        p50_ms=percentile_ms(latencies_s, 0.5) or 0.0,
        p95_ms=percentile_ms(latencies_s, 0.95) or 0.0,
        origin_queries=after.origin_queries - before.origin_queries, duration_s=duration_s)


async def settle(base_url: str, settings: MeasureSettings, day: date) -> int:
    """Run the phase's loads untimed until a pass misses nothing; return the passes run."""
    for passes in range(1, settings.steady_passes_max + 1):
        result = await measure_phase(base_url, "settle", settings, day)
        if result.hit_rate >= 1.0:
            return passes
    return settings.steady_passes_max


async def run_phases(control: ShopControl, warm_up: Callable[[], Awaitable[object]],
                     settings: MeasureSettings, day: date,
                     before_warm: Callable[[], Awaitable[object]] | None = None,
                     ) -> dict[str, PhaseResult]:
    """cold, then warm (`before_warm()`, a reset, then `warm_up()`), then steady (after
    traffic filled every key). `before_warm` starts what must not see the cold phase's
    reset, such as a warmd cluster that would warm the cache while cold is measured."""
    await control.reset()
    cold = await measure_phase(control.base_url, "cold", settings, day)
    if before_warm is not None:
        await before_warm()
    await control.reset()
    await warm_up()
    warm = await measure_phase(control.base_url, "warm", settings, day)
    await settle(control.base_url, settings, day)
    steady = await measure_phase(control.base_url, "steady", settings, day)
    return {"cold": cold, "warm": warm, "steady": steady}


def results_json(results: dict[str, PhaseResult]) -> dict[str, dict[str, float | int]]:
    return {phase: results[phase].summary() for phase in PHASES if phase in results}


def format_table(results: dict[str, PhaseResult]) -> str:
    """The before/after table: one row per phase."""
    rows = [f"{'phase':<8}{'hit rate':>10}{'p50 ms':>10}{'p95 ms':>10}{'origin queries':>16}"]
    for phase in PHASES:
        if phase in results:
            result = results[phase]
            rows.append(f"{phase:<8}{result.hit_rate:>10.1%}{result.p50_ms:>10.2f}"
                        f"{result.p95_ms:>10.2f}{result.origin_queries:>16d}")
    return "\n".join(rows)


def phase_rows(results: dict[str, PhaseResult]) -> list[dict[str, object]]:
    """Every field of every phase (for benchmarks that keep the raw numbers)."""
    return [asdict(results[phase]) for phase in PHASES if phase in results]
