"""warmd.runtime.sdnotify: the messages systemd receives, played by a real datagram socket."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from warmd.clock import ManualClock
from warmd.runtime.sdnotify import SdNotifier, run_watchdog, watchdog_settings


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket playing systemd's notify socket, and its address."""
    path = tmp_path / "notify"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(2.0)
    yield receiver, str(path)
    receiver.close()


def received(receiver: socket.socket) -> str:
    return receiver.recv(4096).decode()


def test_ready_status_watchdog_stopping_reach_systemd(notify_socket) -> None:
    """READY=1 with STATUS, WATCHDOG=1, RELOADING=1 and STOPPING=1 arrive as separate datagrams."""
    receiver, address = notify_socket
    notifier = SdNotifier.from_environment({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready(status="role=leader term=3")
    assert received(receiver) == "READY=1\nSTATUS=role=leader term=3"
    assert notifier.watchdog()
    assert received(receiver) == "WATCHDOG=1"
    assert notifier.reloading()
    assert received(receiver) == "RELOADING=1"
    assert notifier.stopping(status="shutting down")
    assert received(receiver) == "STOPPING=1\nSTATUS=shutting down"
    notifier.close()


def test_status_is_one_line(notify_socket) -> None:
    """A STATUS text with newlines is flattened, so it cannot inject other assignments."""
    receiver, address = notify_socket
    notifier = SdNotifier(address)
    notifier.status("role=follower\nREADY=1")
    assert received(receiver) == "STATUS=role=follower READY=1"


def test_abstract_socket_name_with_at_sign() -> None:
    """An address starting with '@' is an abstract socket, as systemd writes it."""
    name = f"warmd-test-{uuid.uuid4().hex}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    receiver.settimeout(2.0)
    try:
        assert SdNotifier(f"@{name}").ready()
        assert received(receiver) == "READY=1"
    finally:
        receiver.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    """Outside systemd (no NOTIFY_SOCKET) calls do nothing and report False."""
    notifier = SdNotifier.from_environment({})
    assert not notifier.enabled
    assert notifier.ready() is False and notifier.watchdog() is False


def test_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    """If systemd's socket is gone, notify returns False instead of crashing the daemon."""
    notifier = SdNotifier(str(tmp_path / "gone"))
    assert notifier.ready() is False


def test_watchdog_settings_from_environment() -> None:
    """WATCHDOG_USEC gives the timeout; pings go at half of it; another WATCHDOG_PID means none."""
    settings = watchdog_settings({"WATCHDOG_USEC": "10000000"})
    assert settings is not None and (settings.timeout_s, settings.ping_interval_s) == (10.0, 5.0)
    mine = watchdog_settings({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine is not None and mine.timeout_s == 2.0
    assert watchdog_settings({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_settings({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_settings({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_settings({}) is None


async def test_watchdog_pings_from_the_event_loop_at_half_the_timeout(notify_socket) -> None:
    """run_watchdog sends WATCHDOG=1 now and then every ping interval of clock time."""
    receiver, address = notify_socket
    receiver.setblocking(False)
    clock = ManualClock()
    settings = watchdog_settings({"WATCHDOG_USEC": "4000000"})
    assert settings is not None
    task = asyncio.create_task(run_watchdog(SdNotifier(address), settings, clock))
    pings = 0
    for _ in range(10):  # 10 steps of 1 s = 5 intervals of 2 s after the first ping
        for _ in range(3):
            await asyncio.sleep(0)
        clock.advance(1.0)
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    while True:
        try:
            assert receiver.recv(64) == b"WATCHDOG=1"
        except BlockingIOError:
            break
        pings += 1
    assert pings == 6
