"""The record format of warmd's log files, and verification of a file's records.

A record is `[u32 length][u32 crc32][msgpack payload]` (big-endian), the payload a
`warmd.codec` value. This module decides what a damaged file means: a bad record
with only garbage after it is a torn tail (repairable); a bad record followed by a
good one is corruption (refuse to start). `LogFiles` owns the files themselves.
"""

from __future__ import annotations

import bisect
import errno
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from warmd import codec
from warmd.codec import CodecError, RaftValue
from warmd.errors import WarmdError
from warmd.raft.types import Entry, HardState, Snapshot

RECORD_HEADER = struct.Struct(">II")
SEGMENT_PATTERN = re.compile(r"^log-(\d{20})\.seg$")
SNAPSHOT_PATTERN = re.compile(r"^snapshot-(\d{20})-(\d{20})\.snap$")
log = structlog.get_logger("warmd.disk")
_T = TypeVar("_T")
# The process or host ran short of descriptors or memory: nothing is wrong with the disk, and
# the shortage passes (the peer listener sheds a flood), so a file operation waits and retries.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# The disk's own failures: the data directory cannot be trusted with more writes.
DISK_ERRNOS = frozenset({errno.EIO, errno.ENOSPC, errno.EDQUOT, errno.EROFS})
RESOURCE_RETRY_MAX_S = 1.0
RESOURCE_LOG_INTERVAL_S = 10.0


class DiskCorruption(WarmdError):
    """A record before the tail of the log is damaged: refusing to start (never guess)."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt record in {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class DiskFailed(WarmdError):
    """A write or fsync failed (disk full, I/O error); the storage refuses all further writes."""


def patient(call: Callable[..., _T], *args: Any) -> _T:
    """`call(*args)`, retried while it fails for lack of descriptors or memory.

    Runs on the disk writer thread (or another worker thread), never on the event loop.
    Retrying the failed call itself, rather than the whole operation, keeps the files
    exactly as the operation left them: it continues as if the call had been slow.
    """
    delay_s = 0.01
    waited_s = logged_s = 0.0
    while True:
        try:
            return call(*args)
        except OSError as error:
            if error.errno not in RESOURCE_ERRNOS:
                raise
            if waited_s == 0 or waited_s - logged_s >= RESOURCE_LOG_INTERVAL_S:
                logged_s = waited_s
                log.warning("disk_waiting_for_resources", error=errno.errorcode[error.errno],
                            operation=getattr(call, "__name__", "?"), waited_s=round(waited_s, 1))
        time.sleep(delay_s)
        waited_s += delay_s
        delay_s = min(2 * delay_s, RESOURCE_RETRY_MAX_S)


@dataclass(frozen=True, slots=True)
class Record:
    """One verified record: where it starts in its file and what it holds."""

    offset: int
    value: Entry | HardState


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """A file's good records; `valid_bytes` < the file size when a torn tail follows them."""

    records: tuple[Record, ...]
    valid_bytes: int
    tail_reason: str  # why the tail after `valid_bytes` was rejected; "" when none


def segment_name(first_index: int) -> str:
    """The file name of the segment whose first entry has `first_index`."""
    return f"log-{first_index:020d}.seg"


def snapshot_name(index: int, term: int) -> str:
    """The file name of the snapshot at (`index`, `term`); zero-padded so names sort."""
    return f"snapshot-{index:020d}-{term:020d}.snap"


def encode_record(payload: bytes) -> bytes:
    """Frame one payload as a record with its length and CRC-32."""
    return RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _read_record(data: bytes, offset: int, max_record_bytes: int) -> tuple[RaftValue, int]:
    """Decode the record at `offset`; returns (value, next offset) or raises ValueError."""
    if offset + RECORD_HEADER.size > len(data):
        raise ValueError("truncated record header")
    length, checksum = RECORD_HEADER.unpack_from(data, offset)
    if length == 0 or length > max_record_bytes:
        raise ValueError(f"implausible record length {length}")
    start = offset + RECORD_HEADER.size
    if start + length > len(data):
        raise ValueError("truncated record payload")
    payload = data[start:start + length]
    if zlib.crc32(payload) != checksum:
        raise ValueError("checksum mismatch")
    try:
        return codec.decode(payload), start + length
    except CodecError as error:
        raise ValueError(f"undecodable payload: {error}") from None


def _log_value(data: bytes, offset: int, max_record_bytes: int) -> tuple[Entry | HardState, int]:
    value, end = _read_record(data, offset, max_record_bytes)
    if not isinstance(value, Entry | HardState):
        raise ValueError(f"unexpected {type(value).__name__} record in a log segment")
    return value, end


def _good_record_after(data: bytes, bad_offset: int, max_record_bytes: int) -> int | None:
    """The offset of a verifiable log record after a bad one, or None if only garbage follows.

    Tries the bad record's own declared length first (a flipped payload bit), then
    every later byte offset (a flipped length). A zero-filled tail never matches,
    since a record's length is never zero.
    """
    if bad_offset + RECORD_HEADER.size <= len(data):
        length, _ = RECORD_HEADER.unpack_from(data, bad_offset)
        candidate = bad_offset + RECORD_HEADER.size + length
        if 0 < length <= max_record_bytes and _is_log_record(data, candidate, max_record_bytes):
            return candidate
    unpack_length = RECORD_HEADER.unpack_from
    size = len(data)
    for candidate in range(bad_offset + 1, size - RECORD_HEADER.size):
        length, _ = unpack_length(data, candidate)
        fits = 0 < length <= max_record_bytes and candidate + RECORD_HEADER.size + length <= size
        if fits and _is_log_record(data, candidate, max_record_bytes):
            return candidate
    return None


def _is_log_record(data: bytes, offset: int, max_record_bytes: int) -> bool:
    try:
        _log_value(data, offset, max_record_bytes)
    except ValueError:
        return False
    return True


def scan_log_file(data: bytes, path: str, max_record_bytes: int, is_last: bool) -> ScannedFile:
    """Verify every record of one segment's bytes.

    A bad record followed only by garbage is a torn tail when the file is the last
    segment (the caller truncates it); anywhere else it is corruption.

    Raises:
        DiskCorruption: a bad record with a good record after it, or a torn non-last file.
    """
    records: list[Record] = []
    offset = 0
    while offset < len(data):
        try:
            value, end = _log_value(data, offset, max_record_bytes)
        except ValueError as error:
            good_offset = _good_record_after(data, offset, max_record_bytes)
            if good_offset is not None:
                raise DiskCorruption(
                    path, offset, f"{error}; a good record follows at offset {good_offset}"
                ) from None
            if not is_last:
                raise DiskCorruption(path, offset, f"{error} in a segment that is not the last") from None
            return ScannedFile(tuple(records), offset, str(error))
        records.append(Record(offset, value))
        offset = end
    return ScannedFile(tuple(records), offset, "")


def read_single_record(data: bytes, path: str, max_record_bytes: int) -> RaftValue:
    """Decode a file that holds exactly one record (hardstate, snapshot).

    Raises:
        DiskCorruption: the file is damaged or holds anything else.
    """
    try:
        value, end = _read_record(data, 0, max_record_bytes)
    except ValueError as error:
        raise DiskCorruption(path, 0, str(error)) from None
    if end != len(data):
        raise DiskCorruption(path, end, "trailing bytes after the record")
    return value


# ---------------------------------------------------------------------- files


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a short write is not an error by itself)."""
    view = memoryview(data)
    while view:
        written = patient(os.write, fd, view)
        view = view[written:]


def fsync_directory(directory: Path) -> None:
    """Make creations, renames and deletions in `directory` durable."""
    fd = patient(os.open, directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        patient(os.fsync, fd)
    finally:
        os.close(fd)


def write_file_atomically(directory: Path, name: str, data: bytes) -> None:
    """Write a temporary file, fsync it, rename it over `name`, fsync the directory."""
    temporary = directory / f"{name}.tmp"
    fd = patient(os.open, temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        patient(os.fsync, fd)
    finally:
        os.close(fd)
    os.replace(temporary, directory / name)
    fsync_directory(directory)


class LogFiles:
    """The files of one data directory: segments (one open for appending), hard state,
    snapshots. Owned by DiskStorage's single writer thread; raises OSError on failure, after
    waiting out a lack of descriptors or memory (`patient`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory_dirty = False  # a segment was created: fsync the directory
        self._firsts: list[int] = []  # first index of each segment, ascending
        self._active_fd = -1
        self._active_bytes = 0

    @classmethod
    def prepare(cls, directory: Path) -> LogFiles:
        """Create the directory if needed and remove temporary files of interrupted writes."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for leftover in directory.glob("*.tmp"):
            leftover.unlink()
        return cls(directory)

    def segment_path(self, first_index: int) -> Path:
        return self.directory / segment_name(first_index)

    # -------------------------------------------------------------- recovery

    def read_hard_state(self, max_record_bytes: int) -> HardState:
        """The `hardstate` file's value, or the zero state when there is none."""
        path = self.directory / "hardstate"
        if not path.exists():
            return HardState()
        value = read_single_record(path.read_bytes(), str(path), max_record_bytes)
        if not isinstance(value, HardState):
            raise DiskCorruption(str(path), 0, f"holds a {type(value).__name__}")
        return value

    def read_latest_snapshot(self, max_record_bytes: int) -> Snapshot:
        """The newest snapshot file's value, or the empty snapshot when there is none."""
        found = sorted((int(match[1]), path) for path in self.directory.iterdir()
                       if (match := SNAPSHOT_PATTERN.match(path.name)))
        if not found:
            return Snapshot()
        path = found[-1][1]
        value = read_single_record(path.read_bytes(), str(path), max_record_bytes)
        if not isinstance(value, Snapshot) or snapshot_name(value.meta.index, value.meta.term) != path.name:
            raise DiskCorruption(str(path), 0, "does not hold the snapshot its name says")
        return value

    def scan_segments(self, max_record_bytes: int) -> Iterator[tuple[Path, ScannedFile]]:
        """Verify each segment in order, truncating a torn tail of the last one."""
        self._firsts = sorted(int(match[1]) for path in self.directory.iterdir()
                              if (match := SEGMENT_PATTERN.match(path.name)))
        for position, first in enumerate(self._firsts):
            path = self.segment_path(first)
            is_last = position == len(self._firsts) - 1
            data = path.read_bytes()
            scanned = scan_log_file(data, str(path), max_record_bytes, is_last)
            if scanned.valid_bytes < len(data):
                log.warning("disk_torn_tail_truncated", file=str(path), offset=scanned.valid_bytes,
                            dropped_bytes=len(data) - scanned.valid_bytes, reason=scanned.tail_reason)
                os.truncate(path, scanned.valid_bytes)
                self._sync_path(path)
            yield path, scanned

    @staticmethod
    def _sync_path(path: Path) -> None:
        fd = patient(os.open, path, os.O_RDONLY)
        try:
            patient(os.fsync, fd)
        finally:
            os.close(fd)

    # -------------------------------------------------------------- appending

    def open_active(self, next_index: int) -> None:
        """Append to the last segment, or start one whose first entry will be `next_index`."""
        self._close_active()
        if not self._firsts:
            self._create_segment(next_index)
            return
        path = self.segment_path(self._firsts[-1])
        self._active_fd = patient(os.open, path, os.O_WRONLY | os.O_APPEND)
        self._active_bytes = os.fstat(self._active_fd).st_size

    def _create_segment(self, first_index: int) -> None:
        path = self.segment_path(first_index)
        self._active_fd = patient(os.open, path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL,
                                  0o600)
        self._active_bytes = 0
        self._firsts.append(first_index)
        self.directory_dirty = True

    def append_records(self, payloads: Sequence[bytes]) -> None:
        """Append non-entry records (hard state) to the active segment."""
        buffer = b"".join(encode_record(payload) for payload in payloads)
        write_all(self._active_fd, buffer)
        self._active_bytes += len(buffer)

    def append_entries(self, entries: Sequence[Entry], segment_size_bytes: int) -> list[int]:
        """Append entries, starting a new segment whenever the active one is full.

        Returns each entry's record offset within its segment.
        """
        positions: list[int] = []
        buffer = bytearray()
        for entry in entries:
            full = self._active_bytes + len(buffer) >= segment_size_bytes
            if full and entry.index != self._firsts[-1]:
                write_all(self._active_fd, bytes(buffer))
                buffer.clear()
                self._rotate(entry.index)
            positions.append(self._active_bytes + len(buffer))
            buffer += encode_record(codec.encode_entry(entry))
        write_all(self._active_fd, bytes(buffer))
        self._active_bytes += len(buffer)
        return positions

    def _rotate(self, first_index: int) -> None:
        """Seal the full segment (durable before its successor exists) and start the next."""
        patient(os.fdatasync, self._active_fd)
        self._close_active()
        self._create_segment(first_index)

    def sync_active(self) -> None:
        """The group commit: one fdatasync of the active segment (and the directory if new)."""
        if self._active_fd >= 0:
            patient(os.fdatasync, self._active_fd)
        if self.directory_dirty:
            fsync_directory(self.directory)
            self.directory_dirty = False

    # -------------------------------------------------------------- removing

    def truncate_log(self, index: int, position: int) -> None:
        """Cut the log before entry `index`, which is at `position` in its segment.

        Later segments are deleted (and the deletion made durable) before the cut,
        so a crash leaves a prefix of the old log, never a log with a hole.
        """
        holder = bisect.bisect_right(self._firsts, index) - 1
        self._close_active()
        self._delete_segments(self._firsts[holder + 1:])
        del self._firsts[holder + 1:]
        path = self.segment_path(self._firsts[holder])
        os.truncate(path, position)
        self.open_active(index)

    def remove_segments_covered_by(self, index: int) -> None:
        """Delete every segment (but the active one) whose entries are all <= `index`."""
        covered = [first for first, following in zip(self._firsts, self._firsts[1:], strict=False)
                   if following <= index + 1]
        if covered:
            self._delete_segments(covered)
            del self._firsts[:len(covered)]

    def remove_segments_from(self, position: int) -> None:
        """Delete segments from the `position`-th on (all of them for 0)."""
        self._close_active()
        self._delete_segments(self._firsts[position:])
        del self._firsts[position:]

    def _delete_segments(self, firsts: Sequence[int]) -> None:
        for first in firsts:
            self.segment_path(first).unlink(missing_ok=True)
        if firsts:
            fsync_directory(self.directory)
            log.info("disk_segments_deleted", count=len(firsts), first_index=firsts[0])

    def remove_snapshots_before(self, index: int) -> None:
        """Delete snapshot files older than the one at `index`."""
        for path in self.directory.iterdir():
            match = SNAPSHOT_PATTERN.match(path.name)
            if match and int(match[1]) < index:
                path.unlink(missing_ok=True)

    def _close_active(self) -> None:
        if self._active_fd >= 0:
            os.close(self._active_fd)
            self._active_fd = -1

    def close(self) -> None:
        self._close_active()

    def segment_count(self) -> int:
        return len(self._firsts)
