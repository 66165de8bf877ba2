"""Shared fixtures: real redis-server, a 3-master Redis Cluster and memcached processes.

They are session-scoped because starting a cluster takes about a second; tests that need
a clean server flush it themselves or use their own key prefix.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from warmd.testing.servers import (
    RedisCluster,
    ServerProcess,
    start_memcached,
    start_redis,
    start_redis_cluster,
)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ServerProcess]:
    """One standalone redis-server for the whole session."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real three-master Redis Cluster formed with `redis-cli --cluster create`."""
    cluster = start_redis_cluster(3)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def memcached_servers() -> Iterator[list[ServerProcess]]:
    """Two memcached processes, for consistent hashing across servers."""
    servers = [start_memcached(), start_memcached()]
    yield servers
    for server in servers:
        server.stop()
