"""A blank joiner (no configuration yet) applies entries but cannot snapshot: the driver's
periodic snapshot skips it quietly, and only an explicit request reports why."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from warmd.config_table import Address
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.types import ConfState, Entry, Message, MessageType, SnapshotMeta
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.disk import DiskStorage
from warmd.runtime.node.driver import Driver, DriverOptions, ProposalDropped
from warmd.runtime.node.transport import TcpTransport, TransportOptions
from warmd.statemachine.machine import StateMachine

SECRET = b"s" * 32
JOINER_ID, LEADER_ID = 2, 1


def _transport(node_id: int) -> TcpTransport:
    return TcpTransport(TransportOptions(cluster_id="t", node_id=node_id, secret=SECRET))


@pytest.fixture
async def leader_transport() -> AsyncIterator[TcpTransport]:
    """A bare transport speaking for node 1, so the test writes the leader's messages itself."""
    transport = _transport(LEADER_ID)
    await transport.start()
    yield transport
    await transport.close()


@pytest.fixture
async def joiner(tmp_path: Path, leader_transport: TcpTransport) -> AsyncIterator[Driver]:
    """Node 2 started blank (ConfState() as `warmd join` does), snapshotting every entry."""
    storage = DiskStorage.open(tmp_path, conf_state=ConfState())
    transport = _transport(JOINER_ID)
    await transport.start()
    node = RaftNode(RaftConfig(node_id=JOINER_ID, election_timeout_ticks=4, heartbeat_ticks=1),
                    storage, random.Random(7))
    leader_address = Address(*leader_transport.listen_address)
    driver = Driver(node, storage, transport,
                    Applier(StateMachine(), {LEADER_ID: leader_address}),
                    DriverOptions(0.005, 1.0, 1, "joiner-client"))
    await driver.start()
    yield driver
    await driver.stop()
    await transport.close()
    storage.close()


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline_s = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline_s:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def _commit_before_configuration(joiner: Driver, leader_transport: TcpTransport) -> None:
    """Send, as leader 1, three committed entries without the founding configuration."""
    assert joiner.finished is not None
    leader_transport.update_peers({JOINER_ID: joiner.transport.listen_address})  # type: ignore[attr-defined]
    entries = tuple(Entry(term=1, index=index) for index in (1, 2, 3))
    await leader_transport.send([Message(MessageType.APPEND, LEADER_ID, JOINER_ID, term=1,
                                         index=0, log_term=0, entries=entries, commit=3)])
    await _until(lambda: joiner.applier.applied_index == 3 or joiner.finished.done())


async def test_blank_joiner_survives_periodic_snapshot(
        joiner: Driver, leader_transport: TcpTransport) -> None:
    """Entries applied before the joiner knows its configuration do not kill its driver,
    while an operator's snapshot request fails with ProposalDropped naming the cause."""
    await _commit_before_configuration(joiner, leader_transport)
    assert joiner.finished is not None
    assert joiner.applier.applied_index == 3
    await asyncio.sleep(0.05)  # ticks and Readies after the periodic snapshot check
    assert not joiner.finished.done(), "the periodic snapshot killed the driver"
    assert joiner.status().snapshot_index == 0
    with pytest.raises(ProposalDropped, match="no configuration for it yet"):
        await joiner.snapshot_now()
    assert not joiner.finished.done()


async def test_deferred_snapshot_is_taken_once_configured(
        joiner: Driver, leader_transport: TcpTransport) -> None:
    """The skipped periodic snapshot is taken after the founding configuration arrives."""
    await _commit_before_configuration(joiner, leader_transport)
    assert joiner.finished is not None
    founding = SnapshotMeta(conf_state=ConfState(voters=(LEADER_ID,)))
    await leader_transport.send([Message(MessageType.APPEND, LEADER_ID, JOINER_ID, term=1,
                                         index=0, log_term=0, commit=3, snapshot_meta=founding)])
    await _until(lambda: joiner.status().snapshot_index == 3 or joiner.finished.done())
    assert not joiner.finished.done()
    assert (await joiner.snapshot_now()).meta.index == 3
