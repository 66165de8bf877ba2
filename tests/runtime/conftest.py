"""A real one-node Raft driver for the admin handler tests of this folder."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from warmd.config_table import Address
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.types import ConfState
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.disk import DiskStorage
from warmd.runtime.node.driver import Driver, DriverOptions
from warmd.runtime.node.transport import TcpTransport, TransportOptions
from warmd.statemachine.machine import StateMachine


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[Driver]:
    """A real one-node Raft driver on disk that has elected itself."""
    storage = DiskStorage.open(tmp_path / "raft", conf_state=ConfState(voters=(1,)))
    transport = TcpTransport(TransportOptions(cluster_id="t", node_id=1, secret=b"s" * 32))
    await transport.start()
    node = RaftNode(RaftConfig(node_id=1, election_timeout_ticks=4, heartbeat_ticks=1),
                    storage, random.Random(7))
    driver = Driver(node, storage, transport,
                    Applier(StateMachine(), {1: Address("127.0.0.1", 1)}),
                    DriverOptions(0.005, 2.0, 100_000, "test-client"))
    await driver.start()
    deadline_s = time.monotonic() + 10
    while driver.leader_id != 1:
        assert time.monotonic() < deadline_s, "the one-node driver did not elect itself"
        await asyncio.sleep(0.02)
    yield driver
    await driver.stop()
    await transport.close()
