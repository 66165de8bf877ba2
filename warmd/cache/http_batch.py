"""Many GETs to one host in one call: keep-alive connections driven by callbacks, under a
concurrency gate, with optional HTTP/1.1 pipelining.

Why: a coroutine, a timeout and a future per request cost the replay ~60 us of CPU per
request, several times what wrk and nginx spend together. Here each connection is an
asyncio.Protocol that writes a round of requests at once (one, or up to `depth` when
pipelining) and parses the answers as bytes arrive; the caller is woken once per batch.
Only GETs, which are idempotent, are ever pipelined. A server that closes a pipelined round
unannounced, stalls on it or garbles it is detected: the pool stops pipelining and the
unanswered requests are sent again one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from warmd.cache.http_raw import MAX_HEADER_BYTES, HttpProtocolError, parse_head
from warmd.errors import CacheError, CacheUnavailable

THROTTLED = 429  # with every 5xx, a status that tells the limiter to back off


class ConcurrencyGate(Protocol):
    """What a batch needs from an origin limiter (runtime's OriginLimiter is one): slots
    of origin concurrency, one per connection at work, and where each round's latency goes.
    A pipelined connection is one slot: the origin answers its requests one after another."""

    async def acquire(self) -> int: ...

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...

    def over_limit(self) -> bool: ...

    def round_started(self) -> None: ...

    def round_finished(self, latency_s: float, failed: bool) -> None: ...


class FixedGate:
    """A gate of `size` slots that never adapts (HttpClient.get_many's default)."""

    def __init__(self, size: int) -> None:
        self.size, self.in_use = size, 0
        self._freed = asyncio.Event()

    async def acquire(self) -> int:
        while self.in_use >= self.size:
            self._freed.clear()
            await self._freed.wait()
        self.in_use += 1
        return self.in_use

    def try_acquire(self) -> bool:
        if self.in_use >= self.size:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use -= 1
        self._freed.set()

    def over_limit(self) -> bool:
        return False

    def round_started(self) -> None:
        pass

    def round_finished(self, latency_s: float, failed: bool) -> None:
        pass


@dataclass(slots=True)
class BatchResult:
    """Per request (in the order given): its HTTP status, or 0 and its error in `errors`."""

    statuses: list[int]
    errors: dict[int, CacheError] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list)  # per answered request
    ok: int = 0  # 2xx answers
    body_bytes: int = 0
    pipeline_fallbacks: int = 0  # rounds that showed the server does not pipeline


class PipelinePool:
    """Idle keep-alive connections to one host:port, and whether pipelining still holds."""

    def __init__(self, host: str, port: int, *, size: int, timeout_s: float,
                 depth: int = 1) -> None:
        if depth < 1:
            raise CacheError(f"pipeline depth must be >= 1, not {depth}")
        self.host, self.port, self.size, self.timeout_s = host, port, size, timeout_s
        self.depth = depth  # becomes 1 for good once the server fails a pipelined round
        self.idle: list[_Connection] = []

    async def get_many(self, requests: list[bytes], gate: ConcurrencyGate) -> BatchResult:
        """Send every request once (a stale keep-alive connection or an unpipelined retry is
        not an attempt) and return each one's status or error; never raises for the origin.
        Cancelling it closes the connections that were at work."""
        return await _Batch(self, requests, gate).run()

    def close(self) -> None:
        for connection in self.idle:
            connection.abort()
        self.idle.clear()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: its current round and the parse state of its answers."""

    transport: asyncio.Transport  # set by connection_made, before anyone holds the protocol

    def __init__(self, pool: PipelinePool) -> None:
        self.pool = pool
        self.batch: _Batch | None = None
        self.round: list[int] = []
        self.answered = 0
        self.buffer = b""
        self.skip = 0  # body bytes of the current answer still to come (not kept)
        self.skip_status = 0
        self.skip_keep_alive = True
        self.draining = False  # an answer without a length runs to the end of the connection
        self.close_announced = False
        self.reused = False  # answered a round before this one (or came from the idle list)
        self.timed_out = False
        self.failed_round = False
        self.started_s = self.progress_s = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start_round(self, batch: _Batch, positions: list[int]) -> None:
        self.batch, self.round, self.answered, self.failed_round = batch, positions, 0, False
        self.started_s = self.progress_s = time.perf_counter()
        batch.gate.round_started()
        requests = batch.requests
        if len(positions) == 1:
            self.transport.write(requests[positions[0]])
        else:
            self.transport.write(b"".join([requests[position] for position in positions]))

    def data_received(self, data: bytes) -> None:
        batch = self.batch
        if batch is None or self.draining:
            if batch is not None:
                batch.result.body_bytes += len(data)
            elif data:  # bytes nobody asked for: the stream cannot be trusted any more
                self.abort()
            return
        now_s = self.progress_s = time.perf_counter()
        if self.skip:
            if len(data) < self.skip:
                self.skip -= len(data)
                batch.result.body_bytes += len(data)
                return
            batch.result.body_bytes += self.skip
            data, self.skip = data[self.skip:], 0
            self._answer(batch, self.skip_status, now_s)
        try:
            self._parse(batch, self.buffer + data if self.buffer else data, now_s)
        except (HttpProtocolError, ValueError) as error:
            batch.protocol_error(self, HttpProtocolError(
                f"http {self.pool.host}:{self.pool.port}: {error}"))
            return
        if self.answered == len(self.round) and self.batch is batch:
            batch.round_done(self, now_s)
        elif self.close_announced and not self.draining and not self.skip:
            self.transport.close()  # nothing more will be answered here: requeue the rest

    def _parse(self, batch: _Batch, buffer: bytes, now_s: float) -> None:
        """Answer as many requests of the round as `buffer` completes; keep the rest.
        (The per-answer work is inlined: it runs once per request of a replay.)"""
        position, size, answered, count = 0, len(buffer), self.answered, len(self.round)
        result = batch.result
        statuses, latencies_s, latency_s = result.statuses, result.latencies_s, \
            now_s - self.started_s
        try:
            while answered < count and not self.close_announced:
                head_end = buffer.find(b"\r\n\r\n", position)
                if head_end == -1:
                    if size - position > MAX_HEADER_BYTES:
                        raise HttpProtocolError("response head too large")
                    break
                status, length, chunked, keep_alive = parse_head(buffer, position, head_end)
                body_start = head_end + 4
                if 100 <= status < 200:  # interim answer: the real one follows
                    position = body_start
                    continue
                if chunked:
                    end = chunked_end(buffer, body_start)
                    if end == -1:
                        break
                elif length is not None:
                    end = body_start + length
                    if end > size:  # the rest of this body is counted, not buffered
                        self.skip, self.skip_status = end - size, status
                        self.skip_keep_alive = keep_alive
                        result.body_bytes += size - body_start
                        position = size
                        break
                elif status in (204, 304):
                    end = body_start
                else:  # no length: the body runs to the end of the connection
                    self.draining, end, keep_alive = True, size, False
                result.body_bytes += end - body_start
                statuses[self.round[answered]] = status
                latencies_s.append(latency_s)
                answered += 1
                if 200 <= status < 300:
                    result.ok += 1
                elif status >= 500 or status == THROTTLED:
                    self.failed_round = True
                self.close_announced = not keep_alive
                position = end
        finally:
            batch.remaining -= answered - self.answered
            self.answered = answered
        if position < size and answered == count and not self.draining:
            raise HttpProtocolError("more response bytes than requests sent")
        self.buffer = buffer[position:] if position < size else b""

    def _answer(self, batch: _Batch, status: int, now_s: float) -> None:
        """The answer whose body was being skipped is complete."""
        index = self.round[self.answered]
        self.answered += 1
        result = batch.result
        result.statuses[index] = status
        result.latencies_s.append(now_s - self.started_s)
        if 200 <= status < 300:
            result.ok += 1
        elif status >= 500 or status == THROTTLED:
            self.failed_round = True
        self.close_announced = not self.skip_keep_alive
        batch.remaining -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool.idle:
            self.pool.idle.remove(self)
        if self.batch is not None:
            self.batch.lost(self, exc)

    def abort(self) -> None:
        self.transport.abort()


def chunked_end(buffer: bytes, start: int) -> int:
    """Where a chunked body that begins at `start` ends, or -1 if it is not all here.

    Raises:
        ValueError: a chunk size that is not hexadecimal.
    """
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end == -1:
            return -1
        size = int(buffer[position:line_end].split(b";")[0], 16)
        if size == 0:  # then trailers, each ending in CRLF, and an empty line
            end = buffer.find(b"\r\n\r\n", line_end)
            return -1 if end == -1 else end + 4
        position = line_end + 2 + size + 2
        if position > len(buffer):
            return -1


class _Batch:
    """One get_many call: the requests not yet sent, the connections at work, the result."""

    def __init__(self, pool: PipelinePool, requests: list[bytes], gate: ConcurrencyGate) -> None:
        self.pool, self.requests, self.gate = pool, requests, gate
        self.result = BatchResult([0] * len(requests))
        self.queue = deque(range(len(requests)))
        self.remaining = len(requests)
        self.active: set[_Connection] = set()  # each holds one slot of the gate
        self.connecting: set[asyncio.Task[None]] = set()  # each holds one slot too
        self._wakeup: asyncio.Future[None] | None = None
        self.watchdog: asyncio.TimerHandle | None = None

    async def run(self) -> BatchResult:
        loop = asyncio.get_running_loop()
        self.watchdog = loop.call_later(self._watch_interval_s(), self._watch)
        try:
            while self.remaining:
                if self.queue and not self.active and not self.connecting:
                    await self.gate.acquire()  # nothing of ours in flight: wait our turn
                    self._open()
                    self.grow()
                else:
                    self._wakeup = loop.create_future()
                    await self._wakeup
        finally:
            if self.watchdog is not None:
                self.watchdog.cancel()
            self._abandon()
        return self.result

    def grow(self) -> None:
        """Put more connections to work while requests wait and the gate has room."""
        while (self.queue and len(self.active) + len(self.connecting) < self.pool.size
               and self.gate.try_acquire()):
            self._open()

    def _take(self) -> list[int]:
        queue = self.queue
        if self.pool.depth == 1 or len(queue) == 1:
            return [queue.popleft()]
        return [queue.popleft() for _ in range(min(self.pool.depth, len(queue)))]

    def _open(self) -> None:
        """Start a round on an idle connection, or connect one (the caller holds a slot)."""
        while self.pool.idle:
            connection = self.pool.idle.pop()
            if not connection.transport.is_closing():
                connection.reused = True
                self.active.add(connection)
                connection.start_round(self, self._take())
                return
        task = asyncio.ensure_future(self._connect())
        self.connecting.add(task)
        task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[None]) -> None:
        self.connecting.discard(task)
        self._wake()

    async def _connect(self) -> None:
        pool = self.pool
        try:
            async with asyncio.timeout(pool.timeout_s):
                _, connection = await asyncio.get_running_loop().create_connection(
                    lambda: _Connection(pool), pool.host, pool.port)
        except asyncio.CancelledError:
            self.gate.release()  # abandoned batch: its slot goes back
            raise
        except (OSError, TimeoutError) as error:
            self.gate.release()
            if self.queue:  # these requests met an unreachable origin
                self._fail(self._take(), CacheUnavailable(f"http {pool.host}:{pool.port}",
                                                          repr(error)))
            self._wake()
            return
        if not self.queue or self.remaining == 0:
            pool.idle.append(connection)
            self.gate.release()
            self._wake()
            return
        self.active.add(connection)
        connection.start_round(self, self._take())

    def round_done(self, connection: _Connection, now_s: float) -> None:
        self.gate.round_finished(now_s - connection.started_s, connection.failed_round)
        connection.reused = True  # a server may close it before its next round: see lost()
        if connection.close_announced:
            connection.batch = None
            connection.transport.close()
        elif self.queue and not self.gate.over_limit():
            connection.start_round(self, self._take())
            self.grow()
            return
        else:
            connection.batch = None
            self.pool.idle.append(connection)
        self.active.discard(connection)
        self.gate.release()
        self.grow()
        self._wake()

    def protocol_error(self, connection: _Connection, error: HttpProtocolError) -> None:
        """The answer being read cannot be parsed: it fails; the stream is abandoned."""
        if connection.answered < len(connection.round):
            self._fail([connection.round[connection.answered]], error)
            connection.answered += 1
        connection.abort()

    def lost(self, connection: _Connection, exc: Exception | None) -> None:
        """The connection closed or was aborted while holding a round of this batch."""
        connection.batch = None
        self.active.discard(connection)
        self.gate.release()
        unanswered = connection.round[connection.answered:]
        pipelined = len(connection.round) > 1
        if unanswered:
            if connection.close_announced or (connection.reused and not connection.answered
                                              and not connection.timed_out):
                self.queue.extendleft(reversed(unanswered))  # not an attempt: send again
            elif pipelined and (connection.answered or not connection.timed_out):
                self.pool.depth = 1  # the server does not pipeline: one at a time from now
                self.result.pipeline_fallbacks += 1
                self.queue.extendleft(reversed(unanswered))
            else:
                reason = "timed out" if connection.timed_out else repr(exc or "closed")
                self._fail(unanswered, CacheUnavailable(
                    f"http {self.pool.host}:{self.pool.port}", reason))
        self.grow()
        self._wake()

    def _fail(self, positions: list[int], error: CacheError) -> None:
        for position in positions:
            self.result.errors[position] = error
        self.remaining -= len(positions)

    def _watch_interval_s(self) -> float:
        return max(0.01, min(1.0, self.pool.timeout_s / 4))

    def _watch(self) -> None:
        """Abort connections whose round made no progress for the pool's timeout."""
        deadline_s = time.perf_counter() - self.pool.timeout_s
        for connection in list(self.active):
            if connection.progress_s < deadline_s:
                connection.timed_out = True
                connection.abort()
        self.watchdog = asyncio.get_running_loop().call_later(self._watch_interval_s(),
                                                              self._watch)

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _abandon(self) -> None:
        """On cancellation: connections at work are closed (their answers would be stale)."""
        for task in list(self.connecting):
            task.cancel()
        for connection in list(self.active):
            connection.batch = None
            connection.abort()
            self.gate.release()
        self.active.clear()
