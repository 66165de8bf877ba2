"""GET /metrics: the registry in Prometheus text format (prometheus-client writes it).

Collectors that read the event loop's state (`loop_collectors`) run on the loop, which is
cheap (~1 ms at 100 templates x 3 sources); writing the text is ~10x that, so it runs in a
worker thread together with the thread-safe event metrics of the registry, and the loop
keeps ticking Raft meanwhile (bench/metrics_scrape.py measures both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from warmd.access import Role, requires

METRICS_PATH = "/metrics"


class _Scrape:
    """One scrape's metrics: the registry's (collected where rendered) and those collected
    on the loop already."""

    def __init__(self, registry: CollectorRegistry, collected: list[Metric]) -> None:
        self.registry = registry
        self.collected = collected

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
        yield from self.collected


async def render(registry: CollectorRegistry, loop_collectors: Sequence[Collector] = ()) -> bytes:
    """The exposition text: `loop_collectors` collected here, the rest in a thread."""
    collected = [family for collector in loop_collectors for family in collector.collect()]
    return await asyncio.to_thread(generate_latest, _Scrape(registry, collected))


def setup(app: web.Application, registry: CollectorRegistry,
          loop_collectors: Sequence[Collector] = ()) -> None:
    """Serve `registry` and `loop_collectors` at /metrics on `app`."""

    @requires(Role.VIEWER)  # and anyone while the listener is on loopback without a token
    async def scrape(request: web.Request) -> web.Response:
        body = await render(registry, loop_collectors)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get(METRICS_PATH, scrape)
