"""Wiring of observability: the node's scrape-time collector, the HTTP listeners and the
console's sessions (with the `login-link` command that mints one-time login links).

Kept apart from daemon.py so the daemon only calls `Observability.start()` and `close()`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from warmd import __version__, metrics
from warmd.access import Actor, Interface
from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.cache.base import BackendStats
from warmd.cache.effect import TaskEffect
from warmd.config import Config
from warmd.errors import AdminError
from warmd.runtime.access.tokens import TokenAuthority
from warmd.runtime.ingest.pipeline import SourceStatus
from warmd.runtime.leader.annotations import AnnotationPoster, AnnotationSettings
from warmd.runtime.leader.rule_names import known_names
from warmd.runtime.node.driver import Driver
from warmd.runtime.services import WarmupServices
from warmd.web.auth import WebAccess
from warmd.web.collector import NodeCollector, NodeReaders
from warmd.web.console.readers import ConsoleReaders
from warmd.web.listeners import ConsoleParts, WebListeners, start_listeners
from warmd.web.metrics_route import render
from warmd.web.sessions import CODE_TTL_S, SessionStore


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


def console_host(host: str) -> str:
    """The host of a console URL: loopback for a wildcard address, IPv6 in brackets."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class Observability:
    """Runs the listeners, whose /metrics adds the node collector to the event metrics,
    and the Grafana annotation poster when `[metrics] annotations_url` is set."""

    def __init__(self, config: Config, driver: Driver,
                 services: Callable[[], WarmupServices | None], admin: AdminServer,
                 authority: TokenAuthority) -> None:
        self.config = config
        self.driver = driver
        self.collector = NodeCollector(node_readers(driver, services))
        self.services = services
        self.admin = admin
        self.listeners: WebListeners | None = None
        self._poster: asyncio.Task[None] | None = None
        web = config.web
        self.access = WebAccess(authority, SessionStore(driver.clock), scrape_token=web.token,
                                open_metrics=web.listen.is_loopback() and web.token is None)
        admin.register("metrics", self._metrics_text,
                       summary="this node's /metrics text (for warmctl top)")
        admin.register("login-link", self._login_link, with_actor=True,
                       summary="a one-time console login link for this node")

    def _login_link(self, args: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """A link that logs a browser into this node's console as `actor`, once, within
        CODE_TTL_S seconds (the secret in the URL is spent on first use)."""
        port = self.listeners.port("web") if self.listeners is not None else None
        if port is None:
            raise AdminError(ErrorCode.FAILED, "the console is not enabled on this node "
                             "([web] enabled = false)")
        authority = self.access.authority
        token_created_ms = None
        if actor.token_name is not None:
            token_created_ms = authority.token_created_ms(actor.token_name)
        code = self.access.sessions.issue_code(
            dataclasses.replace(actor, interface=Interface.UI), token_created_ms)
        return {"url": f"http://{console_host(self.config.web.listen.host)}:{port}"
                       f"/login/once?code={code}",
                "valid_s": CODE_TTL_S, "actor": actor.name}

    async def _metrics_text(self, args: Mapping[str, Any]) -> dict[str, str]:
        return {"text": (await render(metrics.REGISTRY, [self.collector])).decode()}

    async def start(self) -> None:
        """Raises: ConfigError when a listener cannot bind (none is left running)."""
        self.listeners = await start_listeners(self.config.web, self.config.metrics,
                                               metrics.REGISTRY, [self.collector],
                                               ConsoleParts(self.access, self.admin,
                                                            console_readers(self.driver,
                                                                            self.services,
                                                                            self.admin,
                                                                            self.config)))
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
