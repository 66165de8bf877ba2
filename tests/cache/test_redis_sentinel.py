"""Sentinel discovery against a real redis-server running in sentinel mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from warmd.cache.base import CacheItem
from warmd.cache.redis_sentinel import discover_master, sentinel_backend
from warmd.errors import CacheUnavailable
from warmd.testing.servers import ServerProcess, free_port, start_redis_sentinel


@pytest.fixture(scope="module")
def sentinel(redis_server: ServerProcess) -> Iterator[ServerProcess]:
    """A sentinel monitoring the session's redis-server as master `warmdtest`."""
    process = start_redis_sentinel("warmdtest", redis_server.port)
    yield process
    process.stop()


async def test_discovers_master_and_warms_it(sentinel: ServerProcess, redis_server) -> None:
    """The sentinel names the master; a backend built from it writes there."""
    dead = f"127.0.0.1:{free_port()}"  # the first sentinel is down: the next one answers
    master = await discover_master([dead, sentinel.address], "warmdtest")
    assert master == redis_server.address
    backend = await sentinel_backend([sentinel.address], "warmdtest")
    assert (await backend.write_many([CacheItem("sentinel:k", b"v", 30)])).written == 1
    assert await backend.read_many(["sentinel:k"]) == {"sentinel:k": b"v"}
    await backend.close()


async def test_unknown_service_is_unavailable(sentinel: ServerProcess) -> None:
    """A service no sentinel monitors raises CacheUnavailable naming the service."""
    with pytest.raises(CacheUnavailable, match="nosuchservice"):
        await discover_master([sentinel.address], "nosuchservice")
