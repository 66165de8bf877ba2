"""Redis Sentinel discovery: ask the sentinels which node is the master, then warm it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Unpack

from warmd.cache.redis import BackendOptions, RedisBackend, parse_address
from warmd.cache.resp import RespConnection
from warmd.errors import CacheError, CacheUnavailable


async def discover_master(sentinels: Sequence[str], service_name: str, *,
                          timeout_s: float = 2.0) -> str:
    """Return 'host:port' of `service_name`'s master from the first sentinel that knows it.

    Raises:
        CacheUnavailable: no sentinel answered, or none knows the service.
    """
    if not sentinels:
        raise CacheError("sentinel discovery needs at least one sentinel address")
    problems = []
    for address in sentinels:
        host, port = parse_address(address, 26379)
        connection = RespConnection(host, port, timeout_s=timeout_s)
        try:
            reply = await connection.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", service_name)
        except CacheError as error:
            problems.append(f"{address}: {error}")
            continue
        finally:
            await connection.close()
        if isinstance(reply, list) and len(reply) == 2:
            return f"{reply[0].decode()}:{int(reply[1])}"
        problems.append(f"{address}: does not know {service_name!r}")
    raise CacheUnavailable(f"redis sentinel {service_name}", "; ".join(problems))


async def sentinel_backend(sentinels: Sequence[str], service_name: str,
                           **options: Unpack[BackendOptions]) -> RedisBackend:
    """A RedisBackend pointed at the master the sentinels name now (re-resolve on
    CacheUnavailable after a failover by calling this again)."""
    master = await discover_master(sentinels, service_name)
    return RedisBackend(master, name=f"redis-sentinel://{service_name}@{master}",
                        **options)
