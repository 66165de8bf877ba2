"""Rotation-aware tailing of an access log: no line lost or read twice across a rotation.

Handles rotation by rename (the old file is drained through the handle we still hold, then
the new file is read from its start) and by copytruncate (the lines written between our last
read and the truncation are read from the rotated copy, plain or gzip, before the live file
is read again from its start). Partial lines wait until their newline arrives.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from typing import BinaryIO

PENDING_BYTES_MAX = 1 << 20  # a "line" longer than this is handed on (as malformed) unfinished


class LogTailer:
    """Poll-driven tailer; `poll()` returns the complete new lines since the last call."""

    def __init__(self, path: str, from_start: bool = True,
                 rotated_names: Sequence[str] = ("{path}.1", "{path}.1.gz")) -> None:
        self.path = path
        self.rotated_names = tuple(rotated_names)
        self._handle: BinaryIO | None = None
        self._inode: int | None = None
        self._offset = 0
        self._pending = b""
        self._from_start = from_start
        self.rotations = 0
        self.truncations = 0
        self.caught_up = True  # the last poll read to the end of the file (not cut by max_bytes)

    def poll(self, max_bytes: int | None = None) -> list[str]:
        """Every complete line appended since the last poll, across rotations.

        `max_bytes` bounds how much is read from the live file (and from a renamed-away old
        file) in one call, so a big backlog is read over several polls instead of all at
        once; the rest waits for the next call. The gap read back from a copytruncate copy
        is read whole.
        """
        if max_bytes is not None and max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        chunks: list[bytes] = []
        if self._handle is None and not self._open(at_end=not self._from_start):
            return []
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            status = None
        if status is not None and status.st_ino != self._inode:
            old = self._drain(max_bytes)  # renamed away: finish the old file first
            chunks.append(old)
            if max_bytes is not None and len(old) >= max_bytes:
                self.caught_up = False
                return self._split(b"".join(chunks))  # more of the old file next time
            self._close()
            self.rotations += 1
            self._open(at_end=False)
            max_bytes = None if max_bytes is None else max_bytes - len(old)
        elif status is not None and status.st_size < self._offset:
            chunks.append(self._read_rotated_copy())
            self.truncations += 1
            self._offset = 0
            if self._handle is not None:  # open: the stat above followed the same inode
                self._handle.seek(0)
        data = self._drain(max_bytes)
        self.caught_up = max_bytes is None or len(data) < max_bytes
        chunks.append(data)
        return self._split(b"".join(chunks))

    @property
    def inode(self) -> int | None:
        """The inode of the file being read (None before it is first opened)."""
        return self._inode

    def _open(self, at_end: bool) -> bool:
        """Open the path; `from_start=False` skips only what the file held at the first look
        (a file that appears later, or the new file after a rotation, is read whole)."""
        try:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - held across polls
        except FileNotFoundError:
            self._from_start = True
            return False
        self._from_start = True
        self._inode = os.fstat(self._handle.fileno()).st_ino
        self._offset = self._handle.seek(0, os.SEEK_END) if at_end else 0
        return True

    def _drain(self, max_bytes: int | None = None) -> bytes:
        if self._handle is None or max_bytes == 0:
            return b""
        self._handle.seek(self._offset)
        data = self._handle.read(-1 if max_bytes is None else max_bytes)
        self._offset += len(data)
        return data

    def _read_rotated_copy(self) -> bytes:
        """After copytruncate, the copy holds what we had not read yet, past our offset."""
        for pattern in self.rotated_names:
            name = pattern.format(path=self.path)
            try:
                if name.endswith(".gz"):
                    with gzip.open(name, "rb") as copy:
                        data = copy.read()
                else:
                    with open(name, "rb") as copy:
                        data = copy.read()
            except (FileNotFoundError, OSError, EOFError):
                continue
            if len(data) >= self._offset:
                return data[self._offset:]
        return b""

    def _split(self, data: bytes) -> list[str]:
        data = self._pending + data
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > PENDING_BYTES_MAX:  # no newline in sight: not a log line
            lines.append(self._pending)
            self._pending = b""
        return [line.decode("utf-8", "replace") for line in lines]

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        """Release the file handle."""
        self._close()
