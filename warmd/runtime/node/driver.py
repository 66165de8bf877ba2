"""Driver: the one asyncio task that owns a RaftNode and does its I/O.

Ticks, received messages and local requests (proposals, reads, membership changes,
transfers) all go through one queue into one task, so the core is never touched
concurrently. Storage writes are asynchronous (etcd's AsyncStorageWrites; docs/raft.md):
a Ready's save goes to the writer thread (writer.py, one fsync for all the saves queued
behind the one being synced) and the driver goes on stepping messages, ticks and
proposals into the core while it runs. At once it sends the Ready's `early_messages` (a
leader's appends and heartbeats, a follower's forwarded requests), applies its committed
entries (the core hands out only entries durable here) and notes ReadIndex answers; once
the save and every earlier one have returned, it sends the rest of the messages
(acknowledgements and votes: nothing that speaks for this node's disk leaves before the
fsync) and calls `advance`, in order. A Ready that installs a snapshot or overwrites
entries already handed to the writer waits until the saves before it are settled, and
is settled before the next Ready is made.

A failed disk write (DiskFailed) or a broken invariant ends the task; the daemon
watches `Driver.finished` and exits, because a node that cannot persist must not vote.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from warmd import metrics
from warmd.clock import Clock, SystemClock
from warmd.config_table import Address
from warmd.errors import InvariantViolation, WarmdError
from warmd.logging import get_logger
from warmd.raft.confchange import encode_conf_change
from warmd.raft.core import RaftNode
from warmd.raft.errors import NotLeader, ProposalDropped, RaftError, SnapshotOutOfDate
from warmd.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    HardState,
    Message,
    Ready,
    Role,
    Snapshot,
)
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.changes import ChangeFeed
from warmd.runtime.node.deadlines import Deadlines
from warmd.runtime.node.disk import DiskStorage
from warmd.runtime.node.forked import ForkedJob, ForkedJobFailed, start_forked
from warmd.runtime.node.status import DriverStatus, build_status
from warmd.runtime.node.transport import Transport
from warmd.runtime.node.writer import WriterClosed, WriterThread
from warmd.statemachine.commands import Command, Session, encode_command
from warmd.statemachine.state import ApplyResult, MachineState
from warmd.statemachine.topics import Topic

__all__ = ["Driver", "DriverOptions", "DriverStopped", "NotLeader", "ProposalDropped",
           "ProposalTimeout"]

_log = get_logger("warmd.driver")
_T = TypeVar("_T")
EVENT_QUEUE_CAPACITY = 16384
EVENTS_PER_BATCH_MAX = 4096  # events taken before the next Ready, so ticks stay prompt
READYS_IN_FLIGHT_MAX = 64  # Readys handed to the writer and not yet settled (bounds memory)


class ProposalTimeout(RaftError):
    """The request was not committed and applied in time (no quorum, or a forward was lost)."""


class DriverStopped(RaftError):
    """The driver is stopping or has failed; the request was not (or may not have been) done."""


@dataclass(frozen=True, slots=True)
class DriverOptions:
    """tick_interval_s: one core tick; proposal_timeout_s: how long a request may wait;
    snapshot_interval_entries / _bytes: snapshot and compact after this many applied entries
    or bytes of entries, whichever first (a few large entries, such as analysis summaries,
    must not grow the log for hours); client_id: names this process's proposals (unique per
    start, for exactly-once)."""

    tick_interval_s: float
    proposal_timeout_s: float
    snapshot_interval_entries: int
    client_id: str
    snapshot_interval_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.tick_interval_s <= 0 or self.proposal_timeout_s <= 0:
            raise ValueError("tick_interval_s and proposal_timeout_s must be positive")
        if self.snapshot_interval_entries < 1:
            raise ValueError("snapshot_interval_entries must be at least 1")


@dataclass(frozen=True, slots=True)
class _Call:
    """Run `function` on the driver task and hand its result (or error) to `future`."""

    function: Callable[[], Any]
    future: asyncio.Future[Any]


@dataclass(frozen=True, slots=True)
class _Propose:
    """Propose `data` on the driver task; a refusal fails `future`, the applier resolves it.

    One future per proposal instead of a _Call's plus the applier's: a proposal then costs
    one task wake-up, not two (profiled: the proposal path is the leader's busiest code)."""

    data: bytes
    future: asyncio.Future[ApplyResult]


@dataclass(slots=True)
class _InFlight:
    """A Ready handed out: its save on the writer thread (None: nothing to write) and the
    messages that may leave only once it is durable."""

    ready: Ready
    saving: asyncio.Future[None] | None
    held: tuple[Message, ...]
    started_s: float


_TICK = object()
_STOP = object()
_SAVED = object()  # a save returned: settle what is durable (no-op as an event)


def _held(ready: Ready) -> tuple[Message, ...]:
    """The Ready's messages that must wait until it is durable (all but early_messages)."""
    early = ready.early_messages
    if not early:
        return ready.messages
    if len(early) == len(ready.messages):
        return ()
    early_ids = {id(message) for message in early}
    return tuple(message for message in ready.messages if id(message) not in early_ids)


class Driver:
    """Runs one RaftNode; see the module docstring. `start()`, then the async API, then `stop()`."""

    def __init__(self, node: RaftNode, storage: DiskStorage, transport: Transport,
                 applier: Applier, options: DriverOptions, clock: Clock | None = None) -> None:
        self.node = node
        self.storage = storage
        self.transport = transport
        self.applier = applier
        self.options = options
        self._clock = clock or SystemClock()
        self._events: asyncio.Queue[Any] = asyncio.Queue(EVENT_QUEUE_CAPACITY)
        self._writer = WriterThread("raft-disk")
        # Snapshot files are written beside the log writer, so appends never queue behind one.
        self._snapshot_writer = ThreadPoolExecutor(max_workers=1,
                                                   thread_name_prefix="raft-snapshot")
        self._sequence = itertools.count(1)
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._reads_leader = node.leader_id  # the leader the pending reads were asked of
        self._read_points: list[tuple[int, bytes]] = []
        self._last_contact_s: dict[int, float] = {}
        self._latest_snapshot = storage.snapshot()
        self._applied_bytes = 0  # entry bytes applied since the latest snapshot
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight: collections.deque[_InFlight] = collections.deque()
        self._last_saved_index = storage.last_index()  # the last entry handed to the writer
        self._unsaved_hard_state: HardState | None = None  # a new commit not yet written
        self._late_saves: set[asyncio.Future[None]] = set()
        self._late_save_failure: BaseException | None = None
        self._putting: set[asyncio.Future[None]] = set()  # proposals waiting for queue room
        self._deadlines = Deadlines(options.proposal_timeout_s, self._timeout_error)
        self._loop: asyncio.AbstractEventLoop | None = None  # the running loop, from start()
        self._stopping = False
        self.finished: asyncio.Task[None] | None = None
        self.on_state_change: Callable[[DriverStatus], object] | None = None
        self._snapshot_task: asyncio.Task[Snapshot | None] | None = None
        self._compactions: set[asyncio.Future[None]] = set()  # snapshot files being written
        self.removed = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Restore the state machine from the storage's snapshot and start the task."""
        if self._latest_snapshot.meta.index > self.applier.applied_index:
            await self.applier.restore_in_steps(self._latest_snapshot)
        self._update_peers()
        # Kept: asyncio.get_running_loop() makes a getpid() system call per use on 3.11.
        self._loop = asyncio.get_running_loop()
        self.finished = asyncio.create_task(self._run(), name="raft-driver")
        self.transport.deliver_to(self._deliver)
        self._tasks = [
            asyncio.create_task(self._tick_forever(), name="raft-ticker"),
            asyncio.create_task(self._receive_forever(), name="raft-receiver"),
        ]

    async def stop(self) -> None:
        """Finish the Ready in hand, stop the task and fail every waiting request."""
        self._stopping = True
        self.transport.deliver_to(None)
        snapshotting = [self._snapshot_task] if self._snapshot_task is not None else []
        for task in [*self._tasks, *snapshotting]:
            task.cancel()
        for putting in self._putting:
            putting.cancel()
        await asyncio.gather(*self._tasks, *snapshotting, return_exceptions=True)
        if self.finished is not None:
            if not self.finished.done():
                await self._events.put(_STOP)
            await asyncio.gather(self.finished, return_exceptions=True)  # also retrieves a failure
        await asyncio.gather(*self._compactions, return_exceptions=True)
        # Saves still in flight are awaited here, not in close()'s join: on a frozen disk
        # they never return, and the loop must stay free for a second stop signal.
        with contextlib.suppress(WriterClosed):
            self._save_commit_late()
        await asyncio.gather(*(item.saving for item in self._in_flight
                               if item.saving is not None), *self._late_saves,
                             return_exceptions=True)
        self._snapshot_writer.shutdown(wait=True)
        self._writer.close()
        self._fail_waiting(DriverStopped("the node is shutting down"))

    def _fail_waiting(self, error: BaseException) -> None:
        while not self._events.empty():  # requests queued behind the stop are never run
            event = self._events.get_nowait()
            if isinstance(event, (_Call, _Propose)) and not event.future.done():
                event.future.set_exception(error)
        self.applier.fail_all(error)
        for future in self._reads.values():
            if not future.done():
                future.set_exception(error)
        self._reads.clear()
        self._deadlines.clear()

    # ------------------------------------------------------------------ the task

    async def _run(self) -> None:
        try:
            while True:
                event = await self._events.get()
                if event is _STOP:
                    return
                self._handle(event)
                for _ in range(EVENTS_PER_BATCH_MAX):
                    if self._events.empty():
                        break
                    event = self._events.get_nowait()
                    if event is _STOP:
                        return
                    self._handle(event)
                if self._late_save_failure is not None:
                    raise self._late_save_failure  # as a failed save in _finish: DiskFailed
                await self._settle_durable()
                while self.node.has_ready():
                    await self._handle_ready(self.node.ready())
                    await self._settle_durable()
        except BaseException as error:
            if not isinstance(error, asyncio.CancelledError):
                _log.error("driver_failed", error=str(error), kind=type(error).__name__)
                self._fail_waiting(DriverStopped(f"the driver failed: {error}"))
            raise

    def _handle(self, event: Any) -> None:
        if event is _SAVED:
            return  # _run settles the durable Readys after the batch
        if event is _TICK:
            self.node.tick()
            self._save_commit_late()
        elif isinstance(event, Message):
            try:
                self.node.step(event)
            except (TypeError, ValueError, WarmdError) as error:
                _log.warning("message_refused", kind=event.type.name, from_id=event.from_id,
                             error=str(error))
        elif isinstance(event, _Propose):
            self._propose(event)
        elif isinstance(event, _Call):
            if event.future.done():
                return  # the caller gave up already
            try:
                event.future.set_result(event.function())
            except InvariantViolation:
                raise
            except Exception as error:
                event.future.set_exception(error)

    async def _handle_ready(self, ready: Ready) -> None:
        """Start a Ready: early messages, its save, its (durable) committed entries."""
        barrier = ready.snapshot is not None or (
            bool(ready.entries) and ready.entries[0].index <= self._last_saved_index)
        if barrier:
            # A snapshot install or an overwritten suffix: the saves before it are settled
            # first, so the disk, the core's stable marks and the state machine never see
            # it interleaved with older writes.
            await self._settle_durable(wait_for=len(self._in_flight))
        elif len(self._in_flight) >= READYS_IN_FLIGHT_MAX:
            await self._settle_durable(wait_for=1)
        if ready.early_messages:
            metrics.heartbeats.sent(ready.early_messages, self._clock.monotonic())
            await self.transport.send(ready.early_messages)
        saving = self._start_save(ready)
        self._in_flight.append(_InFlight(ready, saving, _held(ready), self._clock.monotonic()))
        self._apply(ready)  # durable here already: applying need not wait for this fsync
        self._note_reads(ready)
        for lost in ready.lost_entries:
            _log.warning("follower_lost_entries", peer_id=lost.node_id,
                         first_index=lost.first_index, last_index=lost.last_index,
                         hint="its disk lost acknowledged entries; it is not counted toward "
                              "commit until it has them again (docs/raft.md)")
        if ready.compaction is not None:
            # Written behind the driver's back: a big snapshot file and its fsync take a
            # second, and the driver must go on ticking, heartbeating and appending meanwhile
            # (the file on a thread of its own, then the quick compaction in the log writer's
            # order); until it is done the log simply keeps the entries the snapshot covers.
            persisting = asyncio.ensure_future(self._persist_compaction(ready.compaction))
            self._compactions.add(persisting)
            persisting.add_done_callback(self._compactions.discard)
        if ready.soft_state is not None:
            self._fail_reads_of_old_leader(ready.soft_state.leader_id)
            self._on_soft_state()
        if barrier:
            await self._settle_durable(wait_for=len(self._in_flight))

    async def _settle_durable(self, wait_for: int = 0) -> None:
        """Finish the Readys whose saves (and all earlier ones) have returned, oldest
        first: send what waited for the fsync, install a snapshot, `advance`. First wait
        until at least the oldest `wait_for` of them are durable.

        Raises:
            DiskFailed: a save failed (the driver ends: a node that cannot persist must
                not acknowledge).
        """
        in_flight = self._in_flight
        while in_flight:
            head = in_flight[0]
            if head.saving is not None and not head.saving.done():
                if wait_for <= 0:
                    return
                await asyncio.wait((head.saving,))
            wait_for -= 1
            in_flight.popleft()
            await self._finish(head)

    async def _finish(self, done: _InFlight) -> None:
        ready = done.ready
        if done.saving is not None:
            done.saving.result()
            metrics.WAL_FSYNC.observe(self._clock.monotonic() - done.started_s)
        if done.held:
            metrics.heartbeats.sent(done.held, self._clock.monotonic())
            await self.transport.send(done.held)
        if ready.snapshot is not None:
            await self.applier.restore_in_steps(ready.snapshot)
            self._latest_snapshot = ready.snapshot
            self._update_peers()
        self.node.advance(ready)
        metrics.COMMIT_DURATION.observe(self._clock.monotonic() - done.started_s)
        self._snapshot_if_due()

    def _start_save(self, ready: Ready) -> asyncio.Future[None] | None:
        """Queue the Ready's entries and states on the writer thread; None if nothing to.

        Written without a sync of its own: the writer syncs once after the saves queued
        together, and settles none of them before that sync has returned.

        A Ready that changes only the commit index (volatile state in Raft, Figure 2) is
        not written on its own: its hard state goes with the next save, or at the next
        tick (`_save_commit_late`). Written on its own it cost a hand-off to the writer
        thread and back per commit advance: 6-7 % of the members' CPU per write through a
        follower at 64 in flight (docs/benchmarks.md, "Session 8"). A lower commit on
        disk is always safe: a restarted node learns the rest from the leader; only
        `warmd recover`, which keeps the log up to the commit on disk, may keep up to
        one tick's commits fewer after a crash."""
        hard_state = ready.hard_state
        if not ready.must_sync:
            if hard_state is not None:  # only a new commit index: written later (below)
                self._unsaved_hard_state = hard_state
            return None
        if hard_state is None:
            hard_state = self._unsaved_hard_state
        self._unsaved_hard_state = None
        if ready.snapshot is not None:
            self._last_saved_index = ready.snapshot.meta.index
        if ready.entries:
            self._last_saved_index = ready.entries[-1].index
        sync = self.storage.sync if ready.must_sync else None
        if ready.snapshot is None:  # merged with the saves queued beside it: one write
            saving = self._writer.run_merged(self.storage.save_all,
                                             (hard_state, ready.entries), sync=sync)
        else:
            saving = self._writer.run(self.storage.save, hard_state, ready.entries,
                                      ready.snapshot, False, sync=sync)
        saving.add_done_callback(self._wake)
        return saving

    def _save_commit_late(self) -> None:
        """Write a commit index no save has carried yet (each tick, and on stop)."""
        hard_state, self._unsaved_hard_state = self._unsaved_hard_state, None
        if hard_state is None:
            return
        saving = self._writer.run_merged(self.storage.save_all, (hard_state, ()))
        self._late_saves.add(saving)
        saving.add_done_callback(self._late_save_done)

    def _late_save_done(self, saving: asyncio.Future[None]) -> None:
        self._late_saves.discard(saving)
        if not saving.cancelled() and saving.exception() is not None:
            self._late_save_failure = saving.exception()
            self._wake(saving)

    def _wake(self, _saving: asyncio.Future[None]) -> None:
        """A save returned: let the task settle it (a full queue wakes the task anyway)."""
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(_SAVED)

    def _apply(self, ready: Ready) -> None:
        outcome = self.applier.apply(ready.committed_entries)
        self._applied_bytes += sum(len(entry.data) for entry in ready.committed_entries)
        if outcome.membership_changed:
            self._on_membership_changed(outcome.removed_ids)

    async def _on_writer(self, function: Callable[..., _T], *args: Any) -> _T:
        return await self._writer.run(function, *args)

    async def _persist_compaction(self, snapshot: Snapshot) -> None:
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._snapshot_writer, self.storage.write_snapshot_file,
                                       snapshot)
            await self._on_writer(self.storage.adopt_snapshot, snapshot)
        except SnapshotOutOfDate as error:
            _log.info("snapshot_skipped", index=snapshot.meta.index, reason=str(error))
        except Exception as error:  # a disk failure also fails the next save, which stops us
            _log.error("snapshot_persist_failed", index=snapshot.meta.index, error=str(error),
                       kind=type(error).__name__)

    def _on_membership_changed(self, removed_ids: tuple[int, ...]) -> None:
        self._update_peers()
        if self.node.id in removed_ids:
            self.removed = True
            _log.warning("removed_from_cluster", node_id=self.node.id)

    def _on_soft_state(self) -> None:
        status = self.node.status()
        metrics.leader_seen(status.leader_id)
        _log.info("raft_state_changed", node_id=self.node.id, role=status.role.name.lower(),
                  term=status.term, leader_id=status.leader_id)
        self.applier.changes.publish({Topic.LEADERSHIP})
        if self.on_state_change is not None:
            self.on_state_change(self.status())

    def _update_peers(self) -> None:
        self.transport.update_peers(
            {node_id: (address.host, address.port)
             for node_id, address in self.applier.addresses.items()}
        )

    # ------------------------------------------------------------------ ticks and messages

    async def _tick_forever(self) -> None:
        interval_s = self.options.tick_interval_s
        while True:
            await self._clock.sleep(interval_s)
            self._deadlines.sweep(self._clock.monotonic())
            if not self._events.full():
                self._events.put_nowait(_TICK)

    async def _receive_forever(self) -> None:
        """What came through `received()`: messages queued before `deliver_to`, and all of
        them from a transport that delivers only there."""
        async for message in self.transport.received():
            await self._deliver(message)

    async def _deliver(self, message: Message) -> None:
        now_s = self._last_contact_s[message.from_id] = self._clock.monotonic()
        metrics.heartbeats.received(message, now_s)
        await self._events.put(message)

    # ------------------------------------------------------------------ reads

    def _note_reads(self, ready: Ready) -> None:
        for read_state in ready.read_states:
            if read_state.context in self._reads:
                self._read_points.append((read_state.index, read_state.context))
        if not self._read_points:
            return
        applied, still_waiting = self.applier.applied_index, []
        for index, context in self._read_points:
            future = self._reads.pop(context, None) if index <= applied else None
            if index > applied:
                still_waiting.append((index, context))
            elif future is not None and not future.done():
                future.set_result(index)
        self._read_points = still_waiting

    def _fail_reads_of_old_leader(self, leader_id: int) -> None:
        """The leader changed (we stepped down, or another won): a read it had not answered
        yet never will be (a new leader does not know its heartbeat round), so fail it now
        with a retryable error rather than let it wait out the proposal timeout. A read
        already given its read index only waits for our apply and stays."""
        if leader_id == self._reads_leader:
            return
        self._reads_leader = leader_id
        answered = {context for _, context in self._read_points}
        for context, future in self._reads.items():
            if context not in answered and not future.done():
                future.set_exception(ProposalDropped(
                    ProposalDropped.NO_LEADER,
                    f"the leader changed (now {leader_id or 'unknown'}) before the read was "
                    "answered; retry it"))

    async def read(self) -> int:
        """A linearizable read point (ReadIndex): once this returns, the local state machine
        reflects every write committed before the call; returns that applied index.

        Raises:
            ProposalDropped (no leader, or the leader changed before answering: retry),
            ProposalTimeout, DriverStopped.
        """
        context = f"{self.options.client_id}:read:{next(self._sequence)}".encode()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[context] = future
        try:
            await self._call(lambda: self.node.read_index(context))
            return await self._wait(future, "read")
        finally:
            self._reads.pop(context, None)

    # ------------------------------------------------------------------ proposals

    def _check_running(self) -> None:
        if self._stopping or self.finished is None or self.finished.done():
            raise DriverStopped("the node is not running")

    def _propose(self, event: _Propose) -> None:
        if event.future.done():
            return  # the caller gave up already
        try:
            self.node.propose(event.data)
        except InvariantViolation:
            raise
        except Exception as error:
            event.future.set_exception(error)

    async def _call(self, function: Callable[[], _T]) -> _T:
        self._check_running()
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        await self._events.put(_Call(function, future))
        return await future

    async def _wait(self, future: asyncio.Future[_T], what: str) -> _T:
        """Await a request's own future, failing it with ProposalTimeout when time is up.

        The tick's deadline sweep fails the future itself, not wait_for(shield(...)): those
        cost two extra futures and a task wake-up per proposal, ~10% of a loaded leader's
        CPU (profiled). The future belongs to this one request, so cancelling or failing it
        is safe; the applier and the read bookkeeping skip futures that are already done.
        """
        self._deadlines.add(self._clock.monotonic(), future, what)
        return await future

    def _timeout_error(self, what: str) -> ProposalTimeout:
        return ProposalTimeout(f"{what} not applied within {self.options.proposal_timeout_s:g} s "
                               f"(leader {self.node.leader_id or 'unknown'})")

    async def propose(self, command: Command) -> ApplyResult:
        """Replicate a state machine command once (session envelope) and return its result.

        Raises:
            ProposalDropped: no leader, a transfer in progress, not a member, ...
            NotLeader: this node does not forward and is not the leader.
            ProposalTimeout, DriverStopped.
        """
        envelope = Session(client_id=self.options.client_id, sequence=next(self._sequence),
                           command=command)
        return await self.propose_data(encode_command(envelope))

    async def propose_data(self, data: bytes) -> ApplyResult:
        """Replicate raw entry bytes; the result of the first entry with these bytes."""
        return await self.propose_data_soon(data)

    def propose_data_soon(self, data: bytes) -> asyncio.Future[ApplyResult]:
        """`propose_data` without a coroutine: the future of the entry's result, failed with
        ProposalTimeout when time is up (or the refusal). A caller with many proposals in
        flight adds callbacks instead of awaiting each in a task (the admin server's
        pipelined requests: a task per proposal was a tenth of a follower's CPU).
        Cancelling the future withdraws the wait, not the proposal.

        Raises:
            DriverStopped: the driver is not running.
        """
        self._check_running()
        future = self.applier.wait_for(data, self._loop)
        self._deadlines.add(self._clock.monotonic(), future, "proposal")
        future.add_done_callback(functools.partial(self._proposal_done, data))
        event = _Propose(data, future)
        try:
            self._events.put_nowait(event)
        except asyncio.QueueFull:  # the queue applies back-pressure: wait for room in a task
            putting = asyncio.ensure_future(self._events.put(event))
            self._putting.add(putting)
            putting.add_done_callback(self._putting.discard)
        return future

    def _proposal_done(self, data: bytes, future: asyncio.Future[ApplyResult]) -> None:
        self.applier.forget(data, future)
        error = None if future.cancelled() else future.exception()
        if isinstance(error, RaftError):
            metrics.proposal_failed(error)

    # ------------------------------------------------------------------ membership

    async def add_learner(self, node_id: int, address: Address) -> ConfState:
        """Add a non-voting member that will receive the log (then `promote` it).

        Raises (as every membership change):
            ProposalDropped: refused by the core (pending change, lagging learner, invalid).
            ProposalTimeout, DriverStopped.
        """
        known = node_id in self.applier.addresses
        self.applier.addresses.setdefault(node_id, address)
        self._update_peers()  # so the leader reaches it as soon as the change is appended
        try:
            change = ConfChange(ConfChangeType.ADD_LEARNER, node_id, str(address).encode())
            return await self._change(change)
        except BaseException:
            if not known:
                self.applier.addresses.pop(node_id, None)
                self._update_peers()
            raise

    async def promote(self, node_id: int) -> ConfState:
        """Make a caught-up learner a voter (the core refuses a lagging one)."""
        return await self._change(ConfChange(ConfChangeType.ADD_VOTER, node_id))

    async def remove(self, node_id: int) -> ConfState:
        """Remove a voter or learner; a removed leader hands over leadership first."""
        return await self._change(ConfChange(ConfChangeType.REMOVE_NODE, node_id))

    async def _change(self, change: ConfChange) -> ConfState:
        data = encode_conf_change(change)
        future = self.applier.wait_for(data)
        try:
            await self._call(lambda: self.node.propose_conf_change(change))
            await self._wait(future, "membership change")
        finally:
            self.applier.forget(data, future)
        return self.node.conf_state

    async def transfer_leadership(self, target_id: int | None = None) -> int:
        """Hand leadership to `target_id` (default: the most caught-up other voter); returns
        the new leader once it leads. Raises NotLeader when no target is given on a follower."""
        if target_id is None:
            target_id = await self._call(self._best_transferee)
        await self._call(lambda: self.node.transfer_leadership(target_id))
        deadline_s = self._clock.monotonic() + self.options.proposal_timeout_s
        leadership = self.changes.subscribe({Topic.LEADERSHIP})
        try:
            while (left_s := deadline_s - self._clock.monotonic()) > 0:
                if self.node.leader_id == target_id:
                    return target_id
                await leadership.wait(left_s)
        finally:
            leadership.close()
        raise ProposalTimeout(f"node {target_id} did not take over leadership in time")

    def _best_transferee(self) -> int:
        status = self.node.status()
        if status.role != Role.LEADER:
            raise NotLeader(status.leader_id)
        candidates = [peer for peer in status.progress
                      if peer.node_id != self.node.id and not peer.is_learner]
        if not candidates:
            raise ProposalDropped(ProposalDropped.NOT_A_VOTER, "no other voter to transfer to")
        return max(candidates, key=lambda peer: (peer.match, -peer.node_id)).node_id

    # ------------------------------------------------------------------ snapshots

    def _snapshot_if_due(self) -> None:
        """Snapshot every `snapshot_interval_entries` (or bytes), in a forked child so that
        serialising a big state never stalls the loop; one at a time. While the core cannot
        snapshot yet (a blank joiner, docs/raft.md) skip quietly and try after the next Ready:
        raising here would end the driver task and with it the node."""
        applied = self.applier.applied_index
        if (applied - self._latest_snapshot.meta.index < self.options.snapshot_interval_entries
                and self._applied_bytes < self.options.snapshot_interval_bytes):
            return
        if self._snapshot_task is not None:
            return
        try:
            started = self._fork_snapshot()
        except OSError as error:
            _log.warning("snapshot_fork_failed", applied_index=applied, error=str(error))
            return
        if started is None:
            _log.debug("snapshot_deferred", applied_index=applied,
                       reason="no configuration known at the applied index yet")
            return
        self._snapshot_task = asyncio.create_task(self._finish_snapshot(*started))

    def _fork_snapshot(self) -> tuple[ForkedJob, int] | None:
        """Fork a child serialising the state as applied now; None when nothing is new or
        the core cannot snapshot yet (a blank joiner has no configuration to record)."""
        applied = self.applier.applied_index
        if applied <= self._latest_snapshot.meta.index or not self.node.conf_state.voters:
            return None
        return start_forked(self.applier.snapshot_data), applied

    async def _finish_snapshot(self, job: ForkedJob, index: int) -> Snapshot | None:
        """Wait for the child's bytes, then hand them to the core at the index they show."""
        try:
            with metrics.SNAPSHOT_DURATION.time():
                data = await job.result()
                return await self._call(lambda: self._compact_at(index, data))
        except (ForkedJobFailed, OSError, DriverStopped) as error:
            _log.warning("snapshot_failed", index=index, error=str(error))
            return None
        finally:
            self._snapshot_task = None

    def _compact_at(self, index: int, data: bytes) -> Snapshot | None:
        """Give the core the snapshot of the state at `index` (on the driver's task)."""
        try:
            snapshot = self.node.compact(index, data)
        except SnapshotOutOfDate:
            return self._latest_snapshot
        if snapshot is None:
            return None
        self._latest_snapshot, self._applied_bytes = snapshot, 0
        _log.info("snapshot_taken", index=snapshot.meta.index, data_bytes=len(snapshot.data))
        return snapshot

    async def snapshot_now(self) -> Snapshot:
        """Snapshot the applied state now (compacting the log); the newest one if nothing is
        new.

        Raises: ProposalDropped (NOT_MEMBER) on a node that has not learned its
        configuration yet (a blank joiner still joining).
        """
        started = await self._call(self._fork_snapshot)
        if started is None:
            if not self.node.conf_state.voters:
                raise ProposalDropped(
                    ProposalDropped.NOT_MEMBER,
                    f"cannot snapshot at applied index {self.applier.applied_index}: this node "
                    "has no configuration for it yet (a blank joiner still joining); retry once "
                    "it has joined")
            return self._latest_snapshot
        job, index = started
        data = await job.result()
        snapshot = await self._call(lambda: self._compact_at(index, data))
        if snapshot is None:
            raise ProposalDropped(ProposalDropped.NOT_MEMBER,
                                  f"cannot snapshot at index {index}: configuration unknown")
        return snapshot

    async def digest(self) -> str:
        """The state's digest (equal on replicas at the same applied index), hashed in a
        forked child so that a big state does not stall the loop."""
        job = await self._call(lambda: start_forked(
            lambda: self.applier.machine.digest().encode("ascii")))
        return (await job.result()).decode("ascii")

    # ------------------------------------------------------------------ status

    def status(self) -> DriverStatus:
        """Term, role, leader, indexes and, on the leader, each peer's replication."""
        return build_status(self.node.status(), self.applier, self._latest_snapshot.meta.index,
                            self._last_contact_s, self._clock.monotonic(), self.removed)

    @property
    def leader_id(self) -> int:
        """The leader this node knows of; NO_NODE (0) when none."""
        return self.node.leader_id

    @property
    def node_id(self) -> int:
        return self.node.id

    @property
    def clock(self) -> Clock:
        """The node's one clock: what its services stamp and sleep on."""
        return self._clock

    def is_leader(self) -> bool:
        """Whether this node is the Raft leader now (it may learn otherwise at any tick)."""
        return self.node.role == Role.LEADER

    @property
    def state(self) -> MachineState:
        """The replicated state as applied on this node; read it, never change it."""
        return self.applier.machine.state

    @property
    def changes(self) -> ChangeFeed:
        """What the state's readers wait on: changed topics and applied indexes."""
        return self.applier.changes
