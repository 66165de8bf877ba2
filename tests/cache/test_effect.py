"""Effect measurement from server counters: hit-rate series and a task's window after it."""

from __future__ import annotations

import asyncio

from warmd.cache.base import BackendStats, CacheItem, NodeStats, OwnReads
from warmd.cache.effect import StatsSampler, measure_task_effect, points_between
from warmd.cache.memcache import MemcacheBackend
from warmd.cache.redis import RedisBackend
from warmd.cache.resp import RespConnection, encode_command
from warmd.testing.servers import start_redis


def _stats(hits: int, misses: int, own: OwnReads) -> BackendStats:
    return BackendStats("b", (NodeStats("n1", hits, misses, 0, 0, 0, 0),), own)


def test_points_subtract_own_reads_and_survive_restarts() -> None:
    """The '*' total excludes warmd's reads; a counter reset restarts from zero."""
    points = points_between(_stats(10, 5, OwnReads(1, 1)), _stats(30, 9, OwnReads(4, 2)), 1.0)
    assert [(p.node, p.hits, p.misses) for p in points] == [("n1", 20, 4), ("*", 17, 3)]
    restarted = points_between(_stats(100, 50, OwnReads()), _stats(7, 3, OwnReads()), 2.0)
    assert (restarted[0].hits, restarted[0].misses) == (7, 3)
    assert restarted[-1].hit_rate == 0.7


async def test_sampler_series_follows_real_traffic(memcached_servers) -> None:
    """Service GETs between two samples show up as that interval's hits and misses."""
    backend = MemcacheBackend([s.address for s in memcached_servers])
    sampler = StatsSampler(backend, interval_s=0.05)
    await backend.write_many([CacheItem(f"effect:{n}", b"v", 60) for n in range(10)])
    assert await sampler.sample_once() == []  # the first sample is the baseline
    service = MemcacheBackend([s.address for s in memcached_servers])  # another client
    await service.read_many([f"effect:{n}" for n in range(10)] + ["effect:absent"])
    total = (await sampler.sample_once())[-1]
    assert (total.node, total.hits, total.misses) == ("*", 10, 1)
    assert len({p.node for p in sampler.series}) == 3  # two servers and the total
    await service.close()
    await backend.close()


async def test_task_effect_counts_window_traffic_and_touched_keys() -> None:
    """Reads in the window count as hits; the idle-time probe finds exactly the keys read."""
    server = start_redis()
    backend = RedisBackend(server.address)
    try:
        keys = [f"task-key:{n}" for n in range(20)]
        await backend.write_many([CacheItem(k, b"v", 600) for k in keys])

        async def service_traffic() -> None:
            await asyncio.sleep(2.2)  # reads in the window's first ~2 s are below resolution
            connection = RespConnection("127.0.0.1", server.port)
            payload = b"".join(encode_command("GET", k) for k in [*keys[:5], "absent"])
            await connection.exchange(payload, 6)
            await connection.close()

        effect, _ = await asyncio.gather(
            measure_task_effect("t1", backend, keys, window_s=3.5), service_traffic())
        assert (effect.hits, effect.misses, effect.hit_rate) == (5, 1, 5 / 6)
        assert (effect.sampled_keys, effect.keys_read_in_window, effect.keys_gone) == (20, 5, 0)
        after = await backend.stats()
        assert after.own_reads.hits == 20  # the probe is accounted as warmd's own reads
    finally:
        await backend.close()
        server.stop()


async def test_sampler_loop_counts_errors_and_keeps_going(memcached_servers) -> None:
    """The sampling loop fills the series and survives an unreachable backend."""
    from warmd.testing.servers import free_port

    live = StatsSampler(MemcacheBackend([memcached_servers[0].address]), interval_s=0.02)
    dead = StatsSampler(RedisBackend(f"127.0.0.1:{free_port()}", timeout_s=0.2),
                        interval_s=0.02)
    loops = [asyncio.create_task(live.run()), asyncio.create_task(dead.run())]
    await asyncio.sleep(0.5)
    for loop in loops:
        loop.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    assert len(live.series) >= 10 and live.errors == 0
    assert dead.errors >= 2 and len(dead.series) == 0
    await live.backend.close()
    await dead.backend.close()


async def test_effect_recorder_measures_after_a_task(memcached_servers) -> None:
    """Registered as a listener, the recorder measures the window after a task finished,
    counting the service's reads there and keeping the result by task id."""
    from warmd.cache.effect import EffectRecorder
    from warmd.hooks.base import WarmRequest
    from warmd.hooks.registry import HookRegistry
    from warmd.hooks.task import WarmTask
    from warmd.runtime.execute.warmer import WarmRunner

    backend = MemcacheBackend([s.address for s in memcached_servers])
    recorder = EffectRecorder({"mc": backend}, window_s=1.0, sample_keys=5)
    registry = HookRegistry()
    registry.add(recorder)
    requests = tuple(WarmRequest(f"/r/{n}", key=f"recorded:{n}", value=b"v") for n in range(8))
    result = await WarmRunner({"mc": backend}, registry).run(
        WarmTask("recorded", requests, "mc", "value"))
    assert result.keys_ok == 8
    service = MemcacheBackend([s.address for s in memcached_servers])
    await asyncio.sleep(0.2)
    await service.read_many(["recorded:1", "recorded:2", "never-warmed"])
    await recorder.wait_idle()
    effect = recorder.effects["recorded"]
    assert (effect.hits, effect.misses) == (2, 1) and effect.window_s == 1.0
    await service.close()
    await backend.close()
