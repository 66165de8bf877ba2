"""bench-propose (warmd/runtime/commands/bench_load.py) and the driver's proposal timer, on a real
single-node driver with its disk log and transport."""

from __future__ import annotations

import asyncio
import gc
import random
from pathlib import Path

import pytest

from warmd.config_table import Address
from warmd.errors import AdminError
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.types import ConfState
from warmd.runtime.commands.bench_load import (
    BenchWrites,
    EntryMaker,
    GcTimer,
    LoadRequest,
    padded_entry,
    run_load,
    write_reply,
)
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.disk import DiskStorage
from warmd.runtime.node.driver import Driver, DriverOptions, ProposalTimeout
from warmd.runtime.node.transport import TcpTransport, TransportOptions
from warmd.statemachine.commands import Heartbeat, Session, decode_command, encode_command
from warmd.statemachine.machine import StateMachine


async def _started_driver(directory: Path, proposal_timeout_s: float = 5.0) -> Driver:
    storage = DiskStorage.open(directory, conf_state=ConfState(voters=(1,)))
    transport = TcpTransport(TransportOptions(cluster_id="t", node_id=1, secret=b"s" * 32))
    await transport.start()
    node = RaftNode(RaftConfig(node_id=1, election_timeout_ticks=4, heartbeat_ticks=1),
                    storage, random.Random(3))
    driver = Driver(node, storage, transport,
                    Applier(StateMachine(), {1: Address("127.0.0.1", 1)}),
                    DriverOptions(0.005, proposal_timeout_s, 100, "bench-test"))
    await driver.start()
    for _ in range(400):
        if driver.leader_id == 1:
            return driver
        await asyncio.sleep(0.005)
    raise AssertionError("the single node did not elect itself")


async def _stop(driver: Driver) -> None:
    await driver.stop()
    await driver.transport.close()
    driver.storage.close()


def test_entries_have_the_exact_size_and_decode_to_sessions() -> None:
    """Every entry is exactly size_bytes, even when the sequence's msgpack width grows."""
    for size_bytes in (100, 150, 300):
        maker = EntryMaker(7, "12.34", size_bytes)
        for sequence in (1, 2, 127, 128, 255, 256, 65535, 65536, 70000):
            data = maker.entry(sequence)
            assert len(data) == size_bytes
            command = decode_command(data)
            assert isinstance(command, Session) and command.sequence == sequence
            assert isinstance(command.command, Heartbeat) and command.command.node_id == 7


def test_too_small_an_entry_and_bad_arguments_are_refused() -> None:
    """A size below the envelope is a ValueError; bad admin arguments are bad_request."""
    with pytest.raises(ValueError, match="at least"):
        padded_entry(1, "1.1", 1, 50)
    for args in ({"count": 10, "size_bytes": 100},
                 {"count": 0, "size_bytes": 100, "concurrency": 1},
                 {"count": True, "size_bytes": 100, "concurrency": 1},
                 {"count": 10, "size_bytes": 99, "concurrency": 1},
                 {"count": 10, "size_bytes": 100, "concurrency": 10**6}):
        with pytest.raises(AdminError, match="must be"):
            LoadRequest.from_args(args)
    assert LoadRequest.from_args({"count": 5, "size_bytes": 100, "concurrency": 2}).count == 5


async def test_run_load_commits_every_write_durably(tmp_path: Path) -> None:
    """All proposals are applied (none rejected), the log holds them after a restart,
    and the latency percentiles are ordered."""
    driver = await _started_driver(tmp_path)
    try:
        report = await run_load(driver, LoadRequest(count=250, size_bytes=100, concurrency=16))
        assert report.rejected == 0
        assert report.last_index - report.first_index >= 250
        assert 0 < report.p50_ms <= report.p99_ms <= report.max_ms
        assert report.ops_per_s > 0
        applied = driver.applier.applied_index
    finally:
        await _stop(driver)
    restarted = await _started_driver(tmp_path)
    try:
        assert restarted.applier.applied_index >= applied - 100  # from the snapshot or replay
        assert restarted.node.status().commit >= applied
    finally:
        await _stop(restarted)


async def test_an_unanswered_request_times_out_and_cancellation_propagates(tmp_path: Path) -> None:
    """The timer fails a request that is never applied; a cancelled caller is not left waiting."""
    driver = await _started_driver(tmp_path, proposal_timeout_s=0.05)
    try:
        never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        with pytest.raises(ProposalTimeout, match=r"not applied within 0\.05 s"):
            await driver._wait(never, "proposal")
        pending: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        waiter = asyncio.create_task(driver._wait(pending, "proposal"))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert pending.cancelled()
    finally:
        await _stop(driver)


async def _write(writes: BenchWrites, args: dict[str, object]) -> None:
    """One bench-write as the admin server answers it: the proposal's future through
    `write_reply`, or the registering coroutine of the first writes."""
    outcome = writes.submit(args)
    if isinstance(outcome, asyncio.Future):
        await asyncio.wait([outcome])
        return write_reply(outcome)
    return await outcome


async def test_bench_write_commits_client_made_entries_once(tmp_path: Path) -> None:
    """bench-write registers the node once, commits one Session(Heartbeat) per request (the
    kept wire map gives the same bytes a fresh encode would), refuses a stale sequence with
    the state machine's reason and bad arguments as bad_request."""
    driver = await _started_driver(tmp_path)
    writes = BenchWrites(driver)
    client_id = "b1.0." + "x" * 40
    try:
        first = await driver.read()  # past the new leader's no-op
        await asyncio.gather(*(_write(writes, {"client_id": f"{client_id}{n}", "sequence": 1})
                               for n in range(8)))
        for sequence in (2, 3):
            await _write(writes, {"client_id": client_id + "0", "sequence": sequence})
        assert driver.applier.applied_index == first + 1 + 10  # RegisterNode, then 10 writes
        assert driver.node_id in driver.state.nodes
        cached = writes._entry({"client_id": client_id + "0", "sequence": 9})
        decoded = decode_command(cached)
        assert isinstance(decoded, Session) and decoded.sequence == 9
        fresh = Session(client_id=client_id + "0", sequence=9, command=Heartbeat(
            node_id=driver.node_id, now_ms=decoded.command.now_ms))  # type: ignore[union-attr]
        assert cached == encode_command(fresh)
        with pytest.raises(AdminError, match="older than the last applied") as stale:
            await _write(writes, {"client_id": client_id + "0", "sequence": 1})
        assert stale.value.code == "failed"
        for args in ({"client_id": client_id}, {"client_id": 5, "sequence": 1},
                     {"client_id": client_id, "sequence": 0}, {"client_id": "", "sequence": 1},
                     {"client_id": "x" * 300, "sequence": 1}):
            with pytest.raises(AdminError) as refused:
                await _write(writes, args)
            assert refused.value.code == "bad_request"
    finally:
        await _stop(driver)


def test_the_gc_timer_counts_collections_and_their_cpu_time() -> None:
    """bench-gc's timer charges each collection to its generation; a full collection over
    a heap of cycles takes measurable CPU time; closed, it counts no more."""
    timer = GcTimer()
    try:
        cycles = [[] for _ in range(200_000)]
        for cycle in cycles:
            cycle.append(cycle)
        del cycles
        gc.collect()
        report = timer.report()
        assert report["collections"][2] >= 1
        assert report["seconds"][2] > 0
        assert report["tracked"] > 0 and len(report["thresholds"]) == 3
    finally:
        timer.close()
    gc.collect()
    assert timer.report()["collections"] == report["collections"]
