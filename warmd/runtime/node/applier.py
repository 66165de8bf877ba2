"""Applier: committed Raft entries -> the state machine -> the futures of their proposers.

The driver calls it once per Ready, after the Ready is persisted and sent. Proposals are
matched to their entries by their exact bytes: the driver wraps every command in a
`Session(client_id, sequence)` envelope, so the bytes are unique and a committed entry
identifies its waiting proposer on whichever node proposed it (a follower's forwarded
proposal is resolved when the follower applies the entry, like everyone else).

CONF_CHANGE entries already took effect in the core when they were appended; here they
only update the member address book (the new member's address travels in the change's
`context`). The address book is part of our snapshots, so a node restored from a snapshot
still knows how to reach members added before it.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack

from warmd.clock import Clock, SystemClock
from warmd.config_table import Address, parse_address
from warmd.errors import WarmdError
from warmd.logging import get_logger
from warmd.raft.confchange import decode_conf_change
from warmd.raft.errors import ProposalDropped
from warmd.raft.types import ConfChange, ConfChangeType, Entry, EntryType, Snapshot
from warmd.runtime.node.changes import ChangeFeed
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import Applied, ApplyResult
from warmd.statemachine.topics import Topic

_log = get_logger("warmd.applier")
SNAPSHOT_FORMAT_VERSION = 1


class SnapshotFormatError(WarmdError):
    """A snapshot's data is not a driver snapshot (wrong version, damaged)."""


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What one batch of committed entries changed, for the driver's bookkeeping."""

    applied_index: int
    entries_applied: int
    membership_changed: bool
    removed_ids: tuple[int, ...] = ()


class Applier:
    """Owns the state machine and the member address book on the driver's task."""

    def __init__(self, machine: StateMachine, addresses: dict[int, Address],
                 clock: Clock | None = None) -> None:
        self.machine = machine
        self.addresses = dict(addresses)
        self.applied_index = machine.state.applied_index
        self._waiting: dict[bytes, list[asyncio.Future[ApplyResult]]] = {}
        # What readers of the state wait on: changed topics and applied indexes.
        self.changes = ChangeFeed(clock or SystemClock(), self.applied_index)

    async def wait_applied(self, index: int, timeout_s: float | None = None) -> bool:
        """Wait until the entries up to `index` are applied on this node; False on timeout."""
        return await self.changes.wait_applied(index, timeout_s)

    # ------------------------------------------------------------------ proposers

    def wait_for(self, data: bytes, loop: asyncio.AbstractEventLoop | None = None
                 ) -> asyncio.Future[ApplyResult]:
        """A future resolved with the result of the first committed entry holding `data`;
        `loop` is the running loop when the caller has it (looking it up costs a system call
        per proposal on Python 3.11)."""
        future: asyncio.Future[ApplyResult] = (loop or asyncio.get_running_loop()).create_future()
        self._waiting.setdefault(data, []).append(future)
        return future

    def forget(self, data: bytes, future: asyncio.Future[ApplyResult]) -> None:
        """Stop waiting (the proposer timed out or was refused); a no-op if already resolved."""
        futures = self._waiting.get(data)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiting[data]

    def fail_all(self, error: BaseException) -> None:
        """Fail every waiting proposer (shutdown, disk failure)."""
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)

    @property
    def waiting_count(self) -> int:
        return sum(len(futures) for futures in self._waiting.values())

    # ------------------------------------------------------------------ applying

    def apply(self, entries: Iterable[Entry]) -> ApplyOutcome:
        """Apply committed entries in order; resolve the futures waiting on them."""
        count, membership_changed, removed = 0, False, []
        for entry in entries:
            if entry.index <= self.applied_index:
                continue  # already in the restored snapshot
            count += 1
            if entry.type == EntryType.CONF_CHANGE:
                change = self._apply_conf_change(entry)
                membership_changed = True
                if change is not None and change.type == ConfChangeType.REMOVE_NODE:
                    removed.append(change.node_id)
                result: ApplyResult = Applied(None)
            elif entry.data:
                result = self.machine.apply_entry(entry.index, entry.data, entry.term)
            else:
                result = Applied(None)  # a new leader's no-op
            self.applied_index = entry.index
            self._resolve(entry.data, result)
        if count:
            self._publish(membership_changed)
        return ApplyOutcome(self.applied_index, count, membership_changed, tuple(removed))

    def _publish(self, membership_changed: bool) -> None:
        topics = set(self.machine.take_changed())
        if membership_changed:
            topics.add(Topic.MEMBERSHIP)
        self.changes.publish(topics, self.applied_index)

    def _resolve(self, data: bytes, result: ApplyResult) -> None:
        if not data:
            return
        futures = self._waiting.pop(data, None)
        if not futures:
            return
        first = futures[0]
        if len(futures) > 1:
            self._waiting[data] = futures[1:]  # an identical later proposal gets its own entry
        if not first.done():
            first.set_result(result)

    def _apply_conf_change(self, entry: Entry) -> ConfChange | None:
        try:
            change = decode_conf_change(entry.data)
        except ProposalDropped as error:  # the core refuses such entries; be safe anyway
            _log.error("conf_change_undecodable", index=entry.index, error=str(error))
            return None
        if change.type == ConfChangeType.REMOVE_NODE:
            self.addresses.pop(change.node_id, None)
        elif change.context:
            try:
                self.addresses[change.node_id] = parse_address(change.context.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as error:
                _log.error("conf_change_bad_address", index=entry.index, error=str(error))
        _log.info("membership_changed", index=entry.index, change=change.type.name.lower(),
                  node_id=change.node_id)
        return change

    # ------------------------------------------------------------------ snapshots

    def snapshot_data(self) -> bytes:
        """The state machine and the address book, as one versioned msgpack document."""
        document = {
            "v": SNAPSHOT_FORMAT_VERSION,
            "addresses": {str(node_id): str(address) for node_id, address in self.addresses.items()},
            "machine": self.machine.snapshot(),
        }
        return msgpack.packb(document, use_bin_type=True)

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the state machine and address book with a snapshot's (members removed
        before the snapshot are forgotten: the snapshot's book is the whole truth).

        Raises:
            SnapshotFormatError: the data is not a snapshot this version can read.
        """
        for _ in self._restore_steps(snapshot):
            pass

    async def restore_in_steps(self, snapshot: Snapshot) -> None:
        """`restore`, yielding to the event loop between batches of records, so installing
        a big snapshot does not stall heartbeats and admin calls (see `restore`).

        The cyclic garbage collector is paused meanwhile (a full collection over millions
        of new records would stall the loop for a second) and the restored state is then
        frozen out of its scans: records are freed by reference counting, never in cycles.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            for _ in self._restore_steps(snapshot):
                await asyncio.sleep(0)
        finally:
            if collecting:
                gc.freeze()
                gc.enable()

    def _restore_steps(self, snapshot: Snapshot) -> Iterator[None]:
        addresses, machine_data = decode_snapshot_data(snapshot.data)
        yield from self.machine.restore_steps(machine_data)
        self.addresses = dict(addresses)
        self.applied_index = snapshot.meta.index
        self._publish(membership_changed=True)
        _log.info("snapshot_restored", index=snapshot.meta.index, data_bytes=len(snapshot.data))


def decode_snapshot_data(data: bytes) -> tuple[dict[int, Address], memoryview]:
    """Split a driver snapshot into its address book and state machine bytes: a view of the
    snapshot's tail, not a copy (a hundred megabytes copied at once would stall the loop).

    Raises:
        SnapshotFormatError: not msgpack, wrong version, or malformed fields.
    """
    try:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(data), 1))
        unpacker.feed(memoryview(data)[:ENVELOPE_HEAD_BYTES])
        fields = unpacker.read_map_header()
        document: dict[str, Any] = {}
        for _ in range(fields):
            key = unpacker.unpack()
            if key == "machine":
                machine_data = _bin_at(data, unpacker.tell())
                break
            document[key] = unpacker.unpack()
        else:
            raise KeyError("machine")
        if document.get("v") != SNAPSHOT_FORMAT_VERSION:
            raise SnapshotFormatError(f"unknown snapshot format {document.get('v')!r}")
        addresses = {
            int(node_id): parse_address(text) for node_id, text in document["addresses"].items()
        }
    except SnapshotFormatError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException) as error:
        raise SnapshotFormatError(f"snapshot data is damaged: {error!r}") from None
    return addresses, machine_data


ENVELOPE_HEAD_BYTES = 1 << 20  # the version and the address book come first, and are small
_BIN_LENGTH_BYTES = {0xC4: 1, 0xC5: 2, 0xC6: 4}


def _bin_at(data: bytes, position: int) -> memoryview:
    """The msgpack bin value at `position`, which must end the data (snapshot_data puts the
    state machine's bytes last)."""
    width = _BIN_LENGTH_BYTES.get(data[position]) if position < len(data) else None
    if width is None:
        raise ValueError("snapshot data has no state machine bytes")
    start = position + 1 + width
    length = int.from_bytes(data[position + 1:start], "big")
    if start + length != len(data):
        raise ValueError(f"state machine bytes end at {start + length}, the data at {len(data)}")
    return memoryview(data)[start:]
