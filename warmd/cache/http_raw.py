"""A minimal HTTP/1.1 GET client on asyncio streams with keep-alive connection pools.

Why: aiohttp's client spends ~5x more CPU per request than a warm replay needs, and the
replay runs on the same cores as the services it warms. This client does only GET over
plain http (aiohttp handles https), Content-Length and chunked bodies, and keep-alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from warmd.errors import CacheError, CacheUnavailable

MAX_HEADER_BYTES = 64 * 1024


class HttpProtocolError(CacheError):
    """The server's response was not valid HTTP/1.1."""


def build_request(path: str, host_header: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers from the bytes before the blank line."""
    status_line, _, rest = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HttpProtocolError(f"bad status line {status_line[:80]!r}")
    headers = {}
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name:
            headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return int(parts[1]), headers


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one GET; return status, body, and whether the connection can be reused."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status, headers = parse_head(head[:-4])
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # no length: the body runs to the end of the connection
            return status, await self.reader.read(), False
        reusable = headers.get("connection", "").lower() != "close"
        return status, body, reusable

    async def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()


class RawHttpPool:
    """Keep-alive connections to one host:port, at most `size` open at once."""

    def __init__(self, host: str, port: int, *, size: int, timeout_s: float) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(size)

    async def get(self, request: bytes) -> tuple[int, bytes]:
        """Run one request on an idle or new connection; a reused connection that the
        server had already closed is retried once on a fresh one.

        Raises:
            CacheUnavailable: connect, reset or timeout.
            HttpProtocolError: the response could not be parsed.
        """
        async with self._slots:
            while self._idle:
                try:
                    return await self._run(self._idle.pop(), request)
                except CacheUnavailable:
                    continue  # stale keep-alive connection: try the next or a new one
            return await self._run(None, request)

    async def _run(self, connection: _Connection | None, request: bytes) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self.timeout_s):
                if connection is None:
                    reader, writer = await asyncio.open_connection(
                        self.host, self.port, limit=MAX_HEADER_BYTES)
                    connection = _Connection(reader, writer)
                status, body, reusable = await connection.exchange(request)
        except (OSError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError) as error:
            if connection is not None:
                connection.close()
            raise CacheUnavailable(f"http {self.host}:{self.port}", repr(error)) from error
        except (ValueError, HttpProtocolError) as error:
            if connection is not None:
                connection.close()
            raise HttpProtocolError(f"http {self.host}:{self.port}: {error}") from error
        except asyncio.CancelledError:
            if connection is not None:
                connection.close()  # a half-read response cannot be reused
            raise
        if reusable:
            self._idle.append(connection)
        else:
            connection.close()
        return status, body

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
