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

    def poll(self) -> list[str]:
        """Every complete line appended since the last poll, across rotations."""
        chunks: list[bytes] = []
        if self._handle is None and not self._open(at_end=not self._from_start):
            return []
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            status = None
        if status is not None and status.st_ino != self._inode:
            chunks.append(self._drain())  # renamed away: finish the old file first
            self._close()
            self.rotations += 1
            self._open(at_end=False)
        elif status is not None and status.st_size < self._offset:
            chunks.append(self._read_rotated_copy())
            self.truncations += 1
            self._offset = 0
            assert self._handle is not None
            self._handle.seek(0)
        chunks.append(self._drain())
        return self._split(b"".join(chunks))

    def _open(self, at_end: bool) -> bool:
        try:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - held across polls
        except FileNotFoundError:
            return False
        self._inode = os.fstat(self._handle.fileno()).st_ino
        self._offset = self._handle.seek(0, os.SEEK_END) if at_end else 0
        return True

    def _drain(self) -> bytes:
        if self._handle is None:
            return b""
        self._handle.seek(self._offset)
        data = self._handle.read()
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
        return [line.decode("utf-8", "replace") for line in lines]

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def close(self) -> None:
        """Release the file handle."""
        self._close()
