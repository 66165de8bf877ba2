"""The driver in-process on a real DiskStorage and TcpTransport: one node, so no peers needed."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from warmd.config_table import Address
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.types import ConfState, Snapshot, SnapshotMeta
from warmd.runtime.node.applier import Applier, SnapshotFormatError, decode_snapshot_data
from warmd.runtime.node.disk import DiskStorage
from warmd.runtime.node.driver import Driver, DriverOptions, DriverStopped, ProposalDropped
from warmd.runtime.node.transport import TcpTransport, TransportOptions
from warmd.statemachine.commands import Heartbeat, RegisterNode
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import Applied, Rejected
from warmd.statemachine.summaries import ReportSummary

ADDRESS = Address("127.0.0.1", 1)


async def _start(directory: Path, snapshot_interval_entries: int = 1000,
                 voters: tuple[int, ...] = (1,),
                 snapshot_interval_bytes: int = 64 * 1024 * 1024) -> Driver:
    storage = DiskStorage.open(directory, conf_state=ConfState(voters=voters))
    transport = TcpTransport(TransportOptions(cluster_id="t", node_id=1, secret=b"s" * 32))
    await transport.start()
    node = RaftNode(RaftConfig(node_id=1, election_timeout_ticks=4, heartbeat_ticks=1),
                    storage, random.Random(7))
    driver = Driver(node, storage, transport, Applier(StateMachine(), {1: ADDRESS}),
                    DriverOptions(0.005, 1.0, snapshot_interval_entries, "test-client",
                                  snapshot_interval_bytes))
    await driver.start()
    return driver


async def _close(driver: Driver) -> None:
    await driver.stop()
    await driver.transport.close()
    driver.storage.close()


async def _until_leader(driver: Driver) -> None:
    for _ in range(400):
        if driver.leader_id == 1:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the single node did not elect itself")


async def test_proposals_reads_snapshots_and_restart(tmp_path: Path) -> None:
    """Commands are applied once with their results, reads wait for the applied index,
    automatic snapshots compact the log, and a restart restores the same state."""
    driver = await _start(tmp_path, snapshot_interval_entries=20)
    try:
        await _until_leader(driver)
        assert await driver.propose(Heartbeat(node_id=5, now_ms=1)) == Rejected("unknown node 5")
        register = RegisterNode(node_id=5, capacity=2, lease_ms=1000, now_ms=1)
        assert await driver.propose(register) == Applied(None)
        results = await asyncio.gather(*(driver.propose(Heartbeat(node_id=5, now_ms=n))
                                         for n in range(2, 60)))
        assert all(result == Applied(None) for result in results)
        read_index = await driver.read()
        assert read_index == driver.applier.applied_index >= 60
        await asyncio.sleep(0.05)
        status = driver.status()
        assert status.snapshot_index >= 20 and status.role == "leader"
        digest = driver.applier.machine.digest()
        assert driver.applier.machine.state.nodes[5].last_heartbeat_ms == 59
    finally:
        await _close(driver)
    again = await _start(tmp_path)
    try:
        await _until_leader(again)
        await again.read()
        assert again.applier.machine.digest() == digest
    finally:
        await _close(again)


async def test_without_a_leader_proposals_and_reads_are_dropped(tmp_path: Path) -> None:
    """A node whose only peer never answers knows no leader: requests fail fast and typed."""
    driver = await _start(tmp_path, voters=(1, 2))
    try:
        await asyncio.sleep(0.1)  # several election timeouts: pre-vote never wins alone
        assert driver.status().role == "pre_candidate" and driver.status().term == 0
        with pytest.raises(ProposalDropped) as dropped:
            await driver.propose(Heartbeat(node_id=1, now_ms=1))
        assert dropped.value.reason == ProposalDropped.NO_LEADER
        with pytest.raises(ProposalDropped):
            await driver.read()
        assert driver.applier.waiting_count == 0
    finally:
        await _close(driver)
    with pytest.raises(DriverStopped):
        await driver.propose(Heartbeat(node_id=1, now_ms=2))


def test_snapshot_data_round_trip_and_damage() -> None:
    """The applier's snapshot keeps the address book and the state; damage is a clear error."""
    applier = Applier(StateMachine(), {1: ADDRESS, 2: Address("10.0.0.2", 7000)})
    data = applier.snapshot_data()
    addresses, machine = decode_snapshot_data(data)
    assert addresses == applier.addresses and machine == applier.machine.snapshot()
    other = Applier(StateMachine(), {})
    other.restore(Snapshot(SnapshotMeta(9, 2, ConfState((1, 2))), data))
    assert other.addresses == applier.addresses and other.applied_index == 9
    for damaged in (b"", b"\x93\x01\x02\x03", data[:-3]):
        with pytest.raises(SnapshotFormatError):
            decode_snapshot_data(damaged)


async def test_a_few_large_entries_trigger_a_snapshot_by_bytes(tmp_path: Path) -> None:
    """Far below the entry interval, entries whose bytes pass `snapshot_interval_bytes`
    (analysis summaries are such entries) still snapshot and compact the log."""
    driver = await _start(tmp_path, snapshot_interval_entries=100_000,
                          snapshot_interval_bytes=40_000)
    try:
        await _until_leader(driver)
        for sequence in range(1, 5):
            report = ReportSummary(node_id=1, source="web", sequence=sequence, lines=1,
                                   malformed=0, data=bytes(8_000), now_ms=sequence)
            assert isinstance(await driver.propose(report), Applied)
        assert driver.storage.snapshot().meta.index == 0  # 32 kB so far: not yet
        for sequence in range(5, 8):
            report = ReportSummary(node_id=1, source="web", sequence=sequence, lines=1,
                                   malformed=0, data=bytes(8_000), now_ms=sequence)
            await driver.propose(report)
        # The snapshot is serialised in a forked child: it lands a moment later.
        for _ in range(1000):
            if driver.storage.snapshot().meta.index >= 5 and driver.storage.first_index() > 1:
                break
            await asyncio.sleep(0.01)
        assert driver.storage.snapshot().meta.index >= 5
        assert driver.storage.first_index() > 1  # compacted
    finally:
        await _close(driver)


async def test_a_commit_index_alone_is_written_at_the_next_tick_and_on_stop(tmp_path: Path) -> None:
    """A Ready that only raises the commit index is not written on its own; the commit
    reaches the disk with the next save or at the next tick (5 ms here), and a stop
    writes what is left, so a restart finds every applied entry committed."""
    driver = await _start(tmp_path)
    try:
        await _until_leader(driver)
        await driver.propose(RegisterNode(node_id=5, capacity=2, lease_ms=1000, now_ms=1))
        for _ in range(100):  # 0.5 s: a hundred ticks
            if driver.storage.initial_state()[0].commit >= driver.applier.applied_index:
                break
            await asyncio.sleep(0.005)
        assert driver.storage.initial_state()[0].commit == driver.applier.applied_index
        results = await asyncio.gather(*(driver.propose(Heartbeat(node_id=5, now_ms=n))
                                         for n in range(20)))
        assert all(result == Applied(None) for result in results)
        applied = driver.applier.applied_index
    finally:
        await _close(driver)
    storage = DiskStorage.open(tmp_path, conf_state=ConfState(voters=(1,)))
    try:
        assert storage.initial_state()[0].commit == applied
    finally:
        storage.close()
