"""Target URLs become the right backend; malformed ones are clear config errors."""

from __future__ import annotations

import pytest

from warmd.cache.factory import backend_from_url, split_target
from warmd.cache.memcache import MemcacheBackend
from warmd.cache.redis import RedisBackend
from warmd.cache.redis_cluster import RedisClusterBackend
from warmd.errors import ConfigError


@pytest.mark.parametrize(("url", "kind"), [
    ("redis://127.0.0.1:6390", RedisBackend),
    ("redis-cluster://127.0.0.1:7000,127.0.0.1:7001", RedisClusterBackend),
    ("memcached://127.0.0.1:11211, 127.0.0.1:11212", MemcacheBackend),
])
async def test_url_picks_backend(url: str, kind: type) -> None:
    """Each scheme builds its backend class (no connection is made until first use)."""
    backend = await backend_from_url(url)
    assert isinstance(backend, kind)
    await backend.close()


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://x:1", "scheme must be one of"), ("redis://", "no host:port"),
    ("redis://a:1,b:2", "takes one address"), ("redis-sentinel://a:1", "needs /<service"),
    ("redis://host:port", "port is not a number"),
])
async def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    """A malformed target URL raises an error that says what is wrong."""
    with pytest.raises(ConfigError, match=message):
        await backend_from_url(url)


def test_split_target_keeps_the_path() -> None:
    """The Sentinel service name travels in the URL path."""
    assert split_target("redis-sentinel://a:1,b:2/orders") == ("redis-sentinel",
                                                                ["a:1", "b:2"], "orders")
