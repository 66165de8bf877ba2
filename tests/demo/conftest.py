"""Fixtures for the demo: one real redis-server and one real shop process per module."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from warmd.demo.runner import ShopProcess
from warmd.demo.shop import create_database
from warmd.testing.servers import ServerProcess, start_redis


@pytest.fixture(scope="module")
def demo_redis() -> Iterator[ServerProcess]:
    """A redis-server the demo tests may flush at will."""
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shop(demo_redis: ServerProcess) -> Iterator[ShopProcess]:
    """A running shop process with a fresh catalogue and an empty access log."""
    directory = Path(tempfile.mkdtemp(prefix="warmd-shop-test-"))
    process = ShopProcess(directory, f"redis://{demo_redis.address}/0", delay_ms="20-30")
    create_database(process.db_path)
    process.start()
    try:
        asyncio.run(process.wait_ready())
        yield process
    finally:
        process.stop()
        shutil.rmtree(directory, ignore_errors=True)
