"""The warm runner end to end against real redis-server, memcached and an aiohttp origin."""

from __future__ import annotations

import asyncio
import statistics
import uuid

import pytest

from warmd.cache.http import HttpClient
from warmd.cache.memcache import MemcacheBackend
from warmd.cache.redis import RedisBackend
from warmd.cache.resp import RespConnection, encode_command
from warmd.hooks.base import WarmRequest
from warmd.hooks.loaders import FetchLoader, ReplayLoader
from warmd.hooks.registry import HookRegistry
from warmd.hooks.task import LimitConfig, TaskOutcome, WarmLimits, WarmTask
from warmd.runtime.execute.warmer import WarmRunner, jittered_ttls
from warmd.testing.origin import OriginState, TestOrigin
from warmd.testing.servers import start_redis


def _value_requests(count: int, size: int = 100) -> tuple[WarmRequest, ...]:
    prefix = uuid.uuid4().hex[:10]
    return tuple(WarmRequest(f"/item/{n}", key=f"{prefix}:{n}", value=bytes([65 + n % 26]) * size)
                 for n in range(count))


async def test_direct_fill_writes_verifies_and_checkpoints(redis_server) -> None:
    """A direct fill writes every key, verifies a sample and reports each batch's checkpoint."""
    backend = RedisBackend(redis_server.address)
    runner = WarmRunner({"main": backend}, HookRegistry())
    checkpoints: list[int] = []

    async def progress(done: int) -> None:
        checkpoints.append(done)

    requests = _value_requests(2500)
    task = WarmTask("fill", requests, "main", "value", WarmLimits(batch_keys=1000))
    result = await runner.run(task, progress)
    assert result.outcome is TaskOutcome.SUCCEEDED, result.reason
    assert (result.keys_ok, result.keys_failed, result.bytes_written) == (2500, 0, 250_000)
    assert checkpoints == [1000, 2000, 2500] and result.checkpoint == 2500
    assert result.verified_keys == 20 and result.verify_mismatches == 0
    await backend.close()


async def test_resume_from_checkpoint_skips_done_requests(redis_server) -> None:
    """A task resumed at checkpoint 300 writes only the requests after it."""
    backend = RedisBackend(redis_server.address)
    runner = WarmRunner({"main": backend}, HookRegistry())
    requests = _value_requests(400)
    result = await runner.run(WarmTask("resume", requests, "main", "value", checkpoint=300))
    assert result.keys_ok == 100 and result.checkpoint == 400
    values = await backend.read_many([requests[0].key, requests[399].key])
    assert values[requests[0].key] is None and values[requests[399].key] is not None
    await backend.close()


async def test_ttl_jitter_spreads_expiries(redis_server) -> None:
    """TTLs read back from redis spread over [0.8 x ttl, ttl] instead of one instant."""
    backend = RedisBackend(redis_server.address)
    runner = WarmRunner({"main": backend}, HookRegistry())
    requests = _value_requests(1000, size=10)
    limits = WarmLimits(ttl_s=1000, ttl_jitter_ratio=0.2)
    await runner.run(WarmTask("jitter", requests, "main", "value", limits))
    connection = RespConnection("127.0.0.1", redis_server.port)
    payload = b"".join(encode_command("TTL", r.key) for r in requests)
    ttls = await connection.exchange(payload, len(requests))
    await connection.close()
    assert min(ttls) >= 795 and max(ttls) <= 1000
    assert len(set(ttls)) > 100 and statistics.pstdev(ttls) > 40  # uniform: ~58
    await backend.close()


def test_jittered_ttls_are_seeded_and_bounded() -> None:
    """The same seed gives the same TTLs; no jitter gives the base TTL exactly."""
    import random

    first = jittered_ttls(600, 0.5, 50, random.Random(7))
    assert first == jittered_ttls(600, 0.5, 50, random.Random(7))
    assert all(300 <= ttl <= 600 for ttl in first)
    assert jittered_ttls(600, 0.0, 3, random.Random(1)) == [600, 600, 600]


def test_large_batches_draw_ttls_from_an_even_table() -> None:
    """A large batch (table path) is seeded, stays in [low, base] and hits every TTL of the
    range about equally often, both ends included."""
    import collections
    import random

    ttls = jittered_ttls(3600, 0.1, 361 * 200, random.Random(3))
    assert ttls == jittered_ttls(3600, 0.1, 361 * 200, random.Random(3))
    counts = collections.Counter(ttls)
    assert set(counts) == set(range(3240, 3601))
    assert min(counts.values()) > 120 and max(counts.values()) < 290  # mean 200
    wide = jittered_ttls(10**6, 0.5, 5000, random.Random(4))  # range too wide for the table
    assert all(500_000 <= ttl <= 10**6 for ttl in wide) and len(set(wide)) > 4900


class _CountingBackend(RedisBackend):
    """A real RedisBackend that records how many writes overlap."""

    in_flight = 0
    in_flight_max = 0

    async def write_many(self, items, *, only_if_absent=False):
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            return await super().write_many(items, only_if_absent=only_if_absent)
        finally:
            self.in_flight -= 1


async def test_next_batch_is_written_while_the_last_settles(redis_server) -> None:
    """Two batches are in flight at once, yet checkpoints still rise batch by batch."""
    backend = _CountingBackend(redis_server.address)
    checkpoints: list[int] = []

    async def progress(done: int) -> None:
        checkpoints.append(done)

    task = WarmTask("overlap", _value_requests(6000), "main", "value",
                    WarmLimits(batch_keys=1000))
    result = await WarmRunner({"main": backend}, HookRegistry()).run(task, progress)
    assert result.outcome is TaskOutcome.SUCCEEDED and result.keys_ok == 6000
    assert checkpoints == [1000, 2000, 3000, 4000, 5000, 6000]
    assert backend.in_flight_max == 2
    await backend.close()


async def test_cache_lost_mid_task_fails_with_an_honest_checkpoint() -> None:
    """When the server dies mid-task, the task fails and its checkpoint counts only batches
    whose writes were confirmed, in order (never one past a failed write)."""
    server = start_redis()
    backend = RedisBackend(server.address, timeout_s=1.0)
    checkpoints: list[int] = []

    async def progress(done: int) -> None:
        checkpoints.append(done)
        if done == 2000:
            server.stop()

    try:
        limits = WarmLimits(batch_keys=1000, retry_attempts=2, retry_backoff_s=0.001)
        result = await WarmRunner({"main": backend}, HookRegistry()).run(
            WarmTask("lost", _value_requests(8000), "main", "value", limits), progress)
        assert result.outcome is TaskOutcome.FAILED and "unavailable" in result.reason
        assert checkpoints[:2] == [1000, 2000] and result.checkpoint == checkpoints[-1]
        assert result.keys_ok == result.checkpoint < 8000
    finally:
        await backend.close()
        server.stop()


async def test_stops_before_evicting() -> None:
    """Near maxmemory the warm slows then stops with a reason, and the server evicted nothing."""
    server = start_redis(maxmemory_bytes=4 * 1024 * 1024)
    backend = RedisBackend(server.address)
    try:
        runner = WarmRunner({"small": backend}, HookRegistry())
        limits = WarmLimits(batch_keys=500, slow_pause_s=0.01, memory_fill_slow=0.7)
        task = WarmTask("big", _value_requests(40_000, size=200), "small", "value", limits)
        result = await runner.run(task)
        stats = await backend.stats()
        assert result.outcome is TaskOutcome.STOPPED, result
        assert "before evicting" in result.reason, result
        assert 0 < result.checkpoint < 40_000 and result.keys_ok == result.checkpoint
        assert stats.evictions == 0
    finally:
        await backend.close()
        server.stop()


async def test_fetch_loader_writes_origin_bodies(memcached_servers) -> None:
    """The fetch loader GETs each URL from the origin and writes the body to memcached."""
    async with TestOrigin(OriginState(body_bytes=64)) as origin:
        client = HttpClient(base_url=origin.url)
        registry = HookRegistry()
        registry.add(FetchLoader(client, "/api{path}"))
        backend = MemcacheBackend([s.address for s in memcached_servers])
        prefix = uuid.uuid4().hex[:8]
        requests = tuple(WarmRequest(f"/item/{n}", key=f"{prefix}:{n}") for n in range(200))
        result = await WarmRunner({"mc": backend}, registry).run(
            WarmTask("fetch", requests, "mc", "fetch"))
        assert result.outcome is TaskOutcome.SUCCEEDED and result.keys_ok == 200
        assert origin.state.requests == 200
        value = (await backend.read_many([f"{prefix}:7"]))[f"{prefix}:7"]
        assert value is not None and value.startswith(b"/api/item/7") and len(value) == 64
        assert result.origin_p50_ms is not None and result.origin_p99_ms >= result.origin_p50_ms
        await client.close()
        await backend.close()


@pytest.mark.parametrize("pipeline", [1, 4])
async def test_replay_retries_503_and_respects_the_cap(pipeline: int) -> None:
    """Replay retries injected 503s until every request succeeds, never above the cap
    (a pipelined connection is one unit of it: aiohttp answers its requests in turn)."""
    state = OriginState(fail_ratio=0.2, service_time_s=0.002, capacity=64, seed=5)
    async with TestOrigin(state) as origin:
        client = HttpClient(base_url=origin.url, pipeline=pipeline)
        registry = HookRegistry()
        registry.add(ReplayLoader(client))
        requests = tuple(WarmRequest(f"/page/{n}", params={"q": str(n)}) for n in range(300))
        limits = WarmLimits(origin=LimitConfig(concurrency_max=6, concurrency_initial=6),
                            retry_attempts=8, retry_backoff_s=0.001)
        result = await WarmRunner({}, registry).run(WarmTask("replay", requests, "", "replay",
                                                             limits))
        assert result.outcome is TaskOutcome.SUCCEEDED
        assert (result.keys_ok, result.keys_failed) == (300, 0), result.failures
        assert state.failures > 30 and state.requests == 300 + state.failures
        assert state.in_flight_max <= 6 and result.origin_in_flight_max <= 6
        await client.close()


async def test_not_found_is_a_key_failure_not_retried() -> None:
    """A 404 fails its key once (not transient) while the task itself completes."""
    async with TestOrigin() as origin:
        client = HttpClient(base_url=origin.url)
        registry = HookRegistry()
        registry.add(FetchLoader(client, "/missing/{path}"))  # the origin answers 404
        backend_server = start_redis()
        backend = RedisBackend(backend_server.address)
        try:
            task = WarmTask("404", (WarmRequest("x", key="k"),), "r", "fetch")
            runner = WarmRunner({"r": backend}, registry)
            result = await runner.run(task)
            assert result.outcome is TaskOutcome.SUCCEEDED
            assert result.keys_failed == 1 and "404" in result.failures[0].reason
            assert origin.state.not_found == 1  # asked once: a 404 is not retried
        finally:
            await backend.close()
            backend_server.stop()
            await client.close()


@pytest.mark.parametrize("target", ["missing"])
async def test_unknown_target_fails_the_task(target: str) -> None:
    """A task naming a backend the runner does not have fails with a clear reason."""
    result = await WarmRunner({}, HookRegistry()).run(
        WarmTask("t", _value_requests(1), target, "value"))
    assert result.outcome is TaskOutcome.FAILED and "unknown target" in result.reason


@pytest.mark.parametrize("limits", [
    WarmLimits(ttl_s=-1), WarmLimits(ttl_jitter_ratio=1.0), WarmLimits(batch_keys=0),
    WarmLimits(memory_fill_slow=0.99, memory_fill_stop=0.9), WarmLimits(verify_sample_keys=-1),
    WarmLimits(origin=LimitConfig(concurrency_max=0)),
])
async def test_bad_limits_fail_the_task_with_a_reason(limits: WarmLimits) -> None:
    """Impossible limits fail the task with a config message instead of crashing the runner."""
    result = await WarmRunner({}, HookRegistry()).run(
        WarmTask("bad-limits", _value_requests(1), "", "value", limits))
    assert result.outcome is TaskOutcome.FAILED
    assert "must" in result.reason or "need" in result.reason


async def test_concurrent_tasks_share_the_origin_cap() -> None:
    """Two replay tasks at once share one limiter: together they stay under the cap."""
    state = OriginState(service_time_s=0.003, capacity=64)
    async with TestOrigin(state) as origin:
        client = HttpClient(base_url=origin.url)
        registry = HookRegistry()
        registry.add(ReplayLoader(client))
        runner = WarmRunner({}, registry)
        limits = WarmLimits(origin=LimitConfig(concurrency_max=5, concurrency_initial=5))
        tasks = [WarmTask(f"t{n}", tuple(WarmRequest(f"/{n}/{i}") for i in range(150)), "",
                          "replay", limits) for n in range(2)]
        results = await asyncio.gather(*(runner.run(task) for task in tasks))
        assert [r.keys_ok for r in results] == [150, 150]
        assert state.in_flight_max <= 5
        await client.close()


async def test_replay_failures_name_the_request_and_are_not_retried() -> None:
    """Through the batch path a 404 fails its request once, named by its key (the mapper's
    path and query string), while the other requests of the batch succeed."""
    async with TestOrigin() as origin:
        client = HttpClient(base_url=origin.url, pipeline=4)
        registry = HookRegistry()
        registry.add(ReplayLoader(client))
        requests = (WarmRequest("/missing/a", params={"q": "1"}),
                    *(WarmRequest(f"/ok/{n}") for n in range(9)))
        result = await WarmRunner({}, registry).run(WarmTask("404s", requests, "", "replay"))
        assert (result.keys_ok, result.keys_failed) == (9, 1)
        assert result.failures[0].key == "/missing/a?q=1" and "404" in result.failures[0].reason
        assert origin.state.not_found == 1
        await client.close()
