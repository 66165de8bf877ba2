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


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0]


def live_descendants(root_pid: int) -> set[int]:
    """Every live (non-zombie) process below `root_pid`, at any depth, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _parent_and_state(int(entry.name))
            if found is not None and found[1] != "Z":
                parents.setdefault(found[0], []).append(int(entry.name))
    below, frontier = set(), [root_pid]
    while frontier:
        for child in parents.get(frontier.pop(), []):
            if child not in below:
                below.add(child)
                frontier.append(child)
    return below


def is_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    found = _parent_and_state(pid)
    return found is not None and found[1] != "Z"


@pytest.fixture
def process_tree() -> tuple:
    """(live_descendants, is_alive): /proc helpers to prove nothing outlives the demo."""
    return live_descendants, is_alive
