"""One suite over every CacheBackend: the same behaviour from Redis, Redis Cluster and
Memcached, each against a real server started by the fixtures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from warmd.cache.base import CacheBackend, CacheItem
from warmd.cache.memcache import MemcacheBackend
from warmd.cache.redis import RedisBackend
from warmd.cache.redis_cluster import RedisClusterBackend
from warmd.errors import CacheUnavailable
from warmd.testing.servers import free_port

BACKEND_KINDS = ["redis", "redis_cluster", "memcached", "memcached_pymemcache"]


@pytest.fixture(params=BACKEND_KINDS)
async def backend(request, redis_server, redis_cluster, memcached_servers
                  ) -> AsyncIterator[CacheBackend]:
    """A connected backend of each kind, closed after the test."""
    memcached = [s.address for s in memcached_servers]
    made: CacheBackend = {
        "redis": lambda: RedisBackend(redis_server.address),
        "redis_cluster": lambda: RedisClusterBackend(redis_cluster.addresses[:1]),
        "memcached": lambda: MemcacheBackend(memcached),
        "memcached_pymemcache": lambda: MemcacheBackend(memcached, write_path="pymemcache"),
    }[request.param]()
    yield made
    await made.close()


def _items(count: int, ttl_s: int = 300) -> list[CacheItem]:
    prefix = uuid.uuid4().hex[:8]
    return [CacheItem(f"contract:{prefix}:{n}", f"value-{n}".encode() * 3, ttl_s)
            for n in range(count)]


async def test_written_batch_reads_back(backend: CacheBackend) -> None:
    """Every key of a 5000-key batch is written once and reads back byte for byte."""
    items = _items(5000)
    outcome = await backend.write_many(items)
    assert (outcome.written, outcome.skipped, outcome.failures) == (5000, 0, ())
    assert outcome.bytes_written == sum(len(item.value) for item in items)
    values = await backend.read_many([item.key for item in items[::97]])
    assert values == {item.key: item.value for item in items[::97]}


async def test_plain_tuples_are_accepted(backend: CacheBackend) -> None:
    """Plain (key, value, ttl_s) tuples, which the runner builds, write like CacheItems."""
    plain = [(item.key, item.value, item.ttl_s) for item in _items(30)]
    outcome = await backend.write_many(plain)  # type: ignore[arg-type]
    assert outcome.written == 30 and outcome.bytes_written == sum(len(v) for _, v, _ in plain)
    assert (await backend.read_many([plain[3][0]]))[plain[3][0]] == plain[3][1]


async def test_only_if_absent_keeps_existing_values(backend: CacheBackend) -> None:
    """With only_if_absent, present keys are skipped and keep their value; absent ones are set."""
    items = _items(10)
    await backend.write_many(items[:5])
    changed = [CacheItem(key, b"new", ttl) for key, _, ttl in items]
    outcome = await backend.write_many(changed, only_if_absent=True)
    assert (outcome.written, outcome.skipped) == (5, 5)
    values = await backend.read_many([item.key for item in items])
    assert [values[item.key] for item in items] == [i.value for i in items[:5]] + [b"new"] * 5


async def test_stats_count_keys_and_own_reads(backend: CacheBackend) -> None:
    """stats() reports the nodes' key counts and the reads warmd itself made."""
    before = await backend.stats()
    items = _items(50)
    await backend.write_many(items)
    await backend.read_many([items[0].key, "contract:absent:" + uuid.uuid4().hex])
    after = await backend.stats()
    assert sum(n.keys for n in after.nodes) >= sum(n.keys for n in before.nodes) + 50
    assert after.own_reads.hits == before.own_reads.hits + 1
    assert after.own_reads.misses == before.own_reads.misses + 1
    assert after.hits >= before.hits + 1 and after.misses >= before.misses + 1
    assert all(n.memory_bytes > 0 for n in after.nodes)


async def test_ping_answers(backend: CacheBackend) -> None:
    """ping() returns quietly against a live backend."""
    await backend.ping()


@pytest.mark.parametrize("kind", BACKEND_KINDS)
async def test_dead_server_raises_cache_unavailable(kind: str) -> None:
    """A server that is not listening gives CacheUnavailable, not a library exception."""
    address = f"127.0.0.1:{free_port()}"
    made: CacheBackend = {
        "redis": lambda: RedisBackend(address, timeout_s=1),
        "redis_cluster": lambda: RedisClusterBackend([address], timeout_s=1),
        "memcached": lambda: MemcacheBackend([address], timeout_s=1),
        "memcached_pymemcache": lambda: MemcacheBackend([address], timeout_s=1,
                                                        write_path="pymemcache"),
    }[kind]()
    try:
        with pytest.raises(CacheUnavailable):
            await made.write_many(_items(3))
        with pytest.raises(CacheUnavailable):
            await made.stats()
    finally:
        await made.close()
