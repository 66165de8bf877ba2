"""The daemon's HTTP listeners: the `[web]` app (loopback by default; the console's logins,
roles and audit pages when the daemon passes its `ConsoleParts`) and the optional
`[metrics] listen` app that serves only /metrics."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp.web import Application
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from warmd.admin.server import AdminServer
from warmd.config import MetricsConfig, WebConfig
from warmd.errors import ConfigError
from warmd.web import access_routes, metrics_route
from warmd.web.app import create_app
from warmd.web.auth import WebAccess
from warmd.web.console import routes as console_routes
from warmd.web.console.readers import ConsoleReaders
from warmd.web.server import WebServer
from warmd.web.templates import setup_templates


@dataclass(frozen=True, slots=True)
class ConsoleParts:
    """What the console's routes need from the daemon: who may do what, and the one path
    of every call."""

    access: WebAccess
    admin: AdminServer
    readers: ConsoleReaders  # what the console's pages read, and its invoke


class WebListeners:
    """The started servers; `close()` stops them all."""

    def __init__(self, servers: list[WebServer]) -> None:
        self.servers = servers

    def port(self, name: str) -> int | None:
        """The bound port of the listener called `name` ("web" or "metrics"), if running."""
        return next((server.port for server in self.servers if server.name == name), None)

    async def close(self) -> None:
        for server in self.servers:
            with contextlib.suppress(OSError):
                await server.close()


def web_app(web: WebConfig, registry: CollectorRegistry,
            loop_collectors: Sequence[Collector] = (),
            console: ConsoleParts | None = None) -> Application:
    """The `[web]` listener's app: /metrics, and the console's routes when given its parts."""
    app = create_app(web.token, console.access if console is not None else None)
    metrics_route.setup(app, registry, loop_collectors)
    if console is not None:
        setup_templates(app)
        access_routes.setup(app, console.access, console.admin)
        console_routes.setup(app, console.readers)
    return app


async def start_listeners(web: WebConfig, metrics: MetricsConfig, registry: CollectorRegistry,
                          loop_collectors: Sequence[Collector] = (),
                          console: ConsoleParts | None = None) -> WebListeners:
    """Start every configured listener, or none; /metrics serves `registry` and the
    collectors that must run on the event loop (metrics_route.py); the `[web]` listener
    also serves the console when `console` gives it the node to read.

    Raises:
        ConfigError: an address cannot be bound (in use, not local); nothing is left running.
    """
    servers = []
    if web.enabled:
        servers.append(WebServer(web_app(web, registry, loop_collectors, console), web.listen,
                                 "web"))
    if metrics.listen is not None:
        app = create_app()
        metrics_route.setup(app, registry, loop_collectors)
        servers.append(WebServer(app, metrics.listen, "metrics"))
    started = WebListeners([])
    for server in servers:
        try:
            await server.start()
        except OSError as error:
            await started.close()
            await server.close()
            key = "web.listen" if server.name == "web" else "metrics.listen"
            raise ConfigError(f"{key} {server.address}: cannot listen: {error.strerror or error}"
                              ) from None
        started.servers.append(server)
    return started
