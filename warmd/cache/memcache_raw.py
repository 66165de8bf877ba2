"""The memcached text protocol on one asyncio connection: pipelined `set`/`add` whose
one-line replies are counted in bulk (list.count runs in C) rather than parsed one by one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from warmd.cache.base import Item, KeyFailure, WriteOutcome, values_bytes
from warmd.errors import CacheUnavailable

READ_CHUNK_BYTES = 1 << 16
_STORED = b"STORED"
_NOT_STORED = b"NOT_STORED"


def encode_stores(items: Sequence[Item], only_if_absent: bool) -> bytes:
    """`set|add <key> 0 <ttl> <length>\\r\\n<value>\\r\\n` for the whole batch in one pass."""
    template = (b"add %b 0 %d %d\r\n%b\r\n" if only_if_absent
                else b"set %b 0 %d %d\r\n%b\r\n")
    return b"".join([template % (key.encode(), ttl_s, len(value), value)
                     for key, value, ttl_s in items])


def outcome_from_lines(items: Sequence[Item], lines: list[bytes]) -> WriteOutcome:
    """Match one reply line per item; anything but STORED/NOT_STORED is a key failure."""
    stored = lines.count(_STORED)
    if stored == len(items):
        return WriteOutcome(stored, 0, (), values_bytes(items))
    failures, skipped, value_bytes = [], 0, 0
    for (key, value, _), line in zip(items, lines, strict=True):
        if line == _STORED:
            value_bytes += len(value)
        elif line == _NOT_STORED:
            skipped += 1
        else:
            failures.append(KeyFailure(key, line.decode(errors="replace")))
    return WriteOutcome(stored, skipped, tuple(failures), value_bytes)


class MemcacheConnection:
    """One lazily opened connection to one memcached server; writes are serialised."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 5.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def store_many(self, items: Sequence[Item], only_if_absent: bool) -> WriteOutcome:
        """Pipeline the batch and wait for exactly one reply line per item."""
        payload = encode_stores(items, only_if_absent)
        async with self._lock:
            try:
                writer = self._writer
                if writer is None or writer.is_closing():
                    connection = await asyncio.wait_for(
                        asyncio.open_connection(self.host, self.port), self.timeout_s)
                    self._reader, self._writer = connection
                    writer = connection[1]
                writer.write(payload)
                lines = await asyncio.wait_for(self._read_lines(len(items)), self.timeout_s)
            except (OSError, EOFError, TimeoutError) as error:
                await self.close()
                raise CacheUnavailable(f"memcached {self.address}", repr(error)) from error
            except asyncio.CancelledError:
                self._abandon()  # replies may still be on the way: the stream is out of step
                raise
        return outcome_from_lines(items, lines)

    async def _read_lines(self, line_count: int) -> list[bytes]:
        assert self._reader is not None  # opened by store_many under the lock
        chunks, seen = [], 0
        while seen < line_count:
            chunk = await self._reader.read(READ_CHUNK_BYTES)
            if not chunk:
                raise EOFError("connection closed by memcached")
            chunks.append(chunk)
            seen += chunk.count(b"\n")
        return b"".join(chunks).split(b"\r\n")[:line_count]

    def _abandon(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None
