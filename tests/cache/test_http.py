"""HttpClient over both engines (raw keep-alive client and aiohttp) against a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from warmd.cache.http import HttpClient, HttpStatusError
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


@pytest.fixture
async def server_url() -> AsyncIterator[str]:
    """A real aiohttp server with chunked, echo, close and 503 routes."""
    app = web.Application()
    app.router.add_get("/chunked", _chunked)
    app.router.add_get("/echo", _echo)
    app.router.add_get("/close", _close)
    app.router.add_get("/busy", _unavailable)
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
])
def test_head_framing_is_read_case_insensitively(head: bytes, expected: ResponseHead) -> None:
    """Length, chunking and keep-alive come from their headers whatever their case, and a
    header that merely ends with a framing name is not taken for it."""
    assert parse_head(head) == expected

