"""The storage the core reads (LogStorage) and MemoryStorage, its in-memory implementation.

The core only reads storage; the driver writes it after persisting a Ready. As in
etcd, MemoryStorage keeps a dummy entry at the front whose index and term are those
of the last snapshot, so `term(first_index() - 1)` answers for the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from warmd.errors import invariant
from warmd.raft.errors import Compacted, SnapshotOutOfDate, Unavailable
from warmd.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMeta

ENTRY_OVERHEAD_BYTES = 16  # what an entry costs on the wire besides its data
NO_LIMIT_BYTES = 1 << 62  # a max_bytes that limits nothing


def entry_size(entry: Entry) -> int:
    """The size an entry counts for against message and batch limits."""
    return len(entry.data) + ENTRY_OVERHEAD_BYTES


def limit_size(entries: list[Entry], max_bytes: int) -> list[Entry]:
    """The longest prefix of `entries` within `max_bytes`, but never fewer than one entry."""
    if max_bytes >= NO_LIMIT_BYTES:
        return entries
    total = 0
    for position, entry in enumerate(entries):
        total += len(entry.data) + ENTRY_OVERHEAD_BYTES  # entry_size(), inlined: a hot loop
        if total > max_bytes and position > 0:
            return entries[:position]
    return entries


class LogStorage(Protocol):
    """The durable log as the core reads it (etcd's Storage interface).

    `initial_state()` returns the persisted hard state and the configuration as of
    the storage's snapshot (index `first_index() - 1`); the core replays the
    CONF_CHANGE entries after it. A blank node joining an existing cluster may return
    an empty ConfState: the leader then sends it the founding configuration.
    """

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries [lo, hi), at least one if lo < hi, within max_bytes; Compacted below first."""
        ...

    def term(self, index: int) -> int:
        """The term of `index` (first_index() - 1 answers for the snapshot); Compacted/Unavailable."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


class MemoryStorage:
    """LogStorage in memory, with the write side a driver or simulator uses after a Ready."""

    def __init__(self, conf_state: ConfState | None = None) -> None:
        base = conf_state if conf_state is not None else ConfState()
        self._hard_state = HardState()
        self._snapshot = Snapshot(meta=SnapshotMeta(index=0, term=0, conf_state=base))
        self._entries: list[Entry] = [Entry(term=0, index=0)]

    # --- read side (LogStorage) ---

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.meta.conf_state

    def first_index(self) -> int:
        return self._entries[0].index + 1

    def last_index(self) -> int:
        return self._entries[0].index + len(self._entries) - 1

    def term(self, index: int) -> int:
        offset = self._entries[0].index
        if index < offset:
            raise Compacted(f"index {index} is below the snapshot at {offset}")
        if index - offset >= len(self._entries):
            raise Unavailable(f"index {index} is past the last index {self.last_index()}")
        return self._entries[index - offset].term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        offset = self._entries[0].index
        if lo <= offset:
            raise Compacted(f"entries from {lo} were compacted (snapshot at {offset})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"entries up to {hi - 1} past the last index {self.last_index()}")
        if lo >= hi:
            return []
        return limit_size(self._entries[lo - offset : hi - offset], max_bytes)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    # --- write side (driver / simulator) ---

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def append(self, entries: Iterable[Entry]) -> None:
        """Append entries, replacing any existing suffix from the first new entry's index."""
        new = list(entries)
        if not new:
            return
        first = self.first_index()
        if new[-1].index < first:
            return  # all of it is already compacted
        if new[0].index < first:
            new = new[first - new[0].index :]
        position = new[0].index - self._entries[0].index
        invariant(
            position <= len(self._entries),
            f"storage append leaves a gap: last {self.last_index()}, new from {new[0].index}",
        )
        del self._entries[position:]
        self._entries.extend(new)

    def drop_entries_after(self, index: int) -> None:
        """Forget every entry after `index`: a disk that lost writes (simulated faults only)."""
        invariant(index >= self._entries[0].index, f"index {index} is below the snapshot")
        del self._entries[index - self._entries[0].index + 1 :]

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a snapshot received from the leader."""
        if snapshot.meta.index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(
                f"snapshot at {snapshot.meta.index} is not newer than {self._snapshot.meta.index}"
            )
        self._snapshot = snapshot
        self._entries = [Entry(term=snapshot.meta.term, index=snapshot.meta.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record the application's snapshot at `index` (which must be in the log)."""
        if index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot at {index} is not newer than {self._snapshot.meta.index}")
        invariant(index <= self.last_index(), f"snapshot index {index} past last {self.last_index()}")
        meta = SnapshotMeta(index=index, term=self.term(index), conf_state=conf_state)
        self._snapshot = Snapshot(meta=meta, data=data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop the entries up to and including `index` (keeping it as the dummy entry)."""
        offset = self._entries[0].index
        if index <= offset:
            raise Compacted(f"index {index} is already compacted (first index {offset + 1})")
        invariant(index <= self.last_index(), f"compact {index} past last {self.last_index()}")
        kept = self._entries[index - offset :]
        self._entries = [Entry(term=kept[0].term, index=index), *kept[1:]]

    def save_compaction(self, snapshot: Snapshot) -> None:
        """Persist Ready.compaction: record the snapshot, then drop the entries it covers."""
        self.create_snapshot(snapshot.meta.index, snapshot.meta.conf_state, snapshot.data)
        self.compact(snapshot.meta.index)

    def copy(self) -> MemoryStorage:
        """An independent copy: what survives a crash in a simulator."""
        clone = MemoryStorage.__new__(MemoryStorage)
        clone._hard_state = self._hard_state
        clone._snapshot = self._snapshot
        clone._entries = list(self._entries)  # entries are frozen; sharing them is safe
        return clone

    def __deepcopy__(self, memo: dict[int, object]) -> MemoryStorage:
        return self.copy()


