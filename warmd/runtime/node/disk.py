"""DiskStorage: the durable Raft log (segment files), hard state and snapshots.

Reads are served from memory for the core on the event loop; writes come from one
worker thread and are group-committed (one fdatasync per `save`). Nothing is reported
saved before it is durable, and after a failed write the storage refuses all writes.
Format and recovery rules: docs/storage.md.
"""

from __future__ import annotations

import errno
import os
import threading
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from warmd import codec
from warmd.errors import invariant
from warmd.raft.errors import Compacted, SnapshotOutOfDate, Unavailable
from warmd.raft.storage import ENTRY_OVERHEAD_BYTES
from warmd.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
    make_entry,
)
from warmd.runtime.node import segment
from warmd.runtime.node.segment import (
    DISK_ERRNOS,
    DiskCorruption,
    DiskFailed,
    LogFiles,
    write_file_atomically,
)

__all__ = ["DiskCorruption", "DiskFailed", "DiskOptions", "DiskStorage"]

log = structlog.get_logger("warmd.disk")
_ENTRY_TYPES = tuple(EntryType)


@dataclass(frozen=True, slots=True)
class DiskOptions:
    """Tuning of a DiskStorage.

    segment_size_bytes: a segment is closed and a new one started once it reaches
        this size (checked before each entry, so a segment may exceed it by one entry).
    max_record_bytes: the largest record accepted on read; bigger length fields are
        treated as damage. Must exceed the largest entry and snapshot written.
    """

    segment_size_bytes: int = 16 * 1024 * 1024
    max_record_bytes: int = 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.segment_size_bytes < 1:
            raise ValueError("segment_size_bytes must be positive")
        if self.max_record_bytes < 64:
            raise ValueError("max_record_bytes must be at least 64")


class DiskStorage:
    """The Raft log of one node in a data directory; see docs/storage.md.

    Construct with `DiskStorage.open(path)`. Reads (`initial_state`, `entries`,
    `term`, `first_index`, `last_index`, `snapshot`) may run on the event loop while
    one writer thread calls `save`, `create_snapshot` or `compact`.
    """

    def __init__(self, files: LogFiles, options: DiskOptions) -> None:
        self._files = files
        self._options = options
        self._lock = threading.Lock()
        self._failure = ""
        self._hard_state = HardState()
        self._file_hard_state = HardState()  # what the `hardstate` file holds
        self._snapshot = Snapshot()
        self._first_index = 1
        self._base_term = 0  # the term of entry first_index - 1 (the snapshot's)
        self._terms = array("Q")
        self._types = bytearray()
        self._datas: list[bytes] = []
        self._positions = array("Q")  # each entry's record offset in its segment

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, directory: str | os.PathLike[str], options: DiskOptions | None = None,
             conf_state: ConfState | None = None) -> DiskStorage:
        """Open (creating if needed) the data directory and verify every record in it.

        `conf_state` is the founding configuration, used only while no snapshot exists
        (as MemoryStorage's); afterwards the snapshot's configuration is in force.

        Raises:
            DiskCorruption: a record before the tail, a snapshot or the hard state is damaged.
            DiskFailed: the directory cannot be read or repaired.
        """
        options = options or DiskOptions()
        try:
            files = LogFiles.prepare(Path(directory))
        except OSError as error:
            raise DiskFailed(f"cannot open data directory {directory}: {error}") from None
        storage = cls(files, options)
        try:
            storage._recover(conf_state or ConfState())
        except OSError as error:
            files.close()
            raise DiskFailed(f"cannot recover {directory}: {error}") from None
        except DiskCorruption:
            files.close()
            raise
        return storage

    def _recover(self, founding: ConfState) -> None:
        limit = self._options.max_record_bytes
        file_state = self._files.read_hard_state(limit)
        self._file_hard_state = file_state
        self._hard_state = file_state
        snapshot = self._files.read_latest_snapshot(limit)
        if snapshot.meta.index == 0:
            snapshot = Snapshot(SnapshotMeta(0, 0, founding))
        self._snapshot = snapshot
        self._first_index = snapshot.meta.index + 1
        self._base_term = snapshot.meta.term
        entries: list[tuple[Entry, int]] = []
        for path, scanned in self._files.scan_segments(limit):
            self._load_records(path, scanned, entries)
        self._keep_after_snapshot(entries)
        self._files.open_active(self.last_index() + 1)
        log.info("disk_opened", directory=str(self._files.directory), first_index=self._first_index,
                 last_index=self.last_index(), term=self._hard_state.term,
                 commit=self._hard_state.commit, snapshot_index=self._snapshot.meta.index)

    def _load_records(self, path: Path, scanned: segment.ScannedFile,
                      entries: list[tuple[Entry, int]]) -> None:
        name = segment.SEGMENT_PATTERN.match(path.name)
        if name is None:  # the scan lists only files with a segment's name
            raise DiskCorruption(str(path), 0, "not a segment file name")
        first_in_file = int(name[1])
        expected = entries[-1][0].index + 1 if entries else first_in_file
        if expected != first_in_file:
            raise DiskCorruption(str(path), 0, f"segment should start at index {expected}")
        for record in scanned.records:
            value = record.value
            if isinstance(value, HardState):
                self._hard_state = merge_hard_states(self._hard_state, value)
                continue
            if value.index != expected:
                raise DiskCorruption(str(path), record.offset,
                                     f"entry index {value.index}, expected {expected}")
            entries.append((value, record.offset))
            expected += 1

    def _keep_after_snapshot(self, entries: list[tuple[Entry, int]]) -> None:
        """Drop entries the snapshot covers; a log that disagrees with it is discarded."""
        meta = self._snapshot.meta
        first = entries[0][0].index if entries else meta.index + 1
        at_snapshot = meta.index - first
        if first > meta.index + 1:
            raise DiskCorruption(str(self._files.segment_path(first)), 0,
                                 f"log starts at {first} but the snapshot ends at {meta.index}")
        disagrees = 0 <= at_snapshot < len(entries) and entries[at_snapshot][0].term != meta.term
        covered = meta.index > 0 and entries and entries[-1][0].index <= meta.index
        if disagrees or covered:
            # A crash during an install leaves a log that disagrees; a snapshot at the
            # last index leaves one it wholly covers (normal).
            event = "disk_log_disagrees_with_snapshot" if disagrees else "disk_log_covered_by_snapshot"
            (log.warning if disagrees else log.info)(event, snapshot_index=meta.index)
            self._write_hard_state_file(self._hard_state)
            self._files.remove_segments_from(0)
            return
        for entry, position in entries[max(0, at_snapshot + 1):]:
            self._append_memory(entry, position)

    # ------------------------------------------------------------------ reads

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and the configuration of the latest snapshot."""
        with self._lock:
            return self._hard_state, self._snapshot.meta.conf_state

    def first_index(self) -> int:
        """The index of the first entry still in the log (snapshot index + 1 at least)."""
        with self._lock:
            return self._first_index

    def last_index(self) -> int:
        """The index of the last entry (the snapshot index when the log is empty)."""
        with self._lock:
            return self._first_index + len(self._terms) - 1

    def term(self, index: int) -> int:
        """The term of the entry at `index` (or of the snapshot, at its index).

        Raises:
            Compacted: `index` is before the snapshot.
            Unavailable: `index` is after the last entry.
        """
        with self._lock:
            offset = index - self._first_index
            if offset == -1:
                return self._base_term
            if offset < 0:
                raise Compacted(f"index {index} is below the first index {self._first_index}")
            if offset >= len(self._terms):
                raise Unavailable(f"index {index} is past the last index {index - offset + len(self._terms) - 1}")
            return self._terms[offset]

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi), cut after `max_bytes` of data (always at least one entry).

        Raises:
            Compacted: `lo` is before the first index.
            Unavailable: `hi` is past last index + 1.
        """
        with self._lock:
            if lo < self._first_index:
                raise Compacted(f"entries from {lo} were compacted (first index {self._first_index})")
            if hi > self._first_index + len(self._terms):
                raise Unavailable(f"entries up to {hi - 1} are past the last index")
            return self._entries_locked(lo, hi, max_bytes)

    def _entries_locked(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        result: list[Entry] = []
        budget = max_bytes if max_bytes is not None else -1
        base = self._first_index
        for index in range(lo, hi):
            offset = index - base
            data = self._datas[offset]
            budget -= len(data) + ENTRY_OVERHEAD_BYTES
            if result and max_bytes is not None and budget < 0:
                break
            result.append(make_entry(self._terms[offset], index, _ENTRY_TYPES[self._types[offset]],
                                     data))
        return result

    def snapshot(self) -> Snapshot:
        """The latest snapshot (an empty one at index 0 before the first)."""
        with self._lock:
            return self._snapshot

    # ------------------------------------------------------------------ writes

    def save(self, hard_state: HardState | None, entries: Sequence[Entry],
             snapshot: Snapshot | None, sync: bool) -> None:
        """Persist one Ready: snapshot, then entries (overwriting a conflicting suffix), then
        hard state, with a single fdatasync at the end when `sync` (group commit).

        Raises:
            DiskFailed: a write or sync failed now or earlier; nothing here is durable.
        """
        with self._writing("save"):
            if snapshot is not None:
                self._install_snapshot(snapshot)
            new_entries = [entry for entry in entries if entry.index >= self._first_index]
            positions = self._write_entries(new_entries) if new_entries else []
            if hard_state is not None and hard_state != self._hard_state:
                self._files.append_records([codec.encode(hard_state)])
            if sync or self._files.directory_dirty:
                self._files.sync_active()
            # Only now may readers (the core, serving followers) see the new state. Without
            # `sync` (the writer syncs a group of saves at once) it is not durable yet, but
            # the core reads only below its stable index, which moves when the driver hears
            # that the group's sync returned.
            with self._lock:
                if new_entries:
                    self._replace_suffix(new_entries, positions)
                if hard_state is not None:
                    self._hard_state = hard_state

    def save_all(self, saves: Sequence[tuple[HardState | None, Sequence[Entry]]]) -> None:
        """`save` several Readys' hard states and entries at once, without a sync: one
        write for all the entries (a later Ready's entries overwrite an earlier one's from
        their first index, as saving them in turn would) and one for the newest hard state.

        Raises:
            DiskFailed: a write failed now or earlier.
        """
        merged: list[Entry] = []
        hard_state = None
        for saved_hard_state, entries in saves:
            if entries:
                if merged and entries[0].index <= merged[-1].index:
                    del merged[max(0, entries[0].index - merged[0].index):]
                merged.extend(entries)
            hard_state = saved_hard_state or hard_state
        self.save(hard_state, merged, None, sync=False)

    def sync(self) -> None:
        """fdatasync what `save(..., sync=False)` calls wrote (the writer's group commit).

        Raises:
            DiskFailed: the sync failed now or a write failed earlier.
        """
        with self._writing("sync"):
            self._files.sync_active()

    def _write_entries(self, entries: list[Entry]) -> list[int]:
        """Write entries to the segments, first cutting a conflicting suffix on disk."""
        first = entries[0].index
        last = self.last_index()
        invariant(first <= last + 1, f"append at {first} leaves a gap after {last}")
        invariant(all(entry.index == first + offset for offset, entry in enumerate(entries)),
                  "appended entries are not contiguous")
        if first <= last:
            position = self._positions[first - self._first_index]
            # Records of the newest term and vote may sit in the part being cut.
            self._write_hard_state_file(self._hard_state)
            self._files.truncate_log(first, position)
            log.info("disk_log_truncated", from_index=first, last_index=last)
        return self._files.append_entries(entries, self._options.segment_size_bytes)

    def _replace_suffix(self, entries: list[Entry], positions: list[int]) -> None:
        keep = entries[0].index - self._first_index
        del self._terms[keep:], self._types[keep:], self._datas[keep:], self._positions[keep:]
        for entry, position in zip(entries, positions, strict=True):
            self._append_memory(entry, position)

    def _append_memory(self, entry: Entry, position: int) -> None:
        self._terms.append(entry.term)
        self._types.append(int(entry.type))
        self._datas.append(entry.data)
        self._positions.append(position)

    def _write_hard_state_file(self, hard_state: HardState) -> None:
        """Checkpoint the hard state before deleting segments that hold its records."""
        if hard_state == self._file_hard_state:
            return
        write_file_atomically(self._files.directory, "hardstate",
                              segment.encode_record(codec.encode(hard_state)))
        self._file_hard_state = hard_state

    def create_snapshot(self, index: int, term: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Write a snapshot of the state machine at `index`, then compact the log up to it.

        Raises:
            SnapshotOutOfDate: the storage already has a snapshot at or after `index`.
            DiskFailed: writing failed; the previous snapshot and log stay in force.
        """
        if index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot at {index} is not newer than {self._snapshot.meta.index}")
        invariant(index <= self.last_index(), f"snapshot at {index} beyond the log")
        invariant(term == self.term(index), f"snapshot term {term} differs from the log's")
        snapshot = Snapshot(SnapshotMeta(index, term, conf_state), data)
        with self._writing("create_snapshot"):
            self._write_snapshot_file(snapshot)
            self._compact_locked_writer(index)
        log.info("disk_snapshot_created", index=index, term=term, data_bytes=len(data))
        return snapshot

    def save_compaction(self, snapshot: Snapshot) -> None:
        """Persist a Ready's `compaction`: the application's snapshot, then drop what it covers."""
        meta = snapshot.meta
        self.create_snapshot(meta.index, meta.term, meta.conf_state, snapshot.data)

    def write_snapshot_file(self, snapshot: Snapshot) -> None:
        """The slow half of `save_compaction`, safe on a thread of its own beside the writer:
        the snapshot's file, written, synced and renamed into place. Until `adopt_snapshot`
        the log keeps the entries it covers, and a crash in between recovers from either.

        Raises:
            DiskFailed: writing failed.
        """
        meta = snapshot.meta
        with self._writing("write_snapshot"):
            write_file_atomically(self._files.directory,
                                  segment.snapshot_name(meta.index, meta.term),
                                  segment.encode_record(codec.encode(snapshot)))

    def adopt_snapshot(self, snapshot: Snapshot) -> None:
        """The quick half, on the writer thread: the written snapshot becomes the storage's,
        older snapshot files go and the log is compacted up to it.

        Raises:
            SnapshotOutOfDate: a newer snapshot arrived meanwhile (its file stays until the
                next snapshot's clean-up; recovery takes the newest).
            DiskFailed: a write failed.
        """
        meta = snapshot.meta
        if meta.index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot at {meta.index} is not newer than {self._snapshot.meta.index}")
        with self._writing("adopt_snapshot"):
            with self._lock:
                self._snapshot = snapshot
            self._files.remove_snapshots_before(meta.index)
            self._compact_locked_writer(meta.index)
        log.info("disk_snapshot_created", index=meta.index, term=meta.term,
                 data_bytes=len(snapshot.data))

    def compact(self, index: int) -> None:
        """Drop entries up to `index` (which a snapshot covers) and delete covered segments.

        Raises:
            DiskFailed: a write failed.
        """
        invariant(index <= self._snapshot.meta.index, "compacting past the snapshot")
        with self._writing("compact"):
            self._compact_locked_writer(index)

    def _compact_locked_writer(self, index: int) -> None:
        if index < self._first_index:
            return
        # The hardstate file must hold the latest state before segments holding
        # hard-state records disappear.
        self._write_hard_state_file(self._hard_state)
        self._files.remove_segments_covered_by(index)
        base_term = self.term(index)
        with self._lock:
            drop = min(index + 1 - self._first_index, len(self._terms))
            del self._terms[:drop], self._types[:drop], self._datas[:drop], self._positions[:drop]
            self._first_index = index + 1
            self._base_term = base_term

    def _write_snapshot_file(self, snapshot: Snapshot) -> None:
        meta = snapshot.meta
        write_file_atomically(self._files.directory, segment.snapshot_name(meta.index, meta.term),
                              segment.encode_record(codec.encode(snapshot)))
        with self._lock:
            self._snapshot = snapshot
        self._files.remove_snapshots_before(meta.index)

    def _install_snapshot(self, snapshot: Snapshot) -> None:
        """A snapshot from the leader replaces the whole log (as MemoryStorage.apply_snapshot)."""
        meta = snapshot.meta
        if meta.index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot at {meta.index} is not newer than {self._snapshot.meta.index}")
        self._write_snapshot_file(snapshot)
        self._write_hard_state_file(self._hard_state)
        self._files.remove_segments_from(0)
        self._files.open_active(meta.index + 1)
        with self._lock:
            del self._terms[:], self._types[:], self._datas[:], self._positions[:]
            self._first_index = meta.index + 1
            self._base_term = meta.term
        log.info("disk_snapshot_installed", index=meta.index, term=meta.term)

    @contextmanager
    def _writing(self, operation: str) -> Iterator[None]:
        """Refuse writes after a failure; turn OSError into DiskFailed and remember it.

        A lack of descriptors or memory never gets here: the file calls wait it out
        (`segment.patient`). The disk's own errors (EIO, ENOSPC, EDQUOT, EROFS) are
        `kind="disk"`; any other (a directory made unwritable or removed under the daemon)
        also stops writes, since the files' state is unknown, but says it is not the disk.
        """
        if self._failure:
            raise DiskFailed(f"storage refuses writes after an earlier failure: {self._failure}")
        try:
            yield
        except OSError as error:
            reason = "disk full" if error.errno == errno.ENOSPC else str(error)
            kind = "disk" if error.errno in DISK_ERRNOS else "other"
            self._failure = f"{operation}: {reason}"
            log.error("disk_failed", operation=operation, error=reason, kind=kind,
                      directory=str(self._files.directory))
            raise DiskFailed(f"{operation} failed, storage now refuses writes: {reason}") from None

    @property
    def failed(self) -> bool:
        """Whether a write failed; the node must stop acknowledging."""
        return bool(self._failure)

    def close(self) -> None:
        """Sync and close the active segment (best effort after a failure)."""
        try:
            if not self._failure:
                self._files.sync_active()
        finally:
            self._files.close()


def merge_hard_states(left: HardState, right: HardState) -> HardState:
    """The newest of two recorded hard states: term and commit only grow, and a vote
    belongs to its term (so the vote of the higher term, or the non-empty one, wins)."""
    if left.term != right.term:
        newer = left if left.term > right.term else right
        return HardState(newer.term, newer.vote, max(left.commit, right.commit))
    return HardState(left.term, left.vote or right.vote, max(left.commit, right.commit))

