"""RESP encoding done once per batch, and a raw asyncio Redis connection read with hiredis.

Why not redis-py's pipeline: it builds and parses every command through several Python
layers (~36k SET/s here); one bytes join per batch, replies gathered by a bare protocol
and checked in bulk reach the server's own pace. Only `warmd.cache` uses this module;
its errors are translated here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import hiredis

from warmd.cache.base import Item
from warmd.errors import CacheError, CacheUnavailable

_OK = b"+OK\r\n"
_NIL = b"$-1\r\n"
_SHORT_REPLY_BYTES = 5  # both +OK\r\n and $-1\r\n


class RedisReplyError(CacheError):
    """The server answered a command with an error reply (-ERR, -MOVED, -OOM ...)."""


class ConnectionClosed(CacheUnavailable):
    """The connection broke or the server closed it (not a timeout: a slow server may
    still act on what it was sent)."""


def encode_command(*args: bytes | str | int) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(raw), raw))
    return b"".join(parts)


def encode_sets(items: Sequence[Item], only_if_absent: bool) -> bytes:
    """Encode `SET key value [EX ttl] [NX]` for a whole batch in one bytes join.

    Each command is five pieces: `*N $3 SET $len(key)`, the key, `$len(value)`, the value,
    and the `EX ttl [NX]` tail. Every piece but the key and value repeats (key lengths,
    value lengths and jittered TTLs take few distinct values), so they come from plain
    dicts and the loop formats nothing: ~half the cost per key of one `%`-format per
    command, which was the largest share of the runner's own CPU.
    """
    pieces = _PIECES_NX if only_if_absent else _PIECES
    heads, heads_with_ttl = pieces.heads, pieces.heads_with_ttl
    value_heads, tails = pieces.value_heads, pieces.tails
    parts: list[bytes] = []
    extend = parts.extend
    for key, value, ttl_s in items:
        key_bytes = key.encode()
        try:
            extend(((heads_with_ttl if ttl_s > 0 else heads)[len(key_bytes)], key_bytes,
                    value_heads[len(value)], value, tails[ttl_s]))
        except KeyError:  # a length or TTL not seen yet: build its pieces once
            extend(pieces.build(key_bytes, value, ttl_s))
    return b"".join(parts)


class _SetPieces:
    """The repeating pieces of SET commands, by key length, value length and TTL.

    Plain dicts (not `__missing__` subclasses) because the interpreter's fast path for
    `dict[int]` only applies to exact dicts; each is cleared past `MAX_PIECES` entries,
    since value lengths and TTLs seen by a long-lived daemon are unbounded.
    """

    MAX_PIECES = 4096

    def __init__(self, only_if_absent: bool) -> None:
        self.only_if_absent = only_if_absent
        self.heads: dict[int, bytes] = {}  # SET key value [NX]
        self.heads_with_ttl: dict[int, bytes] = {}  # SET key value EX ttl [NX]
        self.value_heads: dict[int, bytes] = {}
        self.tails: dict[int, bytes] = {}

    def build(self, key_bytes: bytes, value: bytes, ttl_s: int) -> tuple[bytes, ...]:
        """The five pieces of one command, remembering the repeating ones."""
        extra = 1 if self.only_if_absent else 0
        heads, argument_count = ((self.heads_with_ttl, 5 + extra) if ttl_s > 0
                                 else (self.heads, 3 + extra))
        head = _remember(heads, len(key_bytes),
                         b"*%d\r\n$3\r\nSET\r\n$%d\r\n" % (argument_count, len(key_bytes)))
        value_head = _remember(self.value_heads, len(value), b"\r\n$%d\r\n" % len(value))
        tail = b"\r\n"
        if ttl_s > 0:
            ttl_bytes = b"%d" % ttl_s
            tail += b"$2\r\nEX\r\n$%d\r\n%b\r\n" % (len(ttl_bytes), ttl_bytes)
        if self.only_if_absent:
            tail += b"$2\r\nNX\r\n"
        return head, key_bytes, value_head, value, _remember(self.tails, ttl_s, tail)


def _remember(pieces: dict[int, bytes], number: int, piece: bytes) -> bytes:
    if len(pieces) >= _SetPieces.MAX_PIECES:
        pieces.clear()
    return pieces.setdefault(number, piece)


_PIECES = _SetPieces(only_if_absent=False)
_PIECES_NX = _SetPieces(only_if_absent=True)


def all_short_replies(buffer: bytes, reply_count: int) -> tuple[int, int] | None:
    """If `buffer` is exactly `reply_count` +OK/nil replies, return (ok, nil); else None.

    Counting with bytes.count runs in C, so a batch of plain successes is checked without
    building one Python object per reply.
    """
    if len(buffer) != reply_count * _SHORT_REPLY_BYTES:
        return None
    ok_count = buffer.count(_OK)
    nil_count = buffer.count(_NIL)
    if ok_count + nil_count != reply_count:
        return None
    return ok_count, nil_count


class _ReplyBuffer(asyncio.Protocol):
    """Collects reply bytes and wakes the waiting exchange once enough have arrived.

    Why not asyncio streams: a StreamReader wakes its reader once per TCP segment (10-20
    times per 2,000-key chunk), each wake-up a trip through the event loop; here
    `data_received` only appends, and the exchange wakes once per chunk.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: list[bytes] = []
        self.size = 0  # bytes in `chunks`
        self.bytes_received = 0  # over the connection's life: did a reply start arriving?
        self.closed_reason = ""  # non-empty once the server closed or the link broke
        self._wanted = 0
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        self.bytes_received += len(data)
        if self._waiter is not None and self.size >= self._wanted and not self._waiter.done():
            self._waiter.set_result(None)

    def eof_received(self) -> bool:
        self._close("connection closed by server")
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(f"connection lost: {exc!r}" if exc else "connection closed")

    def _close(self, reason: str) -> None:
        self.closed_reason = self.closed_reason or reason
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(EOFError(self.closed_reason))

    async def wait_bytes(self, count: int) -> None:
        """Return once `count` bytes are buffered; EOFError if the connection ends first."""
        if self.size >= count:
            return
        if self.closed_reason:
            raise EOFError(self.closed_reason)
        self._wanted = count
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> bytes:
        """Everything buffered so far, as one bytes object."""
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.size = 0
        return data


class RespConnection:
    """One TCP connection to a Redis node; callers serialise use with `lock`.

    A pooled connection outlives server restarts: when the server is gone, the first
    command on it fails before any reply arrives. That failure is not the command's, so
    the connection reopens and sends once more (at most once per call); a failure after
    replies began, or a timeout, is reported, since the server may have acted on part.
    """

    def __init__(self, host: str, port: int, *, timeout_s: float = 5.0,
                 password: str | None = None, db: int = 0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.password = password
        self.db = db  # SELECTed on every (re)connect, so a reopened connection keeps it
        self.lock = asyncio.Lock()
        self.reconnects = 0  # times a stale connection was replaced during a call
        self._protocol: _ReplyBuffer | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _open(self) -> _ReplyBuffer:
        """The open connection, connecting (authenticating, selecting the db) if there is none."""
        if self._protocol is not None and not self._protocol.closed_reason:
            return self._protocol
        self._drop()
        try:
            _, protocol = await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                _ReplyBuffer, self.host, self.port), self.timeout_s)
        except (OSError, TimeoutError) as error:
            raise CacheUnavailable(f"redis {self.address}", str(error)) from error
        self._protocol = protocol
        if self.password:
            reply = (await self._guarded(protocol, encode_command("AUTH", self.password),
                                         1, False))[0]
            if isinstance(reply, hiredis.ReplyError):
                self._drop()
                raise CacheError(f"redis {self.address}: AUTH refused: {reply}")
        if self.db:
            reply = (await self._guarded(protocol, encode_command("SELECT", self.db),
                                         1, False))[0]
            if isinstance(reply, hiredis.ReplyError):
                self._drop()
                raise CacheError(f"redis {self.address}: SELECT {self.db} refused: {reply}")
        return protocol

    async def call(self, *args: bytes | str | int) -> object:
        """Run one command and return its decoded reply; error replies raise."""
        replies = await self.exchange(encode_command(*args), 1)
        reply = replies[0]
        if isinstance(reply, hiredis.ReplyError):
            raise RedisReplyError(str(reply))
        return reply

    async def exchange(self, payload: bytes, reply_count: int) -> list[object]:
        """Send a pre-encoded pipeline and return its `reply_count` replies (errors as
        `hiredis.ReplyError` objects, in order)."""
        async with self.lock:
            return await self._exchange_unlocked(payload, reply_count)  # type: ignore[return-value]

    async def exchange_counted(self, payload: bytes, reply_count: int) -> tuple[int, int] | list:
        """Like `exchange`, but return (ok, nil) counts when every reply is +OK or nil.
        Every reply must be at least 5 bytes long (true of SET's +OK, nil and errors)."""
        async with self.lock:
            return await self._exchange_unlocked(payload, reply_count, count_only=True)

    async def _exchange_unlocked(self, payload: bytes, reply_count: int,
                                 count_only: bool = False) -> list[object] | tuple[int, int]:
        reused = self._protocol is not None and not self._protocol.closed_reason
        protocol = await self._open()
        received_before = protocol.bytes_received
        try:
            return await self._guarded(protocol, payload, reply_count, count_only)
        except ConnectionClosed:
            if not reused or protocol.bytes_received != received_before:
                raise
        # The pooled connection was stale (server restarted, idle link cut): no reply to
        # this payload arrived, so sending it again on a fresh connection is safe.
        self.reconnects += 1
        return await self._guarded(await self._open(), payload, reply_count, count_only)

    async def _guarded(self, protocol: _ReplyBuffer, payload: bytes, reply_count: int,
                       count_only: bool) -> list[object] | tuple[int, int]:
        """Send and read with the timeout; any failure drops the connection (its stream is
        out of step) and is translated to a CacheError."""
        try:
            async with asyncio.timeout(self.timeout_s):
                protocol.transport.write(payload)  # type: ignore[union-attr]
                return await self._read_replies(protocol, reply_count, count_only)
        except TimeoutError as error:
            self._drop()
            raise CacheUnavailable(f"redis {self.address}", repr(error)) from error
        except (OSError, EOFError) as error:
            self._drop()
            raise ConnectionClosed(f"redis {self.address}", repr(error)) from error
        except hiredis.ProtocolError as error:
            self._drop()
            raise CacheError(f"redis {self.address}: protocol error {error}") from error
        except asyncio.CancelledError:
            self._drop()  # replies may still be on the way: the stream is out of step
            raise

    @staticmethod
    async def _read_replies(protocol: _ReplyBuffer, reply_count: int,
                            count_only: bool) -> list[object] | tuple[int, int]:
        if count_only:
            await protocol.wait_bytes(reply_count * _SHORT_REPLY_BYTES)
            buffer = protocol.take()
            counted = all_short_replies(buffer, reply_count)
            if counted is not None:
                return counted
        else:
            buffer = protocol.take()
        parser = hiredis.Reader()
        parser.feed(buffer)
        replies: list[object] = []
        while len(replies) < reply_count:
            reply = parser.gets()
            if reply is False:
                await protocol.wait_bytes(1)
                parser.feed(protocol.take())
                continue
            replies.append(reply)
        return replies

    def _drop(self) -> None:
        """Forget a broken connection: replies may be half-read, so it cannot be reused."""
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

    async def close(self) -> None:
        self._drop()
