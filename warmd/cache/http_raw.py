"""A minimal HTTP/1.1 GET client on asyncio streams with keep-alive connection pools.

Why: aiohttp's client spends ~5x more CPU per request than a warm replay needs, and the
replay runs on the same cores as the services it warms. This client does only GET over
plain http (aiohttp handles https), Content-Length and chunked bodies, and keep-alive.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote

from warmd.errors import CacheError, CacheUnavailable

MAX_HEADER_BYTES = 64 * 1024


class HttpProtocolError(CacheError):
    """The server's response was not valid HTTP/1.1."""


def request_tail(host_header: str, headers: Mapping[str, str]) -> bytes:
    """Everything of a GET after its request line: the same for every request to one host,
    so a client builds it once per host and only the path changes."""
    lines = [f"Host: {host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# A request target with a byte outside visible ASCII (non-ASCII, space, CR/LF: a log line's
# path must not be able to add a header) is %-encoded, keeping these as they are.
_TARGET_SAFE = "/?&=%:;@!$'()*+,~-._[]"
_TARGET_UNSAFE = re.compile(r"[^\x21-\x7e]")


def build_request(path: str, tail: bytes) -> bytes:
    """The GET of `path` (a request target; a fragment is dropped, characters a request
    line cannot hold are %-encoded as UTF-8, as a browser does)."""
    if "#" in path:
        path = path.partition("#")[0]
    if _TARGET_UNSAFE.search(path):
        path = quote(path, safe=_TARGET_SAFE)
    return b"GET " + path.encode("ascii") + b" HTTP/1.1\r\n" + tail


class ResponseHead(NamedTuple):
    """What the client needs from a response head: the status and how the body is framed
    (a tuple: a pipelined batch makes one per answer, and a frozen dataclass costs 3x)."""

    status: int
    content_length: int | None
    chunked: bool
    keep_alive: bool


# Only the framing headers are read, found by one C-level search of the head instead of a
# dict of every header decoded and lower-cased (a third of the client's CPU per request).
_FRAMING = re.compile(rb"\r\n(content-length|transfer-encoding|connection)[ \t]*:([^\r]*)",
                      re.IGNORECASE)


_CONTENT_LENGTH, _TRANSFER_ENCODING = len("content-length"), len("transfer-encoding")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) (\d{3})(?=[ \r]|$)")


def parse_head(head: bytes, start: int = 0, end: int | None = None) -> ResponseHead:
    """Status code and body framing from the bytes before the blank line (`head[start:end]`,
    so a pipelined reader need not copy each head out of its buffer).

    Raises:
        HttpProtocolError: a bad status line or Content-Length.
    """
    end = len(head) if end is None else end
    status_line = _STATUS_LINE.match(head, start, end)
    if status_line is None:
        line_end = head.find(b"\r\n", start, end)
        raise HttpProtocolError(f"bad status line {head[start:line_end][:80]!r}")
    length, chunked = None, False
    keep_alive = status_line.group(1) == b"1"  # HTTP/1.0 closes unless it says keep-alive
    for name, value in _FRAMING.findall(head, start, end):
        value = value.strip()
        if len(name) == _CONTENT_LENGTH:  # the names differ in length: no lower() needed
            if not value.isdigit():
                raise HttpProtocolError(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        elif len(name) == _TRANSFER_ENCODING:
            chunked = value.lower() == b"chunked"
        else:
            value = value.lower()
            keep_alive = value != b"close" if keep_alive else value == b"keep-alive"
    return ResponseHead(int(status_line.group(2)), length, chunked, keep_alive)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one GET; return status, body, and whether the connection can be reused."""
        self.writer.write(request)
        head = parse_head((await self.reader.readuntil(b"\r\n\r\n"))[:-4])
        status = head.status
        if head.chunked:
            body = await self._read_chunked()
        elif head.content_length is not None:
            body = await self.reader.readexactly(head.content_length)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:  # no length: the body runs to the end of the connection
            return status, await self.reader.read(), False
        return status, body, head.keep_alive

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
