"""The caches named in the config (`[caches.NAME]`) as live backends and HTTP clients.

Redis, Redis Cluster and Memcached caches become CacheBackends the warm runner writes to
and the cache watcher reads stats from; `http` caches become HttpClients that replay
requests against the service (its own read-through cache fills) or fetch from an origin.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

from warmd import __version__
from warmd.cache.base import CacheBackend
from warmd.cache.http import HttpClient
from warmd.cache.memcache import MemcacheBackend
from warmd.cache.redis import RedisBackend
from warmd.cache.redis_cluster import RedisClusterBackend
from warmd.config import CacheConfig
from warmd.errors import CacheError, ConfigError

HTTP_KIND = "http"
# What warm-up requests say they are, so the service's access log (and warmd reading it
# back) can tell them from real demand; an http cache's `headers` may set another.
WARM_UP_USER_AGENT = f"warmd/{__version__} (warm-up)"


def warm_up_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """`headers` with warmd's User-Agent added unless they name one."""
    headers = dict(headers or {})
    if not any(name.lower() == "user-agent" for name in headers):
        headers["User-Agent"] = WARM_UP_USER_AGENT
    return headers


def warm_up_user_agents(caches: Iterable[CacheConfig]) -> tuple[str, ...]:
    """Every User-Agent this node's warm-up requests carry: the default (fetch loaders
    use it) and each http cache's."""
    agents = {WARM_UP_USER_AGENT}
    for cache in caches:
        if cache.kind == HTTP_KIND:
            agents.update(value for name, value in warm_up_headers(dict(cache.headers)).items()
                          if name.lower() == "user-agent")
    return tuple(sorted(agents))


def open_backend(cache: CacheConfig) -> CacheBackend:
    """A backend for a redis, redis-cluster or memcached cache (connections open lazily).

    Raises:
        ConfigError: an http cache (use open_http_client) or a setting not supported here.
    """
    timeout_s = cache.timeout_ms / 1000
    addresses = [str(address) for address in cache.addresses]
    if cache.kind == "redis":
        return RedisBackend(addresses[0], timeout_s=timeout_s, password=cache.password,
                            name=cache.name, db=cache.db)
    if cache.kind == "redis-cluster":
        return RedisClusterBackend(addresses, timeout_s=timeout_s, password=cache.password,
                                   name=cache.name)
    if cache.kind == "memcached":
        return MemcacheBackend(addresses, timeout_s=timeout_s, name=cache.name)
    raise ConfigError(f"caches.{cache.name}: kind {cache.kind!r} is not a key-value backend")


def open_http_client(cache: CacheConfig) -> HttpClient:
    """The client of an http cache: relative request lines are joined to its url."""
    if cache.kind != HTTP_KIND or not cache.url:
        raise ConfigError(f"caches.{cache.name}: not an http cache with a url")
    return HttpClient(base_url=cache.url, headers=warm_up_headers(dict(cache.headers)),
                      timeout_s=cache.timeout_ms / 1000,
                      connection_limit=cache.max_concurrency, name=cache.name,
                      pipeline=cache.pipeline)


class ConfiguredCaches:
    """Every configured cache, opened once and closed together."""

    def __init__(self, caches: Iterable[CacheConfig]) -> None:
        self.configs = {cache.name: cache for cache in caches}
        self.backends: dict[str, CacheBackend] = {}
        self.http: dict[str, HttpClient] = {}
        for cache in self.configs.values():
            if cache.kind == HTTP_KIND:
                self.http[cache.name] = open_http_client(cache)
            else:
                self.backends[cache.name] = open_backend(cache)

    def kind(self, name: str) -> str | None:
        """The kind of cache `name`, or None when the config has no such cache."""
        cache = self.configs.get(name)
        return cache.kind if cache else None

    async def close(self) -> None:
        for backend in self.backends.values():
            with contextlib.suppress(CacheError, OSError):
                await backend.close()
        for client in self.http.values():
            with contextlib.suppress(CacheError, OSError):
                await client.close()
