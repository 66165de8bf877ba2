"""HttpClient over both engines (raw keep-alive client and aiohttp) against a real server,
and its batch path (get_many: callback-driven keep-alive connections, with and without
HTTP/1.1 pipelining) against aiohttp and raw asyncio servers that close, stall or garble a
pipelined round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from warmd.cache.http import HttpClient, HttpStatusError
from warmd.cache.http_batch import FixedGate
from warmd.cache.http_raw import HttpProtocolError, ResponseHead, parse_head
from warmd.errors import CacheError, CacheUnavailable
from warmd.testing.servers import free_port


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b"alpha-", b"beta-", b"gamma"):
        await response.write(part)
    await response.write_eof()
    return response


async def _echo(request: web.Request) -> web.Response:
    body = f"{request.host}|{request.headers.get('X-Warm', '')}|{request.path_qs}"
    return web.Response(text=body)


async def _close(request: web.Request) -> web.Response:
    return web.Response(text="bye", headers={"Connection": "close"})


async def _unavailable(request: web.Request) -> web.Response:
    return web.Response(status=503)


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status")


async def _item(request: web.Request) -> web.Response:
    return web.Response(body=request.path_qs.encode() * 50)  # bodies of differing sizes


@pytest.fixture
async def server_url() -> AsyncIterator[str]:
    """A real aiohttp server (it answers pipelined requests in order) with chunked, echo,
    close, 503 and any-status routes; other paths answer 200 with a body of their own size."""
    app = web.Application()
    app.router.add_get("/chunked", _chunked)
    app.router.add_get("/echo", _echo)
    app.router.add_get("/close", _close)
    app.router.add_get("/busy", _unavailable)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/{tail:.*}", _item)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


@pytest.mark.parametrize("engine", ["raw", "aiohttp"])
async def test_engines_agree(server_url: str, engine: str) -> None:
    """Chunked bodies, headers, Host override, Connection: close and 503 behave the same."""
    client = HttpClient(base_url=server_url, headers={"X-Warm": "1"}, host_header="shop.test",
                        engine=engine)  # type: ignore[arg-type]
    chunked = await client.get("/chunked", keep_body=True)
    assert (chunked.status, chunked.body, chunked.body_bytes) == (200, b"alpha-beta-gamma", 16)
    echo = await client.get("/echo?a=1&b=2", keep_body=True)
    assert echo.body == b"shop.test|1|/echo?a=1&b=2" and echo.latency_s > 0
    for _ in range(3):  # the closed connection is replaced, not reused
        assert (await client.get("/close", keep_body=True)).body == b"bye"
    with pytest.raises(HttpStatusError) as busy:
        await client.get("/busy")
    assert busy.value.status == 503 and busy.value.transient
    await client.close()


async def test_keep_alive_survives_server_side_close(server_url: str) -> None:
    """Many sequential GETs reuse a few connections and keep working after the server
    drops idle ones (a stale connection is retried once on a fresh one)."""
    client = HttpClient(base_url=server_url, connection_limit=4)
    for number in range(50):
        assert (await client.get(f"/echo?n={number}")).status == 200
    pool = next(iter(client._pools.values()))
    assert len(pool._idle) == 1
    for connection in pool._idle:  # simulate the server closing idle keep-alives
        connection.writer.transport.abort()
    assert (await client.get("/echo")).status == 200
    await client.close()


@pytest.mark.parametrize("engine", ["raw", "aiohttp"])
async def test_unreachable_origin_is_cache_unavailable(engine: str) -> None:
    """A port nobody listens on gives CacheUnavailable from both engines."""
    client = HttpClient(base_url=f"http://127.0.0.1:{free_port()}", timeout_s=1,
                        engine=engine)  # type: ignore[arg-type]
    with pytest.raises(CacheUnavailable):
        await client.get("/x")
    await client.close()


def test_bad_input_is_rejected_clearly() -> None:
    """A garbage status line and an unknown engine are clear errors."""
    with pytest.raises(HttpProtocolError, match="bad status line"):
        parse_head(b"SMTP ready\r\nx: y")
    with pytest.raises(HttpProtocolError, match="Content-Length"):
        parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -5")
    with pytest.raises(CacheError, match="engine"):
        HttpClient(engine="curl")  # type: ignore[arg-type]


@pytest.mark.parametrize(("head", "expected"), [
    (b"HTTP/1.1 204 No Content\r\nX-A: b", ResponseHead(204, None, False, True)),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: keep-alive",
     ResponseHead(200, 12, False, True)),
    (b"HTTP/1.0 200 OK\r\ncontent-length:7\r\nCONNECTION:  Close ",
     ResponseHead(200, 7, False, False)),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nX-Content-Length: 9",
     ResponseHead(200, None, True, True)),
    (b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive", ResponseHead(200, None, False, True)),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 3", ResponseHead(200, 3, False, False)),
])
def test_head_framing_is_read_case_insensitively(head: bytes, expected: ResponseHead) -> None:
    """Length, chunking and keep-alive come from their headers whatever their case, and a
    header that merely ends with a framing name is not taken for it."""
    assert parse_head(head) == expected


# --- get_many: the replay batch path ---------------------------------------------------

BODY = b"x" * 100
PATHS = ["/chunked", "/status/404", "/close", "/status/503", "/caf\u00e9 menu", "/status/204",
         *(f"/item/{n}?q={n}" for n in range(40))]
EXPECTED = [200, 404, 200, 503, 200, 204, *([200] * 40)]


@pytest.mark.parametrize("pipeline", [1, 4, 16])
async def test_every_request_gets_its_own_answer(server_url: str, pipeline: int) -> None:
    """Chunked, 404, Connection: close, 503, a non-ASCII path, 204 and varied bodies: each
    position gets its own status, in order, pipelined or not, and bodies are counted."""
    client = HttpClient(base_url=server_url, pipeline=pipeline)
    gate = FixedGate(3)
    result = await client.get_many(PATHS, gate)
    assert result.statuses == EXPECTED and not result.errors
    assert result.ok == EXPECTED.count(200) + 1  # the 204 is a success too
    assert result.pipeline_fallbacks == 0 and len(result.latencies_s) == len(PATHS)
    expected_bytes = sum(len(f"/item/{n}?q={n}".encode()) * 50 for n in range(40))
    assert result.body_bytes >= expected_bytes
    assert gate.in_use == 0  # every slot went back
    again = await client.get_many(PATHS[6:])  # kept-alive connections are reused
    assert again.statuses == EXPECTED[6:]
    await client.close()


async def test_the_gate_bounds_connections_at_work(server_url: str) -> None:
    """With a gate of 2, at most 2 connections are open at once, pipelined or not."""
    client = HttpClient(base_url=server_url, pipeline=8)
    gate = FixedGate(2)
    seen = []
    original = gate.try_acquire

    def counting() -> bool:
        taken = original()
        seen.append(gate.in_use)
        return taken

    gate.try_acquire = counting  # type: ignore[method-assign]
    result = await client.get_many([f"/n/{n}" for n in range(200)], gate)
    assert result.ok == 200 and max(seen) <= 2 and gate.in_use == 0
    await client.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _answer(body: bytes = BODY) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def _one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads whatever came, answers one request, closes without saying so."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(_answer())
    await writer.drain()
    writer.close()


async def _one_then_stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers the first request of each read and ignores the rest (keeps the socket open)."""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            writer.write(_answer())
    except ConnectionError:
        pass
    finally:
        writer.close()


ANSWERED = [0]  # by _garbled_second, over all its connections


async def _garbled_second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request in order, but its second answer (of all) is garbage."""
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            ANSWERED[0] += 1
            writer.write(b"SMTP ready\r\n\r\n" if ANSWERED[0] == 2 else _answer())
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.mark.parametrize("handler", [_one_then_close, _one_then_stall])
async def test_a_server_that_does_not_pipeline_is_detected(handler: Handler) -> None:
    """A server that closes a pipelined round unannounced, or answers only its first
    request: the pool stops pipelining and every request still gets exactly one answer."""
    server, url = await _serve(handler)
    client = HttpClient(base_url=url, pipeline=8, timeout_s=0.3)
    gate = FixedGate(4)
    async with server:
        result = await client.get_many([f"/p/{n}" for n in range(30)], gate)
    assert not result.errors, result.errors
    assert result.statuses == [200] * 30
    assert result.pipeline_fallbacks >= 1 and gate.in_use == 0
    assert client._batch_pool is not None and client._batch_pool.depth == 1
    await client.close()


async def test_a_garbled_answer_fails_its_request_only() -> None:
    """An answer that does not parse fails that request with HttpProtocolError; the others
    of its pipelined round are sent again one at a time and succeed."""
    server, url = await _serve(_garbled_second)
    client = HttpClient(base_url=url, pipeline=4)
    async with server:
        result = await client.get_many([f"/g/{n}" for n in range(4)], FixedGate(1))
    failed = [position for position, status in enumerate(result.statuses) if status != 200]
    assert failed == [1] and isinstance(result.errors[1], HttpProtocolError)
    assert result.ok == 3
    await client.close()


async def test_an_unreachable_origin_fails_every_request_as_unavailable() -> None:
    """Nothing listens: each request ends with CacheUnavailable (transient), none hangs."""
    client = HttpClient(base_url=f"http://127.0.0.1:{free_port()}", pipeline=4, timeout_s=1)
    gate = FixedGate(2)
    result = await client.get_many([f"/u/{n}" for n in range(9)], gate)
    assert result.statuses == [0] * 9 and result.ok == 0
    assert sorted(result.errors) == list(range(9))
    assert all(isinstance(error, CacheUnavailable) for error in result.errors.values())
    assert gate.in_use == 0
    await client.close()


async def test_cancelling_a_batch_gives_its_slots_back() -> None:
    """A cancelled get_many closes the connections at work and releases their slots."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers

    server, url = await _serve(silent)
    client = HttpClient(base_url=url, pipeline=2, timeout_s=30)
    gate = FixedGate(3)
    async with server:
        batch = asyncio.ensure_future(client.get_many([f"/s/{n}" for n in range(10)], gate))
        await asyncio.sleep(0.2)
        assert gate.in_use == 3
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
    assert gate.in_use == 0
    await client.close()


def test_only_paths_on_a_plain_http_base_are_batched() -> None:
    """https, aiohttp, absolute URLs or a bad pipeline depth are refused clearly."""
    assert HttpClient(base_url="http://a.test").batchable(["/x", "/y?z=1"])
    assert not HttpClient(base_url="https://a.test").batchable(["/x"])
    assert not HttpClient(base_url="http://a.test", engine="aiohttp").batchable(["/x"])
    assert not HttpClient(base_url="http://a.test").batchable(["http://b.test/x", "//b/x"])
    with pytest.raises(CacheError, match="pipeline"):
        HttpClient(base_url="http://a.test", pipeline=0)


async def _slow_chunked_then_close(reader: asyncio.StreamReader,
                                   writer: asyncio.StreamWriter) -> None:
    """Answers one request with a chunked body in two parts 50 ms apart, announcing close."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                 b"5\r\nhello\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    writer.close()


async def test_an_announced_close_waits_for_the_answer_to_finish() -> None:
    """A chunked answer saying Connection: close is read to its end before the connection
    is let go; the rest of its pipelined round is sent again on new connections."""
    server, url = await _serve(_slow_chunked_then_close)
    client = HttpClient(base_url=url, pipeline=4)
    async with server, asyncio.timeout(10):
        result = await client.get_many([f"/c/{n}" for n in range(3)], FixedGate(1))
    assert result.statuses == [200] * 3 and result.pipeline_fallbacks == 0
    await client.close()
