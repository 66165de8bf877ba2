"""TcpTransport: Raft messages between nodes over authenticated (optionally TLS) TCP.

Each node dials one outbound connection per peer and only sends on it; it receives
on the connections its peers dialed. `send` never blocks and never raises for a
dead or slow peer: each peer has a bounded queue that drops its oldest message
when full. A bad frame or a failed handshake closes that one connection only.

The listener is built to survive a flood of unauthenticated connections: it holds at
most `handshakes_max` connections in the handshake (`handshakes_per_source_max` per
source address), each for at most `handshake_timeout_s`, closing any beyond at once;
and when the process runs out of descriptors, accepting pauses instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import random
import socket
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from warmd import codec
from warmd.clock import Clock, SystemClock
from warmd.codec import CodecError
from warmd.frames import FrameError, FrameTooLarge, encode_frame
from warmd.raft.types import NO_NODE, Message
from warmd.runtime.node import handshake
from warmd.runtime.node.framing import FrameReader
from warmd.runtime.node.handshake import HandshakeError, Hello, Refusal
from warmd.secret import Secret

log = structlog.get_logger("warmd.transport")
WRITE_BATCH_BYTES = 1024 * 1024
TLS_READY = b"T"  # the listener's invitation to start TLS
LISTEN_BACKLOG = 128
# accept() failing with these means the process or host ran out of something, not that the
# listener broke: pause accepting (connections wait in the kernel's backlog) and retry.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
BUSY_LOG_INTERVAL_S = 5.0


Deliver = Callable[[Message], Awaitable[None]]


class Transport(Protocol):
    """What the driver needs from a transport (TcpTransport here, fakes in tests)."""

    async def start(self) -> None: ...

    async def send(self, messages: Sequence[Message]) -> None:
        """Best effort: never raises for a peer, never waits for one."""
        ...

    def received(self) -> AsyncIterator[Message]: ...

    def deliver_to(self, deliver: Deliver | None) -> None:
        """Hand messages received from now on to `deliver` (awaited: while it waits, that
        peer's socket is not read) instead of `received()`; None goes back to `received()`."""
        ...

    def update_peers(self, peers: Mapping[int, tuple[str, int]]) -> None: ...

    def statistics(self) -> TransportStatistics: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Settings of one node's transport.

    The secret proves membership in the cluster (HMAC in the handshake); TLS
    contexts, when given, also encrypt and authenticate every byte.
    """

    cluster_id: str
    node_id: int
    secret: Secret  # bytes are accepted and wrapped: the repr shows ***
    listen_host: str = "127.0.0.1"
    listen_port: int = 0  # 0: any free port (see TcpTransport.listen_address)
    max_frame_bytes: int = 16 * 1024 * 1024
    outbound_queue_messages: int = 4096
    received_queue_messages: int = 8192
    handshake_timeout_s: float = 2.0  # the deadline for TLS plus the whole handshake
    handshakes_max: int = 64  # inbound connections not yet authenticated, in total
    handshakes_per_source_max: int = 8  # ... and from one source address
    accept_pause_max_s: float = 1.0  # longest pause of accepting when descriptors run out
    connect_timeout_s: float = 5.0
    reconnect_initial_s: float = 0.05
    reconnect_max_s: float = 2.0
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | None = None
    tls_server_hostname: str | None = None  # name checked in the peer's certificate

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret", Secret.of(self.secret))
        if self.node_id <= 0:
            raise ValueError("node_id must be positive")
        if len(self.secret) < 16:
            raise ValueError("the cluster secret must be at least 16 bytes")
        if self.max_frame_bytes < handshake.MAX_HANDSHAKE_FRAME_BYTES:
            raise ValueError("max_frame_bytes is too small for a handshake")
        if self.outbound_queue_messages < 1 or self.received_queue_messages < 1:
            raise ValueError("queue sizes must be positive")
        if not 1 <= self.handshakes_per_source_max <= self.handshakes_max:
            raise ValueError("need 1 <= handshakes_per_source_max <= handshakes_max")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ValueError("need 0 < reconnect_initial_s <= reconnect_max_s")
        if self.client_ssl is not None and self.client_ssl.check_hostname \
                and not self.tls_server_hostname:
            raise ValueError("client_ssl checks host names: set tls_server_hostname")


@dataclass(frozen=True, slots=True)
class PeerStatistics:
    """Counters for one peer (node id 0 holds connections that never authenticated)."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0  # outbound messages discarded: queue full, or peer unknown
    malformed: int = 0
    oversized: int = 0
    auth_failures: int = 0
    reconnects: int = 0
    busy_refusals: int = 0  # connections closed unread: too many in the handshake
    accept_pauses: int = 0  # times accepting paused for lack of descriptors
    connected: bool = False  # the outbound connection is up


@dataclass(frozen=True, slots=True)
class TransportStatistics:
    peers: Mapping[int, PeerStatistics] = field(default_factory=dict)

    def total(self, counter: str) -> int:
        """The sum of one counter over all peers."""
        return sum(getattr(peer, counter) for peer in self.peers.values())


class _Counters:
    __slots__ = ("accept_pauses", "auth_failures", "busy_refusals", "connected", "dropped",
                 "frames_in", "frames_out", "malformed", "oversized", "reconnects")
    accept_pauses: int
    auth_failures: int
    busy_refusals: int
    connected: int
    dropped: int
    frames_in: int
    frames_out: int
    malformed: int
    oversized: int
    reconnects: int

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def freeze(self) -> PeerStatistics:
        return PeerStatistics(**{name: getattr(self, name) for name in self.__slots__
                                 if name != "connected"}, connected=bool(self.connected))


class _Peer:
    """The outbound side of one peer: its queue, its dialing task, its connection."""

    def __init__(self, node_id: int, address: tuple[str, int], capacity: int) -> None:
        self.node_id = node_id
        self.address = address
        self.queue: deque[bytes] = deque()
        self.capacity = capacity
        self.wake = asyncio.Event()
        self.heard_from = asyncio.Event()  # it dialed us: cut a reconnect backoff short
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.live: asyncio.StreamWriter | None = None  # the writer, once past the handshake
        self.stopped = False
        self.last_refusal: Refusal | None = None  # the last handshake failure, until connected

    def enqueue(self, frame: bytes) -> bool:
        """Queue a frame; returns False when the oldest frame was dropped to make room."""
        dropped = len(self.queue) >= self.capacity
        if dropped:
            self.queue.popleft()
        self.queue.append(frame)
        self.wake.set()
        return not dropped

    def write_now(self, frames: list[bytes]) -> bool:
        """Write `frames` at once in one write when nothing waits before them and the
        connection is up and keeping pace; False when they must go through the queue.

        A Ready's messages to one peer then leave in one write, with no wake-up of the
        pump task per Ready (the pump still drains what a slow or new connection queued)."""
        live = self.live
        if (live is None or self.queue or live.is_closing()
                or live.transport.get_write_buffer_size() >= WRITE_BATCH_BYTES):
            return False
        live.write(b"".join(frames))
        return True

    def take_batch(self) -> list[bytes]:
        batch: list[bytes] = []
        size = 0
        while self.queue and size < WRITE_BATCH_BYTES:
            frame = self.queue.popleft()
            batch.append(frame)
            size += len(frame)
        return batch

    def stop(self) -> None:
        """End the dialing task for good (peer removed or transport closed)."""
        self.stopped = True
        self.wake.set()
        if self.task is not None:
            self.task.cancel()
        self.drop_connection()

    def drop_connection(self) -> None:
        self.live = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class TcpTransport:
    """Raft messages over TCP; see the module docstring.

    Received messages are read with `async for message in transport.received()`, or
    handed to the callable given to `deliver_to`: the driver's, which puts them into its
    one event queue straight from the connection's reading task (through `received()`
    each message took two more task wake-ups, and loop turns, on its way to the driver).
    """

    def __init__(self, options: TransportOptions, peers: Mapping[int, tuple[str, int]] | None = None,
                 rng: random.Random | None = None, clock: Clock | None = None) -> None:
        self._options = options
        self._rng = rng or random.Random()
        self._clock = clock or SystemClock()  # the node's one clock: reconnect backoff sleeps on it
        self._peers: dict[int, _Peer] = {}
        self._counters: dict[int, _Counters] = {}
        self._received: asyncio.Queue[Message | None] = asyncio.Queue(options.received_queue_messages)
        self._deliver: Deliver | None = None
        self._nonces = handshake.NonceMemory()
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._slots = _HandshakeSlots(options.handshakes_max, options.handshakes_per_source_max)
        self._busy_logged_s = float("-inf")
        self._refusal_logged_s: dict[Refusal, float] = {}
        self._inbound: set[asyncio.Task[None]] = set()
        self._closed = False
        self.update_peers(peers or {})

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen for peers' connections.

        Raises:
            OSError: the listen address cannot be bound.
        """
        options = self._options
        self._listener = await _bind(options.listen_host, options.listen_port)
        self._accept_task = asyncio.create_task(self._accept_loop(self._listener),
                                                name="peer-accept")
        host, port = self.listen_address
        log.info("transport_listening", node_id=options.node_id, host=host, port=port,
                 tls=options.server_ssl is not None)

    @property
    def listen_address(self) -> tuple[str, int]:
        """The bound (host, port); meaningful after `start`."""
        if self._listener is None:
            return (self._options.listen_host, self._options.listen_port)
        host, port = self._listener.getsockname()[:2]
        return (host, port)

    async def close(self) -> None:
        """Stop listening, close every connection and end `received()`."""
        if self._closed:
            return
        self._closed = True
        tasks = [peer.task for peer in self._peers.values() if peer.task is not None]
        tasks += list(self._inbound)
        if self._accept_task is not None:
            self._accept_task.cancel()
            tasks.append(self._accept_task)
        for peer in self._peers.values():
            peer.stop()
        for task in self._inbound:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        with contextlib.suppress(asyncio.QueueFull):
            self._received.put_nowait(None)
        log.info("transport_closed", node_id=self._options.node_id)

    def update_peers(self, peers: Mapping[int, tuple[str, int]]) -> None:
        """Set the peers to send to (id -> (host, port)); dialing starts with the first send."""
        for node_id in list(self._peers):
            if node_id not in peers:
                self._remove_peer(node_id)
        for node_id, address in peers.items():
            if node_id == self._options.node_id:
                continue
            host, port = address  # a list when it came over the wire
            peer = self._peers.get(node_id)
            if peer is None:
                self._peers[node_id] = _Peer(node_id, (host, port),
                                             self._options.outbound_queue_messages)
            elif peer.address != (host, port):
                peer.address = (host, port)
                peer.drop_connection()  # the dialing task reconnects to the new address

    def _remove_peer(self, node_id: int) -> None:
        self._peers.pop(node_id).stop()

    # ------------------------------------------------------------------ sending

    async def send(self, messages: Sequence[Message]) -> None:
        """Queue messages for their peers; never blocks and never raises for a peer."""
        self.send_nowait(messages)

    def send_nowait(self, messages: Sequence[Message]) -> None:
        """`send` for synchronous callers: each peer's messages in one write when its
        connection keeps pace, else queued for its pump."""
        if self._closed:
            return
        frames: dict[int, list[bytes]] = {}
        for message in messages:
            if message.to not in self._peers:
                self._counter(message.to).dropped += 1
                continue
            frames.setdefault(message.to, []).append(encode_frame(codec.encode_message(message)))
        for node_id, batch in frames.items():
            peer, counter = self._peers[node_id], self._counter(node_id)
            if peer.write_now(batch):
                counter.frames_out += len(batch)
                continue
            for frame in batch:
                if not peer.enqueue(frame):
                    counter.dropped += 1
            if (peer.task is None or peer.task.done()) and not peer.stopped:
                peer.task = asyncio.create_task(self._run_peer(peer), name=f"peer-{peer.node_id}")

    def deliver_to(self, deliver: Deliver | None) -> None:
        """See `Transport.deliver_to`. Messages already queued for `received()` stay there."""
        self._deliver = deliver

    async def _run_peer(self, peer: _Peer) -> None:
        """Dial, handshake and pump frames; on failure wait a jittered backoff and redial."""
        failures = 0
        counter = self._counter(peer.node_id)
        # Checked as well as cancellation: Python 3.11 can lose a cancel that races with
        # a finishing connect, and this loop must still end.
        while not peer.stopped:
            try:
                await self._connect_and_pump(peer, counter)
            except HandshakeError as error:
                counter.auth_failures += 1
                # Warn once per reason until connected: a wrong secret must be seen in the
                # log of the node that has it, but not every 2 s.
                repeated = peer.last_refusal == error.refusal
                peer.last_refusal = error.refusal
                (log.debug if repeated else log.warning)(
                    "handshake_refused", peer_id=peer.node_id, side="dialer",
                    reason=error.refusal.value, detail=error.detail)
            except (TimeoutError, OSError, EOFError, FrameError) as error:
                log.debug("peer_connection_failed", peer_id=peer.node_id, error=repr(error))
            finally:
                # A connection that got through the handshake restarts the backoff.
                failures = 1 if counter.connected else failures + 1
                if counter.connected:
                    log.info("peer_disconnected", peer_id=peer.node_id)
                counter.connected = False
                peer.drop_connection()
            await self._back_off(peer, self._backoff_s(failures))
            counter.reconnects += 1

    async def _back_off(self, peer: _Peer, duration_s: float) -> None:
        """Sleep before redialing, unless the peer dials us meanwhile.

        After a few failed dials the backoff reaches `reconnect_max_s` (2 s), and a peer
        that restarts within it would hear nothing from us for up to that long although
        its own connection to us already works: with another member down, every commit and
        linearizable read waits for this link (a read timed out after 3 s in
        bench/task_failover.py). Its handshake on our listener proves it is up, so we
        redial at once."""
        peer.heard_from.clear()
        sleeping = asyncio.ensure_future(self._clock.sleep(duration_s))
        heard = asyncio.ensure_future(peer.heard_from.wait())
        try:
            await asyncio.wait((sleeping, heard), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            heard.cancel()

    def _backoff_s(self, failures: int) -> float:
        """Full-jitter exponential backoff: uniform(0.5, 1) x min(cap, initial x 2^failures)."""
        options = self._options
        ceiling = min(options.reconnect_max_s, options.reconnect_initial_s * 2 ** min(failures, 30))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    async def _connect_and_pump(self, peer: _Peer, counter: _Counters) -> None:
        options = self._options
        host, port = peer.address
        async with asyncio.timeout(options.connect_timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
        peer.writer = writer
        stream = FrameReader(reader, handshake.MAX_HANDSHAKE_FRAME_BYTES)
        try:
            async with asyncio.timeout(options.handshake_timeout_s):
                if options.client_ssl is not None:
                    await self._dial_tls(reader, writer)
                await self._dial_handshake(stream, writer, peer.node_id)
        except TimeoutError:
            raise HandshakeError(Refusal.TIMEOUT, "no handshake in time") from None
        counter.connected = True
        peer.live = writer
        peer.last_refusal = None
        log.info("peer_connected", peer_id=peer.node_id, host=host, port=port)
        closed = asyncio.ensure_future(reader.read(1))  # the listener never sends: EOF = gone
        try:
            await self._pump(peer, writer, counter, closed)
        finally:
            closed.cancel()

    async def _pump(self, peer: _Peer, writer: asyncio.StreamWriter, counter: _Counters,
                    closed: asyncio.Future[bytes]) -> None:
        # The closed connection wakes the pump through the same event as a new frame: one
        # wait per batch, not a task and an asyncio.wait per batch (5% of a loaded leader).
        closed.add_done_callback(lambda _: peer.wake.set())
        while True:
            if not peer.queue:
                peer.wake.clear()
                await peer.wake.wait()
            if closed.done() or writer.is_closing():
                raise ConnectionResetError("connection closed")
            batch = peer.take_batch()
            writer.write(b"".join(batch))
            counter.frames_out += len(batch)
            await writer.drain()

    async def _dial_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Upgrade to TLS once the listener says it is ready (see `_accept_connection`)."""
        if await reader.readexactly(1) != TLS_READY:
            raise HandshakeError(Refusal.TLS_FAILED, "listener does not offer TLS")
        context = self._options.client_ssl
        if context is None:
            raise HandshakeError(Refusal.TLS_FAILED, "this node has no client TLS context")
        try:
            await writer.start_tls(context,
                                   server_hostname=self._options.tls_server_hostname)
        except ssl.SSLError as error:
            raise HandshakeError(Refusal.TLS_FAILED, str(error)) from None

    async def _dial_handshake(self, stream: FrameReader, writer: asyncio.StreamWriter,
                              peer_id: int) -> None:
        options = self._options
        ours = Hello(options.cluster_id, options.node_id, handshake.random_nonce())
        writer.write(encode_frame(handshake.encode_hello(ours)))
        theirs = handshake.decode_hello(await stream.read_frame())
        handshake.check_cluster(theirs, options.cluster_id)
        if theirs.node_id != peer_id:
            raise HandshakeError(Refusal.UNEXPECTED_NODE, f"expected node {peer_id}, met {theirs.node_id}")
        proof = handshake.compute_proof(options.secret.reveal(), "dialer", options.cluster_id, ours, theirs)
        writer.write(encode_frame(handshake.encode_proof(proof)))
        expected = handshake.compute_proof(options.secret.reveal(), "listener", options.cluster_id, ours, theirs)
        handshake.check_proof(await stream.read_frame(), expected)

    # ------------------------------------------------------------------ receiving

    async def received(self) -> AsyncIterator[Message]:
        """Every message peers send, in arrival order per connection; ends at `close()`."""
        while True:
            message = await self._received.get()
            if message is None:
                self._received.put_nowait(None)  # let other iterators end too
                return
            yield message

    async def _accept_loop(self, listener: socket.socket) -> None:
        """Accept peers until closed; when accept fails (no descriptors left), pause and retry.

        While paused, connections wait in the kernel's backlog instead of failing the node.
        """
        loop = asyncio.get_running_loop()
        pause_s = 0.0
        while True:
            try:
                sock, remote = await loop.sock_accept(listener)
            except OSError as error:
                self._counter(NO_NODE).accept_pauses += 1
                (log.warning if pause_s == 0 else log.debug)(
                    "peer_accept_paused", error=errno.errorcode.get(error.errno or 0, repr(error)),
                    resource=error.errno in RESOURCE_ERRNOS)
                pause_s = min(max(2 * pause_s, 0.05), self._options.accept_pause_max_s)
                await self._clock.sleep(pause_s)
                continue
            pause_s = 0.0
            self._admit(sock, remote)

    def _admit(self, sock: socket.socket, remote: object) -> None:
        """Serve a new connection if a handshake slot is free; else close it unread."""
        source = str(remote[0]) if isinstance(remote, tuple) else str(remote)
        if not self._slots.take(source):
            sock.close()
            counter = self._counter(NO_NODE)
            counter.busy_refusals += 1
            now_s = asyncio.get_running_loop().time()
            if now_s - self._busy_logged_s >= BUSY_LOG_INTERVAL_S:
                self._busy_logged_s = now_s
                log.warning("peer_handshakes_full", source=source, in_handshake=self._slots.total,
                            busy_refusals=counter.busy_refusals)
            return
        task = asyncio.create_task(self._serve_inbound(sock, source, remote))
        self._inbound.add(task)
        task.add_done_callback(self._inbound.discard)

    async def _serve_inbound(self, sock: socket.socket, source: str, remote: object) -> None:
        """One inbound connection: handshake (holding a slot), then frames until it ends."""
        peer_id = NO_NODE
        writer: asyncio.StreamWriter | None = None
        in_handshake = True
        try:
            reader, writer = await _server_streams(sock)
            stream = FrameReader(reader, handshake.MAX_HANDSHAKE_FRAME_BYTES)
            peer_id = await self._accept_connection(stream, writer)
            in_handshake = False
            if (peer := self._peers.get(peer_id)) is not None:
                peer.heard_from.set()
            self._slots.release(source)
            stream.decoder.max_frame_bytes = self._options.max_frame_bytes
            await self._receive_frames(stream, peer_id)
        except HandshakeError as error:
            self._count_refusal(error, remote)
            if writer is not None and error.refusal in handshake.TOLD_REFUSALS:
                writer.write(encode_frame(handshake.encode_refusal(error.refusal)))
        except FrameTooLarge as error:
            self._counter(peer_id).oversized += 1
            log.warning("frame_oversized", peer_id=peer_id, remote=str(remote),
                        length_bytes=error.length_bytes, max_frame_bytes=error.max_frame_bytes)
        except (FrameError, CodecError) as error:
            self._counter(peer_id).malformed += 1
            log.warning("frame_malformed", peer_id=peer_id, remote=str(remote), error=str(error))
        except (TimeoutError, OSError, EOFError) as error:
            log.debug("inbound_connection_ended", peer_id=peer_id, remote=str(remote), error=repr(error))
        except asyncio.CancelledError:
            pass  # only close() cancels: end quietly
        finally:
            if in_handshake:
                self._slots.release(source)
            if writer is not None:
                writer.close()
            else:
                sock.close()

    async def _accept_connection(self, stream: FrameReader, writer: asyncio.StreamWriter) -> int:
        """TLS (if configured) and the HMAC handshake, within the handshake timeout."""
        options = self._options
        try:
            async with asyncio.timeout(options.handshake_timeout_s):
                if options.server_ssl is not None:
                    # STARTTLS-style: the dialer starts TLS only after this byte, so no
                    # TLS bytes can reach the plain stream buffer before the upgrade,
                    # and a TLS failure reaches this handler to be logged and counted.
                    writer.write(TLS_READY)
                    await writer.start_tls(options.server_ssl)
                return await self._accept_handshake(stream, writer)
        except TimeoutError:
            raise HandshakeError(Refusal.TIMEOUT, "no handshake in time") from None
        except ssl.SSLError as error:
            raise HandshakeError(Refusal.TLS_FAILED, str(error)) from None

    def _count_refusal(self, error: HandshakeError, remote: object) -> None:
        """Count a refused handshake; warn at most once per reason per interval, since a
        flood of strangers would otherwise write a warning per connection."""
        counter = self._counter(NO_NODE)
        if error.refusal is Refusal.MALFORMED:
            counter.malformed += 1
        else:
            counter.auth_failures += 1
        now_s = asyncio.get_running_loop().time()
        quiet = now_s - self._refusal_logged_s.get(error.refusal, float("-inf")) < BUSY_LOG_INTERVAL_S
        if not quiet:
            self._refusal_logged_s[error.refusal] = now_s
        (log.debug if quiet else log.warning)(
            "handshake_refused", side="listener", remote=str(remote),
            reason=error.refusal.value, detail=error.detail)

    async def _accept_handshake(self, stream: FrameReader, writer: asyncio.StreamWriter) -> int:
        options = self._options
        try:
            theirs = handshake.decode_hello(await stream.read_frame())
        except FrameError as error:
            raise HandshakeError(Refusal.MALFORMED, str(error)) from None
        handshake.check_cluster(theirs, options.cluster_id)
        if theirs.node_id == options.node_id:
            raise HandshakeError(Refusal.UNEXPECTED_NODE, "peer claims our own node id")
        self._nonces.check_fresh(theirs.nonce)
        ours = Hello(options.cluster_id, options.node_id, handshake.random_nonce())
        writer.write(encode_frame(handshake.encode_hello(ours)))
        expected = handshake.compute_proof(options.secret.reveal(), "dialer", options.cluster_id, theirs, ours)
        try:
            handshake.check_proof(await stream.read_frame(), expected)
        except FrameError as error:
            raise HandshakeError(Refusal.MALFORMED, str(error)) from None
        proof = handshake.compute_proof(options.secret.reveal(), "listener", options.cluster_id, theirs, ours)
        writer.write(encode_frame(handshake.encode_proof(proof)))
        log.info("peer_accepted", peer_id=theirs.node_id)
        return theirs.node_id

    async def _receive_frames(self, stream: FrameReader, peer_id: int) -> None:
        counter = self._counter(peer_id)
        while True:
            for payload in await stream.read_frames():
                message = codec.decode_message(payload)
                if message.from_id != peer_id or message.to != self._options.node_id:
                    raise CodecError(f"message from {message.from_id} to {message.to} "
                                     f"on the connection of node {peer_id}")
                counter.frames_in += 1
                # A full queue (or the driver's) slows only this peer's socket.
                deliver = self._deliver
                await (self._received.put(message) if deliver is None else deliver(message))

    # ------------------------------------------------------------------ statistics

    def _counter(self, node_id: int) -> _Counters:
        counter = self._counters.get(node_id)
        if counter is None:
            counter = self._counters[node_id] = _Counters()
        return counter

    def statistics(self) -> TransportStatistics:
        """A frozen snapshot of the per-peer counters."""
        return TransportStatistics({node_id: counter.freeze()
                                    for node_id, counter in self._counters.items()})


class _HandshakeSlots:
    """Inbound connections still in the handshake, in total and per source address."""

    def __init__(self, total_max: int, per_source_max: int) -> None:
        self._total_max = total_max
        self._per_source_max = per_source_max
        self._by_source: dict[str, int] = {}
        self.total = 0

    def take(self, source: str) -> bool:
        """Hold a slot for a connection from `source`; False when none is free."""
        held = self._by_source.get(source, 0)
        if self.total >= self._total_max or held >= self._per_source_max:
            return False
        self._by_source[source] = held + 1
        self.total += 1
        return True

    def release(self, source: str) -> None:
        held = self._by_source[source] - 1
        if held:
            self._by_source[source] = held
        else:
            del self._by_source[source]
        self.total -= 1


async def _bind(host: str, port: int) -> socket.socket:
    """A non-blocking listening socket on the first address `host` resolves to."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind(address)
        listener.listen(LISTEN_BACKLOG)
        listener.setblocking(False)
    except OSError:
        listener.close()
        raise
    return listener


async def _server_streams(sock: socket.socket) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over an accepted socket as `asyncio.start_server` makes them: the protocol has
    a connected callback, which is how `StreamWriter.start_tls` knows it is the server side."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    writers: list[asyncio.StreamWriter] = []
    protocol = asyncio.StreamReaderProtocol(reader, lambda _, writer: writers.append(writer),
                                            loop=loop)
    await loop.connect_accepted_socket(lambda: protocol, sock)
    return reader, writers[0]
