"""Build a backend from a target URL in config or rules, with clear errors for bad URLs.

    redis://host:port                       one Redis node
    redis-cluster://host:port,host:port     cluster seeds
    redis-sentinel://host:port,.../service  master found through the sentinels
    memcached://host:port,host:port         servers hashed with rendezvous hashing
"""

from __future__ import annotations

from typing import Any

from warmd.cache.base import CacheBackend
from warmd.cache.memcache import MemcacheBackend
from warmd.cache.redis import RedisBackend
from warmd.cache.redis_cluster import RedisClusterBackend
from warmd.cache.redis_sentinel import sentinel_backend
from warmd.errors import CacheError, ConfigError

SCHEMES = ("redis", "redis-cluster", "redis-sentinel", "memcached")


def split_target(url: str) -> tuple[str, list[str], str]:
    """(scheme, addresses, path) of a target URL.

    Raises:
        ConfigError: unknown scheme, or no address.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in SCHEMES:
        raise ConfigError(f"target {url!r}: scheme must be one of {', '.join(SCHEMES)}")
    hosts, _, path = rest.partition("/")
    addresses = [a.strip() for a in hosts.split(",") if a.strip()]
    if not addresses:
        raise ConfigError(f"target {url!r}: no host:port given")
    return scheme, addresses, path


async def backend_from_url(url: str, **options: Any) -> CacheBackend:
    """Create (and for Sentinel, resolve) the backend a target URL names.

    Raises:
        ConfigError: a malformed URL (a Sentinel URL needs its /service name).
        CacheUnavailable: Sentinel discovery found no master.
    """
    scheme, addresses, path = split_target(url)
    if scheme == "redis-sentinel":
        if not path:
            raise ConfigError(f"target {url!r}: redis-sentinel:// needs /<service name>")
        return await sentinel_backend(addresses, path, **options)
    try:
        return _direct_backend(url, scheme, addresses, options)
    except CacheError as error:  # a bad address in config is a config error
        raise ConfigError(f"target {url!r}: {error}") from None


def _direct_backend(url: str, scheme: str, addresses: list[str],
                    options: dict[str, Any]) -> CacheBackend:
    if scheme == "redis":
        if len(addresses) != 1:
            raise ConfigError(f"target {url!r}: redis:// takes one address; use redis-cluster://")
        return RedisBackend(addresses[0], **options)
    if scheme == "redis-cluster":
        return RedisClusterBackend(addresses, **options)
    return MemcacheBackend(addresses, **options)
