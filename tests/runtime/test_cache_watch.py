"""Cache flush/restart detection and hit-rate windows, against real redis-server and memcached."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
import structlog

from warmd.cache.base import BackendStats, CacheItem, NodeStats, OwnReads
from warmd.cache.memcache import MemcacheBackend
from warmd.cache.redis import RedisBackend
from warmd.cache.redis_cluster import RedisClusterBackend
from warmd.cache.resp import RespConnection
from warmd.clock import ManualClock
from warmd.errors import ConfigError
from warmd.runtime.leader.cache_watch import (
    CACHE_FLUSH,
    CACHE_RESTART,
    CacheEvent,
    CacheWatcher,
    WatchSettings,
    detect_events,
)
from warmd.testing.servers import (
    ServerProcess,
    free_port,
    start_memcached,
    start_redis,
    start_redis_cluster,
)

SETTINGS = WatchSettings()


def _node(name: str, *, hits: int = 0, misses: int = 0, keys: int = 0, run_id: str = "",
          evictions: int = 0, expired: int = 0, flushes: int | None = None) -> NodeStats:
    return NodeStats(name, hits, misses, keys, 0, 0, evictions, run_id, expired, flushes)


def _stats(*nodes: NodeStats, own: OwnReads | None = None) -> BackendStats:
    return BackendStats("b", nodes, own if own is not None else OwnReads())


def _kinds(events: list[CacheEvent]) -> list[tuple[str, str]]:
    return [(event.kind, event.node) for event in events]


# ---- pure detection -------------------------------------------------------------------


def test_flush_fires_at_the_fraction_and_not_above_it() -> None:
    """Keys falling to exactly 10% of 100 is a flush; falling to 11 is not."""
    before = _stats(_node("n1", keys=100, run_id="a"))
    flushed = detect_events("c", before, _stats(_node("n1", keys=10, run_id="a")), SETTINGS)
    assert _kinds(flushed) == [(CACHE_FLUSH, "n1")]
    assert flushed[0].detail == "keys 100 -> 10" and flushed[0].cache == "c"
    assert detect_events("c", before, _stats(_node("n1", keys=11, run_id="a")), SETTINGS) == []


def test_small_cache_emptying_is_not_a_flush() -> None:
    """A node below min_keys that empties gives no event; one at min_keys does."""
    for keys, expected in ((9, []), (10, [(CACHE_FLUSH, "n1")])):
        before = _stats(_node("n1", keys=keys))
        assert _kinds(detect_events("c", before, _stats(_node("n1")), SETTINGS)) == expected
    strict = WatchSettings(min_keys=50, flush_fraction=0.5)
    before = _stats(_node("n1", keys=40))
    assert detect_events("c", before, _stats(_node("n1")), strict) == []


def test_normal_churn_gives_no_event() -> None:
    """Expiring a third of the keys while traffic counters grow is not an event."""
    before = _stats(_node("n1", hits=500, misses=100, keys=1000, run_id="a"))
    after = _stats(_node("n1", hits=900, misses=180, keys=650, run_id="a"))
    assert detect_events("c", before, after, SETTINGS) == []


def test_keys_gone_through_expiry_or_eviction_are_not_a_flush() -> None:
    """Keys that mostly expired (TTL) or were evicted give no event; an unexplained
    collapse of the same size does."""
    before = _stats(_node("n1", keys=100, expired=5, evictions=1))
    expired = _stats(_node("n1", keys=0, expired=70, evictions=1))
    evicted = _stats(_node("n1", keys=0, expired=5, evictions=60))
    unexplained = _stats(_node("n1", keys=0, expired=30, evictions=1))
    assert detect_events("c", before, expired, SETTINGS) == []
    assert detect_events("c", before, evicted, SETTINGS) == []
    assert _kinds(detect_events("c", before, unexplained, SETTINGS)) == [(CACHE_FLUSH, "n1")]


def test_a_flush_counter_decides_when_the_server_keeps_one() -> None:
    """With a flush counter (memcached), a rise is a flush before the keys fall, and a
    collapse of keys without a rise is not a flush."""
    before = _stats(_node("n1", keys=40, flushes=2))
    counted = detect_events("c", before, _stats(_node("n1", keys=40, flushes=3)), SETTINGS)
    assert _kinds(counted) == [(CACHE_FLUSH, "n1")]
    assert counted[0].detail == "flushes 2 -> 3, keys 40 -> 40"
    assert detect_events("c", before, _stats(_node("n1", keys=0, flushes=2)), SETTINGS) == []
    small = _stats(_node("n1", keys=3, flushes=2))
    assert detect_events("c", small, _stats(_node("n1", flushes=3)), SETTINGS) == []


def test_counter_reset_without_run_id_is_a_restart_that_hides_the_flush() -> None:
    """Counters going down (no run_id known) is one restart event, not also a flush."""
    before = _stats(_node("n1", hits=50, misses=20, keys=100))
    after = _stats(_node("n1", hits=1, misses=0, keys=0))
    events = detect_events("c", before, after, SETTINGS, at_s=7.5)
    assert _kinds(events) == [(CACHE_RESTART, "n1")]
    assert events[0].detail == "hits+misses 70 -> 1" and events[0].at_s == 7.5


def test_run_id_decides_restart_over_counters() -> None:
    """A new run_id is a restart even with higher counters; the same run_id with lower
    counters (CONFIG RESETSTAT) is not."""
    before = _stats(_node("n1", hits=5, misses=5, keys=3, run_id="a"))
    restarted = detect_events("c", before, _stats(_node("n1", hits=9, misses=9, run_id="b")),
                              SETTINGS)
    assert _kinds(restarted) == [(CACHE_RESTART, "n1")]
    assert restarted[0].detail == "run_id a -> b"
    reset = _stats(_node("n1", hits=0, misses=0, keys=3, run_id="a"))
    assert detect_events("c", before, reset, SETTINGS) == []


def test_one_event_per_node_and_no_event_for_vanished_or_new_nodes() -> None:
    """Two flushed nodes give two events; a missing node, a new node or a duplicate
    node entry gives none."""
    before = _stats(_node("n1", keys=50), _node("n2", keys=50), _node("gone", keys=50))
    after = _stats(_node("n1"), _node("n2"), _node("n2"), _node("new"))
    assert _kinds(detect_events("c", before, after, SETTINGS)) == [
        (CACHE_FLUSH, "n1"), (CACHE_FLUSH, "n2")]


@pytest.mark.parametrize("arguments", [
    {"interval_s": 0}, {"interval_s": float("nan")}, {"stats_timeout_s": -1},
    {"flush_fraction": 1.0}, {"flush_fraction": -0.1}, {"min_keys": 0},
    {"min_keys": 2.5}, {"history_samples": 1}, {"stats_attempts": 0},
    {"event_queue_size": 0},
])
def test_bad_settings_are_refused_with_a_clear_error(arguments: dict[str, float]) -> None:
    """Settings that would spin, never fire or always fire raise ConfigError naming the field."""
    with pytest.raises(ConfigError, match=next(iter(arguments))):
        WatchSettings(**arguments)  # type: ignore[arg-type]


# ---- real servers ---------------------------------------------------------------------


@pytest.fixture
def redis() -> Iterator[ServerProcess]:
    """A private redis-server, so flushing and restarting it disturbs no other test."""
    server = start_redis()
    yield server
    server.stop()


async def _service_gets(port: int, keys: list[str]) -> None:
    """GET each key from a separate client, as the service's own traffic would."""
    connection = RespConnection("127.0.0.1", port)
    for key in keys:
        await connection.call("GET", key)
    await connection.close()


async def _redis_command(port: int, *command: str) -> object:
    connection = RespConnection("127.0.0.1", port)
    try:
        return await connection.call(*command)
    finally:
        await connection.close()


async def test_flushall_on_redis_gives_one_flush_event(redis: ServerProcess) -> None:
    """FLUSHALL after 50 keys yields exactly one cache-flush, queued, and nothing after."""
    backend = RedisBackend(redis.address)
    watcher = CacheWatcher({"r": backend})
    try:
        await backend.write_many([CacheItem(f"k{n}", b"v", 0) for n in range(50)])
        assert await watcher.poll_once() == []
        await _redis_command(redis.port, "FLUSHALL")
        events = await watcher.poll_once()
        assert _kinds(events) == [(CACHE_FLUSH, redis.address)]
        assert events[0].detail == "keys 50 -> 0"
        assert watcher.events.get_nowait() == events[0]
        assert await watcher.poll_once() == [] and watcher.events.empty()
        latest = watcher.latest("r")
        assert latest is not None and latest.nodes[0].keys == 0
    finally:
        await backend.close()


async def test_restarting_redis_gives_a_restart_and_counts_the_outage(
        redis: ServerProcess) -> None:
    """Stop + start on the same port: the down poll counts an error (no event), the next
    one reports cache-restart (not a flush), and the outage is logged once."""
    backend = RedisBackend(redis.address, timeout_s=0.5)
    watcher = CacheWatcher({"r": backend})
    try:
        await backend.write_many([CacheItem(f"k{n}", b"v", 0) for n in range(30)])
        await watcher.poll_once()
        redis.stop()
        with structlog.testing.capture_logs() as logs:
            assert await watcher.poll_once() == []
            assert await watcher.poll_once() == []
        assert watcher.errors["r"] == 2 and watcher.is_down("r")
        assert [entry["event"] for entry in logs] == ["cache_watch_unreachable"]
        restarted = start_redis(port=redis.port)
        try:
            events = await watcher.poll_once()
        finally:
            restarted.stop()
        assert _kinds(events) == [(CACHE_RESTART, redis.address)]
        assert events[0].detail.startswith("run_id ") and not watcher.is_down("r")
    finally:
        await backend.close()


async def test_memcached_flush_all_gives_one_flush_event() -> None:
    """flush_all on memcached yields one cache-flush on the next poll (from cmd_flush) and
    none while memcached frees the flushed items lazily afterwards."""
    server = start_memcached()
    backend = MemcacheBackend([server.address])
    watcher = CacheWatcher({"mc": backend})
    try:
        await backend.write_many([CacheItem(f"m{n}", b"v", 0) for n in range(40)])
        assert await watcher.poll_once() == []
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            connection.sendall(b"flush_all\r\n")
            assert connection.recv(64) == b"OK\r\n"
        events = await watcher.poll_once()
        assert _kinds(events) == [(CACHE_FLUSH, server.address)]
        assert events[0].detail.startswith("flushes 0 -> 1, keys 40 -> ")
        for _ in range(50):  # memcached frees the flushed items lazily: still one event
            assert await watcher.poll_once() == []
            latest = watcher.latest("mc")
            if latest is not None and latest.nodes[0].keys == 0:
                break
            await asyncio.sleep(0.1)
        latest = watcher.latest("mc")
        assert latest is not None and latest.nodes[0].keys == 0
    finally:
        await backend.close()
        server.stop()


async def test_flushing_one_cluster_master_names_only_that_node() -> None:
    """FLUSHALL on one master of a real 3-master cluster is one event for that node alone."""
    cluster = start_redis_cluster(3)
    backend = RedisClusterBackend(cluster.addresses)
    watcher = CacheWatcher({"rc": backend})
    try:
        await backend.write_many([CacheItem(f"c{n}", b"v", 0) for n in range(300)])
        baseline = await watcher.poll_once()
        latest = watcher.latest("rc")
        assert baseline == [] and latest is not None
        assert all(node.keys >= SETTINGS.min_keys for node in latest.nodes)
        target = cluster.nodes[1]
        await _redis_command(target.port, "FLUSHALL")
        events = await watcher.poll_once()
        assert _kinds(events) == [(CACHE_FLUSH, target.address)]
    finally:
        await backend.close()
        cluster.stop()


async def test_keys_expiring_together_on_redis_are_not_a_flush(redis: ServerProcess) -> None:
    """Thirty keys warmed with the same 1 s TTL all expire, and no cache-flush is reported."""
    backend = RedisBackend(redis.address)
    watcher = CacheWatcher({"r": backend})
    try:
        await backend.write_many([CacheItem(f"ttl{n}", b"v", 1) for n in range(30)])
        assert await watcher.poll_once() == []
        for _ in range(60):  # active expiry removes them within about 1-2 s
            assert await watcher.poll_once() == []
            latest = watcher.latest("r")
            if latest is not None and latest.nodes[0].keys == 0:
                break
            await asyncio.sleep(0.05)
        latest = watcher.latest("r")
        assert latest is not None and latest.nodes[0].keys == 0
        assert latest.nodes[0].expired >= 30
    finally:
        await backend.close()


async def test_a_down_cache_counts_errors_and_never_stops_the_others(
        redis: ServerProcess) -> None:
    """A cache nobody listens on gives no event and counts each failed poll, while the
    live cache next to it is still watched and its flush still reported."""
    live = RedisBackend(redis.address)
    dead = RedisBackend(f"127.0.0.1:{free_port()}", timeout_s=0.3)
    watcher = CacheWatcher({"live": live, "dead": dead})
    try:
        await live.write_many([CacheItem(f"k{n}", b"v", 0) for n in range(20)])
        with structlog.testing.capture_logs() as logs:
            assert await watcher.poll_once() == []
            await _redis_command(redis.port, "FLUSHALL")
            events = await watcher.poll_once()
        assert [(event.cache, event.kind) for event in events] == [("live", CACHE_FLUSH)]
        assert watcher.errors == {"live": 0, "dead": 2}
        assert watcher.latest("dead") is None and watcher.is_down("dead")
        unreachable = [entry for entry in logs if entry["event"] == "cache_watch_unreachable"]
        assert [entry["cache"] for entry in unreachable] == ["dead"]
    finally:
        await live.close()
        await dead.close()


async def test_run_loop_polls_on_its_own_and_queues_events(redis: ServerProcess) -> None:
    """Left running, the watcher notices a FLUSHALL within a few intervals."""
    backend = RedisBackend(redis.address)
    watcher = CacheWatcher({"r": backend}, WatchSettings(interval_s=0.05))
    await backend.write_many([CacheItem(f"k{n}", b"v", 0) for n in range(20)])
    loop = asyncio.create_task(watcher.run())
    try:
        while watcher.latest("r") is None:
            await asyncio.sleep(0.01)
        await _redis_command(redis.port, "FLUSHALL")
        event = await asyncio.wait_for(watcher.events.get(), timeout=5)
        assert (event.kind, event.cache, event.node) == (CACHE_FLUSH, "r", redis.address)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await backend.close()


async def test_hits_between_sums_real_gets_per_window(redis: ServerProcess) -> None:
    """Windows count only the service's GETs between the samples inside them, subtract
    warmd's own reads, and count from zero across a server restart."""
    clock = ManualClock(100.0)
    backend = RedisBackend(redis.address, timeout_s=0.5)
    watcher = CacheWatcher({"r": backend}, clock=clock)
    try:
        await backend.write_many([CacheItem(f"k{n}", b"v", 0) for n in range(5)])
        await watcher.poll_once()                                   # t=100
        await _service_gets(redis.port, ["k0", "k1", "k2", "x", "y"])
        clock.advance(10)
        await watcher.poll_once()                                   # t=110
        await _service_gets(redis.port, ["k3", "k4", "k0", "k1", "z"])
        await backend.read_many(["k0", "k1", "missing"])            # warmd's own reads
        clock.advance(10)
        await watcher.poll_once()                                   # t=120
        assert watcher.hits_between("r", 100, 110) == (3, 2)
        assert watcher.hits_between("r", 105, 120) == (4, 1)
        assert watcher.hits_between("r", 0, 1000) == (7, 3)
        assert watcher.hits_between("r", 101, 119) is None  # a single sample inside
        assert watcher.hits_between("r", 120, 100) is None
        assert watcher.hits_between("unknown", 0, 1000) is None
        redis.stop()
        restarted = start_redis(port=redis.port)
        try:
            await _service_gets(redis.port, ["a", "b"])
            clock.advance(10)
            events = await watcher.poll_once()                      # t=130
        finally:
            restarted.stop()
        assert _kinds(events) == [(CACHE_RESTART, redis.address)]
        assert watcher.hits_between("r", 120, 130) == (0, 2)
        assert watcher.hits_between("r", 100, 130) == (7, 5)
        assert watcher.hits_before(events[0], 30) == (7, 3)
        assert watcher.hits_before(events[0], 10) is None  # only the t=120 sample in it
    finally:
        await backend.close()


async def test_a_full_event_queue_drops_the_oldest(redis: ServerProcess) -> None:
    """With nobody reading, the queue keeps the newest events and counts the dropped ones."""
    backend = RedisBackend(redis.address)
    watcher = CacheWatcher({"r": backend}, WatchSettings(event_queue_size=1))
    try:
        for key_count in (20, 30):
            await backend.write_many([CacheItem(f"q{n}", b"v", 0) for n in range(key_count)])
            await watcher.poll_once()
            await _redis_command(redis.port, "FLUSHALL")
            assert len(await watcher.poll_once()) == 1
        assert watcher.events.qsize() == 1 and watcher.dropped_events == 1
        assert watcher.events.get_nowait().detail == "keys 30 -> 0"
    finally:
        await backend.close()


async def test_history_is_bounded(redis: ServerProcess) -> None:
    """Only the last history_samples snapshots are kept, so old windows become None."""
    clock = ManualClock()
    backend = RedisBackend(redis.address)
    watcher = CacheWatcher({"r": backend}, WatchSettings(history_samples=3), clock=clock)
    try:
        for _ in range(5):
            await watcher.poll_once()
            clock.advance(1)
        assert watcher.hits_between("r", 0, 1) is None
        assert watcher.hits_between("r", 2, 4) == (0, 0)
    finally:
        await backend.close()
