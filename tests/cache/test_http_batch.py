"""HttpClient.get_many: a replay batch over callback-driven keep-alive connections, with and
without HTTP/1.1 pipelining, against real servers: aiohttp (which pipelines), and raw
asyncio servers that close, stall or garble a pipelined round."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from warmd.cache.http import HttpClient
from warmd.cache.http_batch import FixedGate
from warmd.cache.http_raw import HttpProtocolError
from warmd.errors import CacheError, CacheUnavailable
from warmd.testing.servers import free_port

BODY = b"x" * 100


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b"alpha-", b"beta-", b"gamma"):
        await response.write(part)
    await response.write_eof()
    return response


async def _item(request: web.Request) -> web.Response:
    return web.Response(body=request.path_qs.encode() * 50)  # bodies of differing sizes


async def _close(request: web.Request) -> web.Response:
    return web.Response(text="bye", headers={"Connection": "close"})


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status")


@pytest.fixture
async def aiohttp_url() -> AsyncIterator[str]:
    """A real aiohttp server (it answers pipelined requests in order)."""
    app = web.Application()
    app.router.add_get("/chunked", _chunked)
    app.router.add_get("/close", _close)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/{tail:.*}", _item)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    await runner.cleanup()


PATHS = ["/chunked", "/status/404", "/close", "/status/503", "/caf\u00e9 menu", "/status/204",
         *(f"/item/{n}?q={n}" for n in range(40))]
EXPECTED = [200, 404, 200, 503, 200, 204, *([200] * 40)]


@pytest.mark.parametrize("pipeline", [1, 4, 16])
async def test_every_request_gets_its_own_answer(aiohttp_url: str, pipeline: int) -> None:
    """Chunked, 404, Connection: close, 503, a non-ASCII path, 204 and varied bodies: each
    position gets its own status, in order, pipelined or not, and bodies are counted."""
    client = HttpClient(base_url=aiohttp_url, pipeline=pipeline)
    gate = FixedGate(3)
    result = await client.get_many(PATHS, gate)
    assert result.statuses == EXPECTED and not result.errors
    assert result.ok == EXPECTED.count(200) + 1  # the 204 is a success too
    assert result.pipeline_fallbacks == 0 and len(result.latencies_s) == len(PATHS)
    expected_bytes = sum(len(f"/item/{n}?q={n}".encode()) * 50 for n in range(40))
    assert result.body_bytes >= expected_bytes
    assert gate.in_use == 0  # every slot went back
    again = await client.get_many(PATHS[6:], gate)  # kept-alive connections are reused
    assert again.statuses == EXPECTED[6:]
    await client.close()


async def test_the_gate_bounds_connections_at_work(aiohttp_url: str) -> None:
    """With a gate of 2, at most 2 connections are open at once, pipelined or not."""
    client = HttpClient(base_url=aiohttp_url, pipeline=8)
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
