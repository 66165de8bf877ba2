"""What the console reads and calls, handed over by the daemon's wiring.

The web package may not import the admin handlers (tests/test_layering.py): every mutation
goes through `invoke`, the admin server's one path, so role checks and audit records made
there hold for the console too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from warmd.access import Actor
from warmd.cache.effect import TaskEffect
from warmd.rules.compile import KnownNames
from warmd.runtime.node.changes import Subscription
from warmd.runtime.node.status import DriverStatus
from warmd.statemachine.state import MachineState
from warmd.statemachine.topics import Topic

Invoke = Callable[[str, Mapping[str, Any], Actor], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ConsoleReaders:
    """The node as the console sees it; the daemon wires them (tests give their own)."""

    status: Callable[[], DriverStatus]
    state: Callable[[], MachineState]
    subscribe: Callable[[Iterable[Topic]], Subscription]
    invoke: Invoke
    task_effects: Callable[[], Mapping[str, TaskEffect]] = dict
    known_names: Callable[[], KnownNames] = KnownNames  # caches and plugins rules may name
    wall_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    version: str = ""
    fsync_p99_ms: Callable[[], float | None] = lambda: None  # this node's WAL fsyncs
