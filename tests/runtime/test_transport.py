"""TcpTransport between real sockets on loopback: delivery, authentication, isolation of faults."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import uvloop
from structlog.testing import capture_logs

from warmd import codec
from warmd.frames import FRAME_HEADER, FrameDecoder, encode_frame
from warmd.raft.types import Entry, Message, MessageType
from warmd.runtime.node import handshake
from warmd.runtime.node.handshake import Hello
from warmd.runtime.node.transport import TcpTransport, TransportOptions

SECRET = b"correct horse battery staple"
CLUSTER = "test-cluster"
TIMEOUT_S = 5.0


def _options(node_id: int, **overrides: object) -> TransportOptions:
    settings: dict[str, object] = {
        "cluster_id": CLUSTER, "node_id": node_id, "secret": SECRET,
        "reconnect_initial_s": 0.02, "reconnect_max_s": 0.2, "handshake_timeout_s": 2.0,
    }
    settings.update(overrides)
    return TransportOptions(**settings)  # type: ignore[arg-type]


def _heartbeat(from_id: int, to: int, term: int = 1) -> Message:
    return Message(MessageType.HEARTBEAT, from_id, to, term=term)


@pytest.fixture
async def started() -> AsyncIterator[Callable[..., Awaitable[TcpTransport]]]:
    """Start transports on free ports; close all of them after the test."""
    transports: list[TcpTransport] = []

    async def start(node_id: int, **overrides: object) -> TcpTransport:
        transport = TcpTransport(_options(node_id, **overrides))
        await transport.start()
        transports.append(transport)
        return transport

    yield start
    for transport in transports:
        await transport.close()


def _connect(*transports: TcpTransport) -> None:
    addresses = {t._options.node_id: t.listen_address for t in transports}
    for transport in transports:
        transport.update_peers(addresses)


def _count(transport: TcpTransport, node_id: int, counter: str) -> int:
    """One counter of one peer, 0 while the peer has no counters yet."""
    peer = transport.statistics().peers.get(node_id)
    return 0 if peer is None else getattr(peer, counter)


async def _next(transport: TcpTransport, iterator: AsyncIterator[Message] | None = None) -> Message:
    source = iterator or transport.received()
    return await asyncio.wait_for(anext(source), TIMEOUT_S)


async def _wait_until(condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def _nothing_arrives(transport: TcpTransport, wait_s: float = 0.4) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(transport.received()), wait_s)


async def test_three_transports_exchange_messages(started) -> None:
    """Every node receives exactly what each other node sent it, with entries intact."""
    nodes = [await started(node_id) for node_id in (1, 2, 3)]
    _connect(*nodes)
    entries = (Entry(2, 5, data=b"payload"), Entry(2, 6, data=b"more"))
    for sender in nodes:
        own = sender._options.node_id
        await sender.send([Message(MessageType.APPEND, own, other, term=2, entries=entries)
                           for other in (1, 2, 3) if other != own])
    for receiver in nodes:
        iterator = receiver.received()
        got = {(await _next(receiver, iterator)).from_id for _ in range(2)}
        assert got == {1, 2, 3} - {receiver._options.node_id}
    statistics = nodes[0].statistics()
    assert statistics.peers[2].frames_out == 1 and statistics.peers[2].frames_in == 1
    assert statistics.peers[2].connected


async def test_message_fields_survive_the_wire(started) -> None:
    """A message arrives equal to the one sent."""
    first, second = await started(1), await started(2)
    _connect(first, second)
    message = Message(MessageType.APPEND, 1, 2, term=3, log_term=2, index=9,
                      entries=(Entry(3, 10, data=b"x" * 1000),), commit=8, context=b"ctx")
    await first.send([message])
    assert await _next(second) == message


async def test_wrong_secret_is_refused(started) -> None:
    """A node with another secret cannot deliver anything and is counted as an auth failure."""
    listener = await started(1)
    intruder = await started(2, secret=b"a different secret value")
    _connect(listener, intruder)
    with capture_logs() as logs:
        await intruder.send([_heartbeat(2, 1)])
        await _wait_until(lambda: listener.statistics().total("auth_failures") >= 1)
    await _nothing_arrives(listener)
    assert any(event["event"] == "handshake_refused" and event["reason"] == "bad_proof"
               for event in logs)


async def test_wrong_cluster_is_refused(started) -> None:
    """A node of another cluster is refused before any proof is exchanged."""
    listener = await started(1)
    stranger = await started(2, cluster_id="other-cluster")
    _connect(listener, stranger)
    with capture_logs() as logs:
        await stranger.send([_heartbeat(2, 1)])
        await _wait_until(lambda: listener.statistics().total("auth_failures") >= 1)
    await _nothing_arrives(listener)
    assert any(event.get("reason") == "wrong_cluster" for event in logs)


async def _raw_handshake(port: int, node_id: int, nonce: bytes | None = None,
                         proof: bytes | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, list[bytes]]:
    """Dial like a peer by hand; returns the connection and the frames we sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ours = Hello(CLUSTER, node_id, nonce or handshake.random_nonce())
    sent = [encode_frame(handshake.encode_hello(ours))]
    writer.write(sent[0])
    decoder = FrameDecoder(1024)
    frames: list[bytes] = []
    while not frames:
        frames = decoder.feed(await asyncio.wait_for(reader.read(1024), TIMEOUT_S))
    theirs = handshake.decode_hello(frames[0])
    proof = proof or handshake.compute_proof(SECRET, "dialer", CLUSTER, ours, theirs)
    sent.append(encode_frame(handshake.encode_proof(proof)))
    writer.write(sent[1])
    return reader, writer, sent


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    received = b""
    while chunk := await asyncio.wait_for(reader.read(4096), TIMEOUT_S):
        received += chunk
    return received


async def test_replayed_handshake_is_refused(started) -> None:
    """Replaying a recorded hello+proof, or an old proof with a fresh hello, is refused."""
    listener = await started(1)
    port = listener.listen_address[1]
    _, writer, recorded = await _raw_handshake(port, 2)
    writer.write(encode_frame(codec.encode_message(_heartbeat(2, 1))))
    assert (await _next(listener)).from_id == 2
    writer.close()
    with capture_logs() as logs:
        replay_reader, replay_writer = await asyncio.open_connection("127.0.0.1", port)
        replay_writer.write(b"".join(recorded))
        await _read_until_closed(replay_reader)
        old_proof = handshake.decode_proof(recorded[1][FRAME_HEADER.size:])
        fresh_reader, fresh_writer, _ = await _raw_handshake(port, 2, proof=old_proof)
        await _read_until_closed(fresh_reader)  # keep fresh_writer referenced until here
        fresh_writer.close()
    reasons = [event.get("reason") for event in logs if event["event"] == "handshake_refused"]
    assert reasons == ["replayed_nonce", "bad_proof"]
    assert listener.statistics().peers[0].auth_failures == 2


async def test_oversized_frame_closes_only_that_connection(started) -> None:
    """An oversized frame from one peer closes its connection; another peer keeps working."""
    listener = await started(1, max_frame_bytes=64 * 1024)
    good = await started(2)
    _connect(listener, good)
    reader, writer, _ = await _raw_handshake(listener.listen_address[1], 3)
    writer.write(FRAME_HEADER.pack(10 * 1024 * 1024) + b"\x00" * 100)
    await _read_until_closed(reader)
    assert listener.statistics().peers[3].oversized == 1
    await good.send([_heartbeat(2, 1, term=7)])
    message = await _next(listener)
    assert (message.from_id, message.term) == (2, 7)


async def test_garbage_from_raw_socket_counts_as_malformed(started) -> None:
    """Garbage before or after the handshake is counted as malformed and closes the connection."""
    listener = await started(1)
    port = listener.listen_address[1]
    with capture_logs() as logs:
        raw_reader, raw_writer = await asyncio.open_connection("127.0.0.1", port)
        raw_writer.write(b"\x00\x00\x00\x08GARBAGE!")
        await _read_until_closed(raw_reader)
        reader, writer, _ = await _raw_handshake(port, 3)
        writer.write(encode_frame(b"\xc1 not msgpack"))
        await _read_until_closed(reader)
    statistics = listener.statistics()
    assert statistics.peers[0].malformed == 1 and statistics.peers[3].malformed == 1
    assert any(event["event"] == "frame_malformed" for event in logs)


async def test_spoofed_sender_is_malformed(started) -> None:
    """A peer cannot send messages in another node's name."""
    listener = await started(1)
    reader, writer, _ = await _raw_handshake(listener.listen_address[1], 3)
    writer.write(encode_frame(codec.encode_message(_heartbeat(2, 1))))
    await _read_until_closed(reader)
    assert listener.statistics().peers[3].malformed == 1
    await _nothing_arrives(listener, wait_s=0.1)


async def test_reconnects_after_peer_restart(started) -> None:
    """After a peer restarts on the same port, messages flow again through a new connection."""
    sender, receiver = await started(1), await started(2)
    _connect(sender, receiver)
    await sender.send([_heartbeat(1, 2)])
    await _next(receiver)
    port = receiver.listen_address[1]
    await receiver.close()
    restarted = await started(2, listen_port=port)
    iterator = restarted.received()
    arrived = asyncio.ensure_future(anext(iterator))
    deadline = time.monotonic() + TIMEOUT_S
    while not arrived.done():
        assert time.monotonic() < deadline, "no delivery after restart"
        await sender.send([_heartbeat(1, 2, term=9)])
        await asyncio.wait([arrived], timeout=0.05)
    assert arrived.result().term == 9
    assert sender.statistics().peers[2].reconnects >= 1


async def test_a_peer_that_dials_in_is_redialed_without_waiting_out_the_backoff(started) -> None:
    """A restarted peer's handshake on our listener proves it is up: our dialer, asleep in
    a long backoff, redials at once, so our messages reach it in well under the backoff
    (with another member down, every commit and read waits for this link)."""
    sender = await started(1, reconnect_initial_s=5.0, reconnect_max_s=5.0)
    receiver = await started(2)
    _connect(sender, receiver)
    await sender.send([_heartbeat(1, 2)])
    await _next(receiver)
    port = receiver.listen_address[1]
    await receiver.close()
    await _wait_until(lambda: not sender.statistics().peers[2].connected)
    # The sender now sleeps 2.5-5 s before it dials again.
    restarted = await started(2, listen_port=port)
    restarted.update_peers({1: sender.listen_address})
    await restarted.send([_heartbeat(2, 1)])  # it dials us
    await _next(sender)
    started_s = time.monotonic()
    await sender.send([_heartbeat(1, 2, term=9)])
    message = await asyncio.wait_for(anext(restarted.received()), 2.0)
    assert message.term == 9
    assert time.monotonic() - started_s < 2.0


async def test_dead_or_unknown_peer_never_blocks_or_raises(started) -> None:
    """Sending to an unknown node or a port nobody listens on returns at once and is counted."""
    sender = await started(1, outbound_queue_messages=4)
    sender.update_peers({2: ("127.0.0.1", 1)})
    started_s = time.monotonic()
    for _ in range(10):
        await sender.send([_heartbeat(1, 2), _heartbeat(1, 99)])
    assert time.monotonic() - started_s < 0.1
    statistics = sender.statistics()
    assert statistics.peers[99].dropped == 10
    assert statistics.peers[2].dropped >= 6


async def test_slow_peer_does_not_block_sends(started) -> None:
    """A peer that stops reading fills only its own bounded queue; others still get messages."""
    sender = await started(1, outbound_queue_messages=8)
    slow = await started(2, received_queue_messages=1)  # nobody consumes its messages
    fast = await started(3)
    _connect(sender, slow, fast)
    big = (Entry(1, 1, data=b"z" * 256 * 1024),)
    slowest_send_s = 0.0
    for _ in range(200):
        started_s = time.perf_counter()
        await sender.send([Message(MessageType.APPEND, 1, 2, term=1, entries=big)])
        slowest_send_s = max(slowest_send_s, time.perf_counter() - started_s)
        await asyncio.sleep(0)
    await _wait_until(lambda: _count(sender, 2, "dropped") > 0)
    assert slowest_send_s < 0.05
    await sender.send([_heartbeat(1, 3, term=4)])
    assert (await _next(fast)).term == 4


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    certificate, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(certificate), "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return certificate, key


async def test_tls_transport_exchanges_messages(started, tmp_path: Path) -> None:
    """With TLS contexts on both sides messages flow; a plaintext dialer is refused."""
    certificate, key = _self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate, key)
    client_context = ssl.create_default_context(cafile=str(certificate))
    tls = {"server_ssl": server_context, "client_ssl": client_context,
           "tls_server_hostname": "localhost"}
    first, second = await started(1, **tls), await started(2, **tls)
    _connect(first, second)
    await first.send([_heartbeat(1, 2, term=5)])
    assert (await _next(second)).term == 5
    plain = await started(3)
    plain.update_peers({2: second.listen_address})
    with capture_logs() as logs:
        await plain.send([_heartbeat(3, 2)])
        await _wait_until(lambda: _count(second, 0, "auth_failures") >= 1)
    await _nothing_arrives(second)
    assert any(event.get("reason") == "tls_failed" for event in logs)


async def test_tls_dialer_refuses_an_untrusted_certificate(started, tmp_path: Path) -> None:
    """A dialer that does not trust the listener's certificate counts an auth failure."""
    certificate, key = _self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate, key)
    listener = await started(1, server_ssl=server_context)
    dialer = await started(2, client_ssl=ssl.create_default_context(),
                           tls_server_hostname="localhost")
    dialer.update_peers({1: listener.listen_address})
    await dialer.send([_heartbeat(2, 1)])
    await _wait_until(lambda: _count(dialer, 1, "auth_failures") >= 1)
    await _nothing_arrives(listener, wait_s=0.1)


async def test_silent_connection_times_out_in_handshake(started) -> None:
    """A connection that never says hello is closed after the handshake timeout and counted."""
    listener = await started(1, handshake_timeout_s=0.2)
    reader, writer = await asyncio.open_connection(*listener.listen_address)
    await _read_until_closed(reader)
    writer.close()
    assert listener.statistics().peers[0].auth_failures == 1


async def test_received_ends_after_close(started) -> None:
    """Iterating received() finishes once the transport is closed."""
    transport = await started(1)
    iterator = transport.received()
    pending = asyncio.ensure_future(anext(iterator))
    await transport.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, TIMEOUT_S)


def test_transport_runs_on_uvloop_with_tls(tmp_path: Path) -> None:
    """The transport, TLS upgrade included, works unchanged on uvloop, the daemon's event loop."""
    certificate, key = _self_signed_certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(certificate, key)
    tls = {"server_ssl": server_context, "tls_server_hostname": "localhost",
           "client_ssl": ssl.create_default_context(cafile=str(certificate))}

    async def exchange() -> int:
        first = TcpTransport(_options(1, **tls))
        second = TcpTransport(_options(2, **tls))
        await first.start()
        await second.start()
        _connect(first, second)
        await first.send([_heartbeat(1, 2, term=11)])
        message = await _next(second)
        await first.close()
        await second.close()
        return message.term

    assert uvloop.run(exchange()) == 11


def test_options_reject_bad_values() -> None:
    """Nonsense settings fail at construction with a clear ValueError."""
    with pytest.raises(ValueError, match="secret"):
        TransportOptions(cluster_id=CLUSTER, node_id=1, secret=b"short")
    with pytest.raises(ValueError, match="node_id"):
        TransportOptions(cluster_id=CLUSTER, node_id=0, secret=SECRET)
    with pytest.raises(ValueError, match="tls_server_hostname"):
        TransportOptions(cluster_id=CLUSTER, node_id=1, secret=SECRET,
                         client_ssl=ssl.create_default_context())


async def test_update_peers_moves_and_removes_peers(started) -> None:
    """A changed address is dialed anew; a removed peer's messages are dropped, not sent."""
    sender, old_home, new_home = await started(1), await started(2), await started(2)
    sender.update_peers({2: old_home.listen_address})
    await sender.send([_heartbeat(1, 2, term=1)])
    assert (await _next(old_home)).term == 1
    sender.update_peers({2: new_home.listen_address})
    await sender.send([_heartbeat(1, 2, term=2)])
    assert (await _next(new_home)).term == 2
    sender.update_peers({})
    await sender.send([_heartbeat(1, 2, term=3)])
    assert _count(sender, 2, "dropped") == 1
    await _nothing_arrives(new_home, wait_s=0.1)


async def test_dialer_whose_proof_is_refused_warns_naming_the_peer(started) -> None:
    """The node with the wrong secret learns why it was refused and logs it once, at warning."""
    listener = await started(1)
    intruder = await started(2, secret=b"a different secret value")
    _connect(listener, intruder)
    with capture_logs() as logs:
        await intruder.send([_heartbeat(2, 1)])
        await _wait_until(lambda: _count(intruder, 1, "auth_failures") >= 2)
    refused = [event for event in logs if event["event"] == "handshake_refused"
               and event.get("side") == "dialer"]
    assert refused[0]["log_level"] == "warning" and refused[0]["peer_id"] == 1
    assert refused[0]["reason"] == "refused_by_peer" and "bad_proof" in refused[0]["detail"]
    assert [event["log_level"] for event in refused[1:]] == ["debug"] * (len(refused) - 1)


HELD: list[asyncio.StreamWriter] = []  # a writer collected as garbage closes its connection


async def _hold_connections(address: tuple[str, int], sources: list[str]) -> list[asyncio.StreamReader]:
    """Open one silent connection from each source address (127.0.0.x); keep them open."""
    readers = []
    for source in sources:
        reader, writer = await asyncio.open_connection(*address, local_addr=(source, 0))
        readers.append(reader)
        HELD.append(writer)
    return readers


async def _closed_at_once(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 0.3) == b""
    except TimeoutError:
        return False


async def test_handshakes_are_capped_in_total_and_per_source(started) -> None:
    """Past the caps, a new connection is closed unread; a held slot frees at the deadline."""
    listener = await started(1, handshakes_max=4, handshakes_per_source_max=2,
                             handshake_timeout_s=2.0)
    address = listener.listen_address
    held = await _hold_connections(address, ["127.0.0.2", "127.0.0.2"])
    (third_from_same,) = await _hold_connections(address, ["127.0.0.2"])
    assert await _closed_at_once(third_from_same)
    held += await _hold_connections(address, ["127.0.0.3", "127.0.0.4"])
    (fifth,) = await _hold_connections(address, ["127.0.0.5"])
    assert await _closed_at_once(fifth)
    assert not any(await asyncio.gather(*map(_closed_at_once, held)))
    assert listener.statistics().peers[0].busy_refusals == 2
    peer = await started(2)  # once the held ones time out, a real peer gets through
    _connect(listener, peer)
    await peer.send([_heartbeat(2, 1)])
    assert (await _next(listener)).from_id == 2
    for writer in HELD:
        writer.close()
    HELD.clear()


async def test_accept_pauses_when_descriptors_run_out(started) -> None:
    """EMFILE on accept pauses the listener (counted, logged); it serves again once fds free."""
    import os
    import resource

    listener = await started(1)
    peer = await started(2)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hoard: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 64, hard))
    try:
        with capture_logs() as logs:
            with contextlib.suppress(OSError):
                while True:
                    hoard.append(os.open("/dev/null", os.O_RDONLY))
            os.close(hoard.pop())  # room for the dialer's socket, none for accept's
            _connect(listener, peer)
            await peer.send([_heartbeat(2, 1)])
            await _wait_until(lambda: _count(listener, 0, "accept_pauses") >= 1)
            for fd in hoard:
                os.close(fd)
            hoard.clear()
            assert (await _next(listener)).from_id == 2
    finally:
        for fd in hoard:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    paused = [event for event in logs if event["event"] == "peer_accept_paused"]
    assert paused[0]["log_level"] == "warning" and paused[0]["error"] == "EMFILE"


async def test_queued_and_direct_writes_keep_their_order(started) -> None:
    """Messages sent while the connection is being made wait in the queue; once it is up a
    Ready's messages are written at once (one write per peer). Sent in both ways, in
    bursts, they arrive in the order they were sent and every frame is counted out."""
    sender, receiver = await started(1), await started(2)
    _connect(sender, receiver)
    for term in range(1, 101):  # before the connection exists: all through the queue
        await sender.send([_heartbeat(1, 2, term)])
    await _wait_until(lambda: _count(sender, 2, "frames_out") == 100)
    assert sender._peers[2].live is not None and not sender._peers[2].queue
    term = 100
    for _ in range(50):  # the connection is up: each burst in one direct write
        await sender.send([_heartbeat(1, 2, term + 1), _heartbeat(1, 2, term + 2)])
        term += 2
    iterator = receiver.received()
    terms = [(await _next(receiver, iterator)).term for _ in range(200)]
    assert terms == list(range(1, 201))
    assert _count(sender, 2, "frames_out") == 200 and _count(sender, 2, "dropped") == 0


async def test_deliver_to_hands_messages_over_in_order_and_gives_them_back(started) -> None:
    """With `deliver_to`, received messages go to the callable, in order, and not to
    `received()`; a waiting callable holds that peer's socket back; None restores `received()`."""
    sender, receiver = await started(1), await started(2)
    _connect(sender, receiver)
    delivered: list[Message] = []
    gate = asyncio.Event()

    async def deliver(message: Message) -> None:
        delivered.append(message)
        if message.term == 3:
            await gate.wait()  # back-pressure: nothing after it is read meanwhile

    receiver.deliver_to(deliver)
    await sender.send([_heartbeat(1, 2, term) for term in (1, 2, 3, 4)])
    await _wait_until(lambda: len(delivered) == 3)
    await asyncio.sleep(0.05)
    assert [message.term for message in delivered] == [1, 2, 3]
    gate.set()
    await _wait_until(lambda: len(delivered) == 4)
    assert delivered[-1].term == 4
    await _nothing_arrives(receiver, 0.1)
    receiver.deliver_to(None)
    await sender.send([_heartbeat(1, 2, term=5)])
    assert (await _next(receiver)).term == 5 and len(delivered) == 4
