"""Fixtures of the console's browser tests: one headless Debian chromium per session
(driven by Playwright through `executable_path`; Playwright's own browser downloads are
never used) and a three-node cluster of real daemons serving the console, with executors
warming a real redis-server slowly enough to watch a task run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chaos.ops import executor_settings
from tests.tasks.test_warmup_loop import ThreadedOrigin
from warmd.testing.loggen import LogSpec, generate_lines
from warmd.testing.procs import ProcessCluster, Timing
from warmd.testing.servers import ServerProcess, free_port, start_redis

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
# A loaded 2-core machine can take seconds to fsync: give proposals time rather than retry.
TIMING = Timing(proposal_timeout_ms=15_000)
KEYS_PER_SECOND = 20  # slow executors: a 60-key task runs ~3 s, long enough to see RUNNING
CACHE = """
[caches.redis]
kind = "redis"
address = "{address}"
"""
SOURCE = """
[sources.web]
paths = ["{log}"]
format = "combined"

[analysis]
ship_interval_ms = 300
poll_interval_ms = 100

[planner]
interval_ms = 0
batch_requests = 40
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium for the browser tests (they live in one module: Playwright's sync API
    holds an event loop in this thread while it runs, which the asyncio tests of the other
    modules must not meet); the tests skip, saying why, without chromium."""
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        pytest.skip("chromium is not installed (`make system-deps` installs Debian's)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (the test extra has it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium"),
            args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, auth_headers: dict[str, str]) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT, extra_http_headers=auth_headers)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[ServerProcess]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def origin() -> Iterator[ThreadedOrigin]:
    """The service a rule's `load fetch` reads from (planner-made tasks)."""
    with ThreadedOrigin() as running:
        yield running


@pytest.fixture(scope="module")
def console_cluster(redis_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[ProcessCluster]:
    """Three daemons, each with the console on its own port and a slow executor; node 1
    tails two days of generated traffic, so a rule set plans real tasks."""
    log = tmp_path_factory.mktemp("console-logs") / "access.log"
    start = datetime.now(UTC) - timedelta(days=2)
    log.write_text("".join(line + "\n" for line in generate_lines(
        LogSpec(start=start, days=2.0, requests_per_day=4_000, seed=5))))
    cluster = ProcessCluster(3, TIMING)
    try:
        for node in cluster.nodes.values():
            node.web_port = free_port()
            node.executor.update(executor_settings(1_500, 300, capacity=2,
                                                   keys_per_second=KEYS_PER_SECOND, batch_keys=5))
            node.extra_config = CACHE.format(address=redis_server.address)
            if node.node_id == 1:
                node.extra_config += SOURCE.format(log=log)
            cluster.write_config(node)
        cluster.start_all()
        cluster.wait_for_leader(20)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def auth_headers(console_cluster: ProcessCluster) -> dict[str, str]:
    """An admin token's bearer header for every request a test's browser makes (any node
    takes it: tokens are replicated; the login form has its own test, test_access_browser)."""
    token = console_cluster.call(1, "token-add", name="browser-admin", role="admin")
    return {"Authorization": f"Bearer {token['secret']}"}


def console_url(cluster: ProcessCluster, node_id: int, path: str = "/") -> str:
    return f"http://127.0.0.1:{cluster.nodes[node_id].web_port}{path}"


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where page screenshots go: WARMD_SCREENSHOTS if set (to look at them), else a
    temporary folder."""
    chosen = os.environ.get("WARMD_SCREENSHOTS")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    return tmp_path_factory.mktemp("console-screenshots")
