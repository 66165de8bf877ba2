"""Wiring of observability: the node's scrape-time collector and the HTTP listeners.

Kept apart from daemon.py so the daemon only calls `Observability.start()` and `close()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from warmd import __version__, metrics
from warmd.admin.server import AdminServer
from warmd.cache.base import BackendStats
from warmd.cache.effect import TaskEffect
from warmd.config import Config
from warmd.runtime.ingest.pipeline import SourceStatus
from warmd.runtime.leader.annotations import AnnotationPoster, AnnotationSettings
from warmd.runtime.leader.rule_names import known_names
from warmd.runtime.node.driver import Driver
from warmd.runtime.services import WarmupServices
from warmd.web.collector import NodeCollector, NodeReaders
from warmd.web.console.readers import ConsoleReaders
from warmd.web.listeners import WebListeners, start_listeners
from warmd.web.metrics_route import render


def node_readers(driver: Driver, current: Callable[[], WarmupServices | None]) -> NodeReaders:
    """Readers of this node's driver and services, looked up at each scrape: the services
    start after the listeners, and a reload replaces them."""

    def sources() -> Sequence[SourceStatus]:
        services = current()
        if services is None or services.pipeline is None:
            return ()
        return services.pipeline.status()

    def origin_limits() -> Mapping[str, int]:
        services = current()
        if services is None or services.runner is None:
            return {}
        limiters = services.runner.warm_runner.limiters
        return {name: limiter.statistics().limit for name, limiter in limiters.items()}

    def cache_stats() -> Mapping[str, BackendStats]:
        services = current()
        watcher = services.watcher if services is not None else None
        if watcher is None:
            return {}
        latest = {name: watcher.latest(name) for name in watcher.backends}
        return {name: stats for name, stats in latest.items() if stats is not None}

    return NodeReaders(status=driver.status, state=lambda: driver.state,
                       proposals_pending=lambda: driver.applier.waiting_count,
                       sources=sources, transport=driver.transport.statistics,
                       origin_limits=origin_limits, cache_stats=cache_stats,
                       task_effects=effects_reader(current))


def effects_reader(current: Callable[[], WarmupServices | None]
                   ) -> Callable[[], Mapping[str, TaskEffect]]:
    """The measured effects of the tasks this node ran (none before the services start)."""

    def task_effects() -> Mapping[str, TaskEffect]:
        services = current()
        if services is None or services.effects is None:
            return {}
        return services.effects.effects

    return task_effects


def console_readers(driver: Driver, current: Callable[[], WarmupServices | None],
                    admin: AdminServer, config: Config) -> ConsoleReaders:
    """What the console reads (the driver's state and status, this node's task effects)
    and the admin server's `invoke`, its one way to change anything."""
    return ConsoleReaders(status=driver.status, state=lambda: driver.state,
                          subscribe=driver.changes.subscribe, invoke=admin.invoke,
                          task_effects=effects_reader(current), known_names=lambda: known_names(config),
                          wall_ms=driver.clock.wall_ms, sleep=driver.clock.sleep,
                          version=__version__, fsync_p99_ms=fsync_p99_ms)


def fsync_p99_ms() -> float | None:
    """This node's WAL fsync p99 since it started (the /metrics histogram)."""
    bound = metrics.histogram_quantile(metrics.WAL_FSYNC, 0.99)
    return bound * 1000 if bound is not None else None


class Observability:
    """Runs the listeners, whose /metrics adds the node collector to the event metrics,
    and the Grafana annotation poster when `[metrics] annotations_url` is set."""

    def __init__(self, config: Config, driver: Driver,
                 services: Callable[[], WarmupServices | None], admin: AdminServer) -> None:
        self.config = config
        self.driver = driver
        self.collector = NodeCollector(node_readers(driver, services))
        self.services = services
        self.admin = admin
        self.listeners: WebListeners | None = None
        self._poster: asyncio.Task[None] | None = None
        admin.register("metrics", self._metrics_text,
                       summary="this node's /metrics text (for warmctl top)")

    async def _metrics_text(self, args: Mapping[str, Any]) -> dict[str, str]:
        return {"text": (await render(metrics.REGISTRY, [self.collector])).decode()}

    async def start(self) -> None:
        """Raises: ConfigError when a listener cannot bind (none is left running)."""
        self.listeners = await start_listeners(self.config.web, self.config.metrics,
                                               metrics.REGISTRY, [self.collector],
                                               console_readers(self.driver, self.services,
                                                               self.admin, self.config))
        settings = self.config.metrics
        if settings.annotations_url is not None:
            poster = AnnotationPoster(
                AnnotationSettings(settings.annotations_url, settings.annotations_token),
                state=lambda: self.driver.state,
                is_leader=lambda: self.driver.status().role == "leader")
            self._poster = asyncio.create_task(poster.run(), name="annotation-poster")

    async def close(self) -> None:
        if self._poster is not None:
            self._poster.cancel()
            await asyncio.gather(self._poster, return_exceptions=True)
            self._poster = None
        if self.listeners is not None:
            await self.listeners.close()
            self.listeners = None
