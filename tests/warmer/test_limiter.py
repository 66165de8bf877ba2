"""The adaptive origin limiter: pure AIMD decisions, then against a real aiohttp origin
that counts its own concurrency and has latency and 503s injected."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from warmd.cache.http import HttpClient
from warmd.errors import CacheError, ConfigError
from warmd.hooks.task import LimitConfig
from warmd.runtime.execute.limiter import AimdLimit, LimitSample, OriginLimiter
from warmd.testing.origin import OriginState, TestOrigin, start_origin
from warmd.testing.servers import ServerProcess


def test_failures_back_off_and_success_grows() -> None:
    """Errors cut the limit multiplicatively; good samples at the limit grow it by ~1 per round."""
    limit = AimdLimit(LimitConfig(concurrency_max=50, concurrency_initial=20))
    for _ in range(20):
        limit.on_sample(LimitSample(0.01, failed=True, in_flight=20))
    assert limit.current() == 14  # one cut per limit-many samples: 20 * 0.7
    for _ in range(400):
        limit.on_sample(LimitSample(0.01, failed=False, in_flight=limit.current()))
    assert 30 <= limit.current() <= 50


def test_a_missed_latency_objective_backs_off() -> None:
    """`slo p99 15ms`: an origin at 18 ms (within tolerance of its own 10 ms minimum, so no
    congestion without the objective) backs off; one slow sample in 250 does not."""
    def run(objective_s: float, slow_every: int) -> AimdLimit:
        limit = AimdLimit(LimitConfig(concurrency_initial=16, latency_objective_s=objective_s,
                                      objective_percentile=99.0))
        for number in range(300):
            latency = 0.018 if number % slow_every == 0 else 0.010
            limit.on_sample(LimitSample(latency, failed=False, in_flight=limit.current()))
        return limit

    assert run(0.0, 1).backoff_count == 0
    assert run(0.015, 1).backoff_count >= 3
    assert run(0.015, 250).backoff_count == 0


def test_slow_samples_count_as_congestion() -> None:
    """A latency above tolerance x the healthy minimum backs off like an error."""
    limit = AimdLimit(LimitConfig(concurrency_initial=16, latency_tolerance=2.0))
    for _ in range(50):
        limit.on_sample(LimitSample(0.010, failed=False, in_flight=16))
    grown = limit.current()
    for _ in range(40):
        limit.on_sample(LimitSample(0.030, failed=False, in_flight=16))
    assert limit.current() < grown and limit.backoff_count >= 1


def test_limit_stays_within_hard_bounds() -> None:
    """No sequence of samples moves the limit outside [concurrency_min, concurrency_max]."""
    limit = AimdLimit(LimitConfig(concurrency_min=2, concurrency_max=5, concurrency_initial=4))
    for _ in range(1000):
        limit.on_sample(LimitSample(0.001, failed=False, in_flight=5))
    assert limit.current() == 5
    for _ in range(1000):
        limit.on_sample(LimitSample(1.0, failed=True, in_flight=5))
    assert limit.current() == 2


def test_idle_origin_does_not_inflate_the_limit() -> None:
    """Good samples far below the limit (the warm is not limit-bound) do not grow it."""
    limit = AimdLimit(LimitConfig(concurrency_initial=10))
    for _ in range(500):
        limit.on_sample(LimitSample(0.01, failed=False, in_flight=1))
    assert limit.current() == 10


@pytest.mark.parametrize("config", [
    LimitConfig(concurrency_min=0), LimitConfig(concurrency_min=5, concurrency_max=4),
    LimitConfig(backoff_ratio=1.0), LimitConfig(latency_tolerance=1.0),
    LimitConfig(rate_per_s_max=-1),
])
def test_bad_config_is_rejected(config: LimitConfig) -> None:
    """Impossible limiter settings are a ConfigError, not a silent misbehaviour."""
    with pytest.raises(ConfigError):
        config.validate()


async def _drive(limiter: OriginLimiter, client: HttpClient, seconds: float,
                 workers: int = 48) -> list[int]:
    """Hammer the origin through the limiter for `seconds`; return the limit every 50 ms."""
    deadline = time.monotonic() + seconds
    limits: list[int] = []

    async def worker(number: int) -> None:
        while time.monotonic() < deadline:
            async with limiter.slot() as report:
                try:
                    await client.get(f"/item/{number}")
                except CacheError:
                    report.failed = True

    async def watch() -> None:
        while time.monotonic() < deadline:
            limits.append(limiter.statistics().limit)
            await asyncio.sleep(0.05)

    await asyncio.gather(watch(), *(worker(n) for n in range(workers)))
    return limits


def _percentile(latencies: list[float], fraction: float) -> float:
    ordered = sorted(latencies)
    return ordered[int(fraction * (len(ordered) - 1))]


def _p99(latencies: list[float]) -> float:
    return _percentile(latencies, 0.99)


async def test_limiter_backs_off_on_slowdown_and_errors_then_recovers() -> None:
    """Origin concurrency stays under the cap; the limit falls when the origin slows or
    fails and climbs again once it is healthy."""
    state = OriginState(capacity=24, service_time_s=0.01)
    async with TestOrigin(state) as origin:
        client = HttpClient(base_url=origin.url)
        limiter = OriginLimiter(LimitConfig(concurrency_max=32, concurrency_initial=8))
        healthy = await _drive(limiter, client, 1.5)
        healthy_p99 = _p99(state.latencies_s)
        assert state.in_flight_max <= 32 and max(healthy) >= 16

        state.capacity = 3  # slowdown: requests queue behind three workers
        state.reset_counters()
        slowed = await _drive(limiter, client, 2.0)
        settled = state.latencies_s[len(state.latencies_s) // 2:]
        assert statistics.median(slowed[-10:]) <= 8 and state.in_flight_max <= 32
        # Issue #5's target is p99 <= 2x healthy p99 (bench/warm_throughput.py measures it);
        # here p95 of ~300 settled samples, as one scheduler stall of a loaded CI machine
        # can hold the three worst requests.
        assert _percentile(settled, 0.95) <= 2.0 * max(healthy_p99, 0.015)

        state.capacity, state.fail_ratio = 24, 0.33  # errors: a third of requests get 503
        failing = await _drive(limiter, client, 1.0)
        assert statistics.median(failing[-5:]) <= 4

        state.fail_ratio = 0.0
        state.reset_counters()
        recovered = await _drive(limiter, client, 2.0)
        assert max(recovered[len(recovered) // 2:]) >= 16 and state.in_flight_max <= 32
        await client.close()


async def test_rate_cap_spaces_requests() -> None:
    """With rate_per_s_max=200, 60 requests take at least ~0.3 s however wide the limit."""
    async with TestOrigin() as origin:
        client = HttpClient(base_url=origin.url)
        limiter = OriginLimiter(LimitConfig(concurrency_max=32, concurrency_initial=32,
                                            rate_per_s_max=200))

        async def one(number: int) -> None:
            async with limiter.slot():
                await client.get(f"/r/{number}")

        started = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(60)))
        assert time.monotonic() - started >= 0.29
        await client.close()


async def _hog_loop(until: float, stall_s: float = 0.015, every_s: float = 0.02) -> None:
    """Stall our own event loop (a busy client, or one a loaded host deschedules)."""
    while time.monotonic() < until:
        await asyncio.sleep(every_s)
        time.sleep(stall_s)  # blocking on purpose: the whole loop waits


async def _drive_while_hogged(limiter: OriginLimiter, url: str, seconds: float) -> list[int]:
    client = HttpClient(base_url=url)
    try:
        limits, _ = await asyncio.gather(_drive(limiter, client, seconds, workers=24),
                                         _hog_loop(time.monotonic() + seconds))
    finally:
        await client.close()
    return limits


async def test_our_own_loop_lag_does_not_back_off_a_fast_origin() -> None:
    """An origin in its own process answering at once, our loop stalled 15 ms every 20 ms:
    with the loop's lag taken out the limit stays near the cap; judged on the raw latency
    (the limiter before LoopLag) the same run backs off several times as often. (Not none:
    on a loaded host the origin process itself is descheduled now and then, which is the
    origin being slow as far as any client can tell.)"""
    origin = start_origin()
    try:
        config = LimitConfig(concurrency_max=16, concurrency_initial=16)
        judged = OriginLimiter(config)
        judged_limits = await _drive_while_hogged(judged, origin_url(origin), 1.5)
        raw = OriginLimiter(config)
        raw.lag.recent_s = lambda: 0.0  # type: ignore[method-assign]
        raw_limits = await _drive_while_hogged(raw, origin_url(origin), 1.5)
    finally:
        origin.stop()
    assert statistics.median(judged_limits) >= 12, judged_limits
    assert raw.decision.backoff_count >= max(3, 3 * judged.decision.backoff_count), \
        (raw.decision.backoff_count, judged.decision.backoff_count, raw_limits)


async def test_a_slow_origin_process_still_backs_off() -> None:
    """An origin process with 2 workers of 20 ms each: requests queue there, so the limit
    falls from 16 although our loop's lag is taken out."""
    origin = start_origin(service_time_s=0.02, capacity=2)
    try:
        limiter = OriginLimiter(LimitConfig(concurrency_max=16, concurrency_initial=16))
        client = HttpClient(base_url=origin_url(origin))
        limits = await _drive(limiter, client, 2.0, workers=24)
        await client.close()
    finally:
        origin.stop()
    assert limiter.decision.backoff_count >= 3 and statistics.median(limits[-10:]) <= 6, limits


def origin_url(origin: ServerProcess) -> str:
    return f"http://{origin.address}"
