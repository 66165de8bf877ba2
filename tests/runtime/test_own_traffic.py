"""warmd's own warm-up traffic is not learnt back as demand (issue #14 item 6): a real HTTP
service writes a combined access log; the replay client the daemon builds for an http cache
says `warmd/<version> (warm-up)`, and the summary the daemon's pipeline makes of that log
leaves those lines out, while real users' lines are kept."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from warmd import __version__
from warmd.analysis.summary import Summary
from warmd.cache.configured import open_http_client, warm_up_user_agents
from warmd.config import AnalysisConfig, CacheConfig, SourceConfig
from warmd.runtime.ingest.pipeline import LogPipeline, own_traffic_excluded
from warmd.statemachine.summaries import ReportSummary
from warmd.testing.servers import free_port

COMBINED = '%a - - %t "%r" %s %b "%{Referer}i" "%{User-Agent}i"'
USERS = 30
WARM_UPS = 60


def _cache(url: str, headers: tuple[tuple[str, str], ...] = ()) -> CacheConfig:
    return CacheConfig(name="shop", kind="http", addresses=(), url=url, db=0, password=None,
                       timeout_ms=2000, max_concurrency=8, headers=headers)


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """A service that logs every request in nginx's combined format to access.log."""
    log_path = tmp_path / "access.log"
    logger = logging.getLogger(f"test-access-{tmp_path.name}")
    logger.propagate = False
    handler = logging.FileHandler(log_path)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=logger, access_log_format=COMBINED)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", log_path
    await runner.cleanup()
    logger.removeHandler(handler)
    handler.close()


async def _traffic(url: str) -> None:
    """Real users on /api/user-page/N, then warmd replaying /api/warm/N through the client the
    daemon builds for an http cache."""
    async with aiohttp.ClientSession(headers={"User-Agent": "Mozilla/5.0 (X11) real-user"}) as users:
        for number in range(USERS):
            async with users.get(f"{url}/api/user-page/{number}") as response:
                await response.read()
    client = open_http_client(_cache(url))
    try:
        for number in range(WARM_UPS):
            await client.get(f"/api/warm/{number}")
    finally:
        await client.close()


def _excluded_counts(summary: Summary) -> bytes:
    return json.dumps({"lines": summary.lines, "excluded": dict(summary.excluded)}).encode()


async def _summarise(log_path: Path, user_agents: tuple[str, ...]) -> dict:
    reports: list[ReportSummary] = []

    async def propose(report: ReportSummary) -> int:
        reports.append(report)
        return report.sequence

    pipeline = LogPipeline(1, [SourceConfig("web", (str(log_path),), "combined", None, ())],
                           AnalysisConfig(ship_interval_ms=50, poll_interval_ms=10,
                                          from_start=True),
                           propose, _excluded_counts,
                           summary_config=own_traffic_excluded(user_agents))
    try:
        await pipeline.poll_once()
        assert await pipeline.ship_once() == 1
    finally:
        pipeline.close()
    return json.loads(reports[-1].data)  # type: ignore[no-any-return]


async def test_warm_up_requests_are_marked_and_not_learnt_back(
        service: tuple[str, Path]) -> None:
    """The replayed requests carry warmd's User-Agent in the service's log; the daemon's
    summary of that log excludes exactly them, and without the exclusion they would count."""
    url, log_path = service
    await _traffic(url)
    lines = log_path.read_text().splitlines()
    own = f'"warmd/{__version__} (warm-up)"'
    assert len(lines) == USERS + WARM_UPS
    assert sum(line.endswith(own) for line in lines) == WARM_UPS

    closed = await _summarise(log_path, warm_up_user_agents([_cache(url)]))
    assert closed["lines"] == USERS + WARM_UPS
    assert closed["excluded"].get("bot", 0) == WARM_UPS
    open_loop = await _summarise(log_path, ())
    assert open_loop["excluded"].get("bot", 0) == 0


def test_a_configured_user_agent_replaces_the_default_and_is_excluded_too() -> None:
    """An http cache's `headers` may name another User-Agent: it is sent, and excluded."""
    custom = _cache("http://127.0.0.1:1", (("User-Agent", "shop-warmer/2"),))
    client = open_http_client(custom)
    assert client.headers["User-Agent"] == "shop-warmer/2"
    assert "shop-warmer/2" in warm_up_user_agents([custom])
    summary = Summary(own_traffic_excluded(warm_up_user_agents([custom])))
    summary.add_columns(["/a", "/b"], [1_764_000_000.0] * 2, ["GET"] * 2, [200] * 2,
                        ["10.0.0.1"] * 2, ["shop-warmer/2", "Mozilla/5.0"])
    assert summary.excluded["bot"] == 1
