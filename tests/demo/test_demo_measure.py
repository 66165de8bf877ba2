"""The first-screen measurement against a real shop: loads, counters, phases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis

from warmd.demo.measure import (
    MeasureSettings,
    first_screen_loads,
    format_table,
    measure_phase,
    results_json,
    run_phases,
)
from warmd.demo.runner import ShopProcess

DAY = datetime.now(UTC).date()
SETTINGS = MeasureSettings(request_limit=120, seed=11)


def test_loads_hold_exactly_the_request_limit() -> None:
    """The phase's loads are whole first screens cut to exactly request_limit calls."""
    loads = first_screen_loads(MeasureSettings(request_limit=100), DAY)
    assert sum(len(calls) for calls in loads) == 100
    assert all(calls[0].startswith("/api/deals?") for calls in loads)
    assert first_screen_loads(MeasureSettings(request_limit=100), DAY) == loads


def test_bad_settings_are_rejected() -> None:
    """A zero request limit is a clear ValueError."""
    with pytest.raises(ValueError, match="request_limit"):
        MeasureSettings(request_limit=0).validate()


class FlushOnly:
    """A ShopControl that flushes Redis but keeps the shop process (counters are deltas)."""

    def __init__(self, shop: ShopProcess, redis_url: str) -> None:
        self.base_url, self.redis_url = shop.base_url, redis_url

    async def reset(self) -> None:
        redis.Redis.from_url(self.redis_url).flushall()


def test_phases_report_sane_numbers(shop: ShopProcess) -> None:
    """Cold misses cost origin queries and latency; a full warm-up removes both."""
    control = FlushOnly(shop, shop.redis_url)

    async def warm_up() -> None:  # the ideal warm-up: exactly the phase's own requests
        await measure_phase(shop.base_url, "prefill", SETTINGS, DAY)

    results = asyncio.run(run_phases(control, warm_up, SETTINGS, DAY))
    cold, warm, steady = results["cold"], results["warm"], results["steady"]
    for result in (cold, warm, steady):
        assert result.requests == 120 and result.errors == 0
        assert 0.0 <= result.hit_rate <= 1.0 and 0 < result.p50_ms <= result.p95_ms
    assert 0 < cold.origin_queries <= 120 and cold.hit_rate < 1.0
    assert cold.p95_ms >= 20.0  # a miss pays at least the injected 20 ms
    assert warm.origin_queries == 0 and warm.hit_rate == 1.0
    assert steady.origin_queries == 0 and steady.hit_rate == 1.0
    table = format_table(results)
    assert table.splitlines()[1].startswith("cold")
    assert set(results_json(results)) == {"cold", "warm", "steady"}
    assert set(results_json(results)["warm"]) == {"hit_rate", "p50_ms", "p95_ms",
                                                  "origin_queries"}
