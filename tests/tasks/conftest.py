"""Fixtures for task tests on real processes: a fresh redis-server per test and a factory
of ProcessClusters whose executors use short leases; everything is stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from chaos.ops import executor_settings
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import ServerProcess, start_redis

LEASE_MS = 1_500
HEARTBEAT_MS = 300


@pytest.fixture
def redis_target() -> Iterator[ServerProcess]:
    """A redis-server of this test's own, so key counts are exact."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def make_task_cluster() -> Iterator[Callable[..., ProcessCluster]]:
    """Make an N-node cluster whose executors have a 1.5 s lease by default (closed at the end)."""
    clusters: list[ProcessCluster] = []

    def make(size: int, lease_ms: int = LEASE_MS, **executor: float) -> ProcessCluster:
        cluster = ProcessCluster(size)
        settings = executor_settings(lease_ms, HEARTBEAT_MS, **executor)  # type: ignore[arg-type]
        for node in cluster.nodes.values():
            node.executor.update(settings)
            cluster.write_config(node)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()
