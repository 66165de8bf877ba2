"""`bench-propose`: a closed-loop proposal load run inside the daemon, for bench/.

Why inside: one admin-socket round trip per proposal costs more CPU than the Raft write it
carries, so a client that drives proposals through the admin socket measures the socket, not
Raft. Here `concurrency` workers each keep one proposal in flight on the leader's driver:
every command is a real state-machine command (a Heartbeat of this node in a Session
envelope, padded through the client id to exactly `size_bytes` of entry data), every
acknowledgement arrives only after the entry is durable on a quorum (fsync on) and applied.
Latency is measured per proposal from `propose_data()` to its applied result, on the
daemon's monotonic clock: it excludes any client round trip (bench/ says so next to etcd's).

`bench-write`: the same entry, but one per admin request from a client process, so a bench
can measure the paths a user's writes take: to the leader's socket, or to a follower's, whose
driver forwards the proposal to the leader as an executor's are. It is pipelined (the admin
server runs many at once on one connection and replies by id) and answers once the entry is
durable on a quorum and applied on the node that was asked.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import msgpack

from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.codec import pack
from warmd.errors import AdminError
from warmd.raft.errors import RaftError
from warmd.runtime.commands.errors import admin_error, raft_errors
from warmd.runtime.node.driver import Driver
from warmd.statemachine.commands import (
    Heartbeat,
    InvalidCommand,
    RegisterNode,
    Session,
    encode_command,
)
from warmd.statemachine.state import ApplyResult, Rejected

COUNT_MAX = 2_000_000
CONCURRENCY_MAX = 4096
SIZE_BYTES_MIN = 100  # the largest bare Session(Heartbeat) envelope (~95 bytes) fits in this
SIZE_BYTES_MAX = 300  # the client id that pads the entry holds at most 256 characters
REGISTER_LEASE_MS = 600_000


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """count proposals of size_bytes each, concurrency of them in flight at once."""

    count: int
    size_bytes: int
    concurrency: int

    @staticmethod
    def from_args(args: Mapping[str, Any]) -> LoadRequest:
        """Validate admin arguments; bad ones are a `bad_request` naming the argument."""
        limits = {"count": (1, COUNT_MAX), "size_bytes": (SIZE_BYTES_MIN, SIZE_BYTES_MAX),
                  "concurrency": (1, CONCURRENCY_MAX)}
        values = {}
        for name, (low, high) in limits.items():
            value = args.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise AdminError(ErrorCode.BAD_REQUEST, f"{name} must be {low}..{high}, got {value!r}")
            values[name] = value
        return LoadRequest(**values)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What the run measured; latencies in milliseconds, from proposal to applied result."""

    count: int
    size_bytes: int
    concurrency: int
    rejected: int
    elapsed_s: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    first_index: int
    last_index: int


def padded_entry(node_id: int, worker: str, sequence: int, size_bytes: int,
                 now_ms: int = 0) -> bytes:
    """A Session(Heartbeat) entry of exactly `size_bytes` (the client id absorbs the padding);
    `now_ms` is the heartbeat's stamp (a hint the state machine shows, never judges).

    Raises:
        ValueError: `size_bytes` is too small for the envelope.
    """
    def encode(padding: int) -> bytes:
        client_id = f"b{worker}." + "x" * padding
        heartbeat = Heartbeat(node_id=node_id, now_ms=now_ms)
        return encode_command(Session(client_id=client_id, sequence=sequence, command=heartbeat))

    bare = len(encode(0))
    if bare > size_bytes:
        raise ValueError(f"an entry needs at least {bare} bytes, asked for {size_bytes}")
    data = encode(size_bytes - bare)
    if len(data) != size_bytes:  # msgpack's string header grew past 31 bytes; take it back
        data = encode(size_bytes - bare - (len(data) - size_bytes))
    return data


class EntryMaker:
    """One worker's entries: sequence 1, 2, 3 ... of the same padded Session(Heartbeat).

    Building and validating the dataclasses per entry cost a third of the leader's CPU in
    a profile, so the validated wire map is kept and only its sequence changes; when the
    sequence's msgpack width changes, the entry is rebuilt (and validated) at the new width.
    """

    def __init__(self, node_id: int, worker: str, size_bytes: int, now_ms: int = 0) -> None:
        self._node_id, self._worker, self._size_bytes = node_id, worker, size_bytes
        self._now_ms = now_ms
        self._wire: dict[str, Any] = {}

    def entry(self, sequence: int) -> bytes:
        if self._wire:
            self._wire["sequence"] = sequence
            data = pack(self._wire)
            if len(data) == self._size_bytes:
                return data
        data = padded_entry(self._node_id, self._worker, sequence, self._size_bytes,
                            self._now_ms)
        self._wire = msgpack.unpackb(data, raw=False)
        return data


def percentile_ms(sorted_s: list[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted durations in seconds, in milliseconds."""
    if not sorted_s:
        return 0.0
    rank = min(len(sorted_s) - 1, max(0, int(fraction * len(sorted_s) + 0.999999) - 1))
    return round(sorted_s[rank] * 1000, 3)


async def register_node(driver: Driver) -> None:
    """Register this node (capacity 0: never scheduled) unless it is known: the heartbeats
    the benches propose are refused for an unknown node."""
    if driver.node_id not in driver.state.nodes:
        await driver.propose(RegisterNode(node_id=driver.node_id, capacity=0,
                                          lease_ms=REGISTER_LEASE_MS,
                                          now_ms=driver.clock.wall_ms()))


async def run_load(driver: Driver, request: LoadRequest) -> LoadReport:
    """Run the closed loop on this node's driver; see the module docstring."""
    node_id = driver.node_id
    await register_node(driver)
    first_index = driver.applier.applied_index
    remaining = [request.count]
    latencies_s: list[float] = []
    rejected = [0]
    started_s = time.perf_counter()
    run_tag = int(started_s * 1000) % 1000  # distinct client ids across runs, mostly

    async def worker(worker_id: int) -> None:
        maker, sequence = EntryMaker(node_id, f"{run_tag}.{worker_id}", request.size_bytes,
                                     driver.clock.wall_ms()), 0
        while remaining[0] > 0:
            remaining[0] -= 1
            sequence += 1
            data = maker.entry(sequence)
            sent_s = time.perf_counter()
            result = await driver.propose_data(data)
            latencies_s.append(time.perf_counter() - sent_s)
            rejected[0] += isinstance(result, Rejected)

    tasks = [asyncio.create_task(worker(worker_id)) for worker_id in range(request.concurrency)]
    try:
        await asyncio.gather(*tasks)
    finally:  # one failed proposal ends the run: stop the other workers too
        for task in tasks:
            task.cancel()
    elapsed_s = time.perf_counter() - started_s
    latencies_s.sort()
    return LoadReport(
        count=request.count, size_bytes=request.size_bytes, concurrency=request.concurrency,
        rejected=rejected[0], elapsed_s=round(elapsed_s, 4),
        ops_per_s=round(request.count / elapsed_s, 1), p50_ms=percentile_ms(latencies_s, 0.50),
        p99_ms=percentile_ms(latencies_s, 0.99), max_ms=percentile_ms(latencies_s, 1.0),
        first_index=first_index, last_index=driver.applier.applied_index,
    )


class BenchWrites:
    """`bench-write`: one client-made Session(Heartbeat) entry per request (module docstring).

    Like EntryMaker, the validated wire map of each client id is kept (up to CLIENTS_KEPT of
    them) and only its sequence and stamp change: building and validating the dataclasses
    per request was a tenth of a loaded follower's CPU (profiled). Every node still
    decodes and validates the entry when it applies it.
    """

    CLIENTS_KEPT = 8192

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._registering = asyncio.Lock()  # a thousand first requests register the node once
        self._wires: dict[str, dict[str, Any]] = {}

    def submit(self, args: Mapping[str, Any]
               ) -> asyncio.Future[ApplyResult] | Awaitable[None]:
        """Propose the request's entry: the proposal's future, which the admin server answers
        through `write_reply` from its callback (no task, no second future per request), or,
        until this node is registered, a coroutine that registers it first.

        Raises:
            AdminError: (bad_request) bad arguments; (unavailable) the driver is stopped.
        """
        data = self._entry(args)
        if self._driver.node_id not in self._driver.state.nodes:
            return self._register_then_write(data)
        try:
            return self._driver.propose_data_soon(data)
        except RaftError as error:
            raise admin_error(error) from None

    async def _register_then_write(self, data: bytes) -> None:
        async with raft_errors():
            async with self._registering:  # a thousand first requests register once
                await register_node(self._driver)
            result = await self._driver.propose_data(data)
        if isinstance(result, Rejected):
            raise AdminError(ErrorCode.FAILED, f"bench write rejected: {result.reason}")

    def _entry(self, args: Mapping[str, Any]) -> bytes:
        """The entry for `client_id` (its length sets the entry's size) and `sequence`."""
        client_id, sequence = args.get("client_id"), args.get("sequence")
        if (not isinstance(client_id, str) or not isinstance(sequence, int)
                or isinstance(sequence, bool) or sequence < 1):
            raise AdminError(ErrorCode.BAD_REQUEST,
                             "bench-write needs client_id (text) and sequence (integer >= 1)")
        now_ms = self._driver.clock.wall_ms()
        wire = self._wires.get(client_id)
        if wire is None:
            heartbeat = Heartbeat(node_id=self._driver.node_id, now_ms=now_ms)
            try:
                data = encode_command(Session(client_id=client_id, sequence=sequence,
                                              command=heartbeat))
            except InvalidCommand as error:
                raise AdminError(ErrorCode.BAD_REQUEST, str(error)) from None
            if len(self._wires) >= self.CLIENTS_KEPT:
                self._wires.clear()
            self._wires[client_id] = msgpack.unpackb(data, raw=False)
            return data
        wire["sequence"] = sequence
        wire["command"]["now_ms"] = now_ms
        return pack(wire)


def write_reply(proposal: asyncio.Future[ApplyResult]) -> None:
    """A bench write's reply once its proposal is done: None once applied, else raises the
    error a client sees (a Raft error's own code, `failed` for a refused entry)."""
    error = proposal.exception()
    if isinstance(error, RaftError):
        raise admin_error(error)
    if error is not None:
        raise error
    if isinstance(result := proposal.result(), Rejected):
        raise AdminError(ErrorCode.FAILED, f"bench write rejected: {result.reason}")


class GcTimer:
    """`bench-gc`: the cyclic garbage collector's runs and CPU time in this process so far.

    A bench reads it before and after a load to charge the collector's time per write
    (gc.callbacks; the timer is installed by the first call, so a daemon nobody benches
    pays nothing). The time is the collecting thread's CPU time (a collection holds the
    GIL), so a process preempted mid-collection is not charged for the wait.
    """

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started_s = 0.0
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started_s = time.thread_time()
            return
        generation = info["generation"]
        self.seconds[generation] += time.thread_time() - self._started_s
        self.collections[generation] += 1

    def close(self) -> None:
        """Stop timing (tests; a daemon keeps its timer for its life)."""
        gc.callbacks.remove(self._on_collection)

    def report(self) -> dict[str, Any]:
        return {"collections": list(self.collections),
                "seconds": [round(seconds, 6) for seconds in self.seconds],
                "thresholds": list(gc.get_threshold()), "frozen": gc.get_freeze_count(),
                "tracked": len(gc.get_objects())}


def register_bench_commands(server: AdminServer, driver: Driver) -> None:
    """Add `bench-propose`, `bench-write` and `bench-gc` (the collector's figures and the
    Raft messages sent and received so far) to the admin socket (0600: only the operator
    can load the node)."""
    async def bench_propose(args: Mapping[str, Any]) -> dict[str, Any]:
        request = LoadRequest.from_args(args)
        async with raft_errors():
            report = await run_load(driver, request)
        return asdict(report)

    server.register("bench-propose", bench_propose,
                    summary="propose COUNT durable SIZE-byte commands, CONCURRENCY in flight")
    server.register("bench-write", BenchWrites(driver).submit, pipelined=True, reply=write_reply,
                    summary="one durable heartbeat entry named CLIENT_ID/SEQUENCE (pipelined)")
    timer: list[GcTimer] = []

    async def bench_gc(args: Mapping[str, Any]) -> dict[str, Any]:
        if not timer:
            timer.append(GcTimer())
        peers = driver.transport.statistics()  # Raft messages, to count them per write
        return {**timer[0].report(), "frames_out": peers.total("frames_out"),
                "frames_in": peers.total("frames_in")}

    server.register("bench-gc", bench_gc,
                    summary="the garbage collector's runs and seconds since the first call")
