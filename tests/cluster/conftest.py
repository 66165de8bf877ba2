"""Fixtures for real-process cluster tests: every ProcessCluster is closed (process groups
killed, directory removed) even when the test fails."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from warmd.testing.procs import ProcessCluster, Timing


@pytest.fixture
def make_cluster() -> Iterator[Callable[..., ProcessCluster]]:
    """A factory of ProcessClusters that are all closed at the end of the test."""
    clusters: list[ProcessCluster] = []

    def make(size: int, **timing: int) -> ProcessCluster:
        cluster = ProcessCluster(size, Timing(**timing))
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()
