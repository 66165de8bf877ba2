"""Reads pending on a leader that steps down fail at once with a retryable error.

One driver in-process on a real DiskStorage, a member of three voters whose peers do not
exist: the test plays them by stepping their messages into the driver's queue, so it
decides exactly when the node wins, is acknowledged and is deposed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from warmd.config_table import Address
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.types import ConfState, Message, MessageType, Role
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.disk import DiskStorage
from warmd.runtime.node.driver import Driver, DriverOptions, ProposalDropped
from warmd.runtime.node.transport import TcpTransport, TransportOptions
from warmd.statemachine.machine import StateMachine

PROPOSAL_TIMEOUT_S = 5.0
ADDRESSES = {node_id: Address("127.0.0.1", 1) for node_id in (1, 2, 3)}


async def _start(directory: Path) -> Driver:
    storage = DiskStorage.open(directory, conf_state=ConfState(voters=(1, 2, 3)))
    transport = TcpTransport(TransportOptions(cluster_id="t", node_id=1, secret=b"s" * 32))
    await transport.start()
    # Timeouts far beyond the test: only the messages it steps in change the roles.
    config = RaftConfig(node_id=1, election_timeout_ticks=10_000, heartbeat_ticks=1,
                        pre_vote=False, check_quorum=False)
    node = RaftNode(config, storage, random.Random(7))
    driver = Driver(node, storage, transport, Applier(StateMachine(), dict(ADDRESSES)),
                    DriverOptions(0.01, PROPOSAL_TIMEOUT_S, 1000, "test-client"))
    await driver.start()
    return driver


async def _step(driver: Driver, **fields: Any) -> None:
    await driver._events.put(Message(to=1, **fields))


async def _until(predicate: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def _lead(driver: Driver) -> int:
    """Campaign, get node 2's vote and its acknowledgement of the no-op; returns the term."""
    await driver._call(driver.node.campaign)
    term = driver.node.term
    await _step(driver, type=MessageType.VOTE_RESPONSE, from_id=2, term=term)
    await _until(driver.is_leader, "leadership")
    last = driver.node.log.last_index()
    await _step(driver, type=MessageType.APPEND_RESPONSE, from_id=2, term=term, index=last)
    await _until(lambda: driver.status().applied_index >= last, "the no-op applied")
    return term


async def test_a_read_pending_when_the_leader_steps_down_fails_at_once(tmp_path: Path) -> None:
    """The heartbeat round of a ReadIndex is never acknowledged; a higher term deposes the
    leader: the read fails with ProposalDropped (retryable) long before the timeout."""
    driver = await _start(tmp_path)
    try:
        term = await _lead(driver)
        reading = asyncio.ensure_future(driver.read())
        await asyncio.sleep(0.1)
        assert not reading.done()  # waits for a quorum's heartbeat answers
        started_s = asyncio.get_running_loop().time()
        await _step(driver, type=MessageType.HEARTBEAT, from_id=3, term=term + 1)
        with pytest.raises(ProposalDropped, match="leader changed"):
            await reading
        assert asyncio.get_running_loop().time() - started_s < PROPOSAL_TIMEOUT_S / 5
        assert driver.node.role == Role.FOLLOWER and driver.leader_id == 3
    finally:
        await driver.stop()
        await driver.transport.close()
        driver.storage.close()


async def test_a_read_forwarded_to_a_deposed_leader_fails_at_once(tmp_path: Path) -> None:
    """On a follower, a read forwarded to leader 2 fails as soon as node 3 leads instead."""
    driver = await _start(tmp_path)
    try:
        await _step(driver, type=MessageType.HEARTBEAT, from_id=2, term=1)
        await _until(lambda: driver.leader_id == 2, "leader 2 known")
        reading = asyncio.ensure_future(driver.read())
        await asyncio.sleep(0.1)
        assert not reading.done()  # the forwarded READ_INDEX is never answered
        started_s = asyncio.get_running_loop().time()
        await _step(driver, type=MessageType.HEARTBEAT, from_id=3, term=2)
        with pytest.raises(ProposalDropped, match="leader changed"):
            await reading
        assert asyncio.get_running_loop().time() - started_s < PROPOSAL_TIMEOUT_S / 5
    finally:
        await driver.stop()
        await driver.transport.close()
        driver.storage.close()
