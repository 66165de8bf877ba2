"""GET /metrics: the registry in Prometheus text format (prometheus-client writes it)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

METRICS_PATH = "/metrics"


def setup(app: web.Application, registry: CollectorRegistry) -> None:
    """Serve `registry` at /metrics on `app`."""

    async def scrape(request: web.Request) -> web.Response:
        # Collected on the event loop: the collectors read the loop's state (bench/metrics_scrape.py).
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get(METRICS_PATH, scrape)
