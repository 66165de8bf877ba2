"""The first-screen measurement against a real shop: loads, counters, phases."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from warmd.demo.measure import (
    MeasureSettings,
    first_screen_loads,
    format_table,
    measure_phase,
    results_json,
    run_phases,
    warm_budget,
    window_keys,
)
from warmd.demo.runner import ShopProcess

START_S = time.time()
SETTINGS = MeasureSettings(request_limit=120, seed=11)
LOADS = first_screen_loads(SETTINGS, START_S)


def test_loads_hold_exactly_the_request_limit() -> None:
    """The phase's loads are whole first screens cut to exactly request_limit calls."""
    loads = first_screen_loads(MeasureSettings(request_limit=100), START_S)
    assert sum(len(calls) for calls in loads) == 100
    assert all(calls[0].startswith("/api/deals?") for calls in loads)
    assert first_screen_loads(MeasureSettings(request_limit=100), START_S) == loads


def test_budget_is_a_fifth_of_the_window_distinct_keys() -> None:
    """Banner busters share one key; the budget is a fifth of the distinct keys."""
    keys = window_keys(LOADS)
    assert sum("/api/banner" in key for key in keys) == 1
    assert warm_budget(LOADS) == len(keys) // 5 > 0


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

    async def warm_up() -> list[str]:  # the ideal warm-up: exactly the phase's own requests
        await measure_phase(shop.base_url, "prefill", LOADS)
        return [call for calls in LOADS for call in calls]

    async def naive_warm_up() -> list[str]:  # half of it, plus keys no one asks for
        first_half = [call for calls in LOADS[:len(LOADS) // 2] for call in calls]
        unread = ["/api/product/599", "/api/product/598"]
        await measure_phase(shop.base_url, "prefill", [first_half, unread])
        return first_half + unread

    results = asyncio.run(run_phases(control, warm_up, SETTINGS, LOADS,
                                     naive_warm_up=naive_warm_up))
    cold, naive, warm, steady = (results[phase] for phase in ("cold", "naive", "warm",
                                                              "steady"))
    for result in (cold, naive, warm, steady):
        assert result.requests == 120 and result.errors == 0
        assert 0.0 <= result.hit_rate <= 1.0 and 0 < result.p50_ms <= result.p95_ms
    assert 0 < cold.origin_queries <= 120 and cold.hit_rate < 1.0
    assert cold.p95_ms >= 20.0  # a miss pays at least the injected 20 ms
    assert warm.origin_queries == 0 and warm.hit_rate == 1.0
    assert warm.waste == 0.0 and warm.warm_set == len(window_keys(LOADS))
    assert cold.origin_queries > naive.origin_queries > 0 and naive.waste is not None
    assert naive.wasted == 2 and 0 < naive.waste < 1 and cold.waste is None
    assert steady.origin_queries == 0 and steady.hit_rate == 1.0
    table = format_table(results)
    assert [line.split()[0] for line in table.splitlines()[1:]] == [
        "cold", "naive", "warm", "steady"]
    assert set(results_json(results)) == {"cold", "naive", "warm", "steady"}
    assert set(results_json(results)["warm"]) == {"hit_rate", "p50_ms", "p95_ms",
                                                  "origin_queries", "warm_set", "waste"}
