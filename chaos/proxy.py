"""A fault-injecting TCP proxy between peers, one listener per directed link.

warmd's transport dials one outbound connection per peer and sends only on it, so the
link "i -> j" is exactly the connections node i dials to node j. Node i's config names
peer j at this proxy's listener for (i, j); the proxy forwards to j's real port. Blocking
a link closes its open connections and closes every new one at once, which to warmd looks
like a peer that cannot be reached: full, asymmetric and partial partitions are sets of
blocked links. The proxy runs its own event loop on a thread; its methods are thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable
from concurrent.futures import Future

Link = tuple[int, int]  # (from node, to node)
PUMP_CHUNK_BYTES = 65_536


class FaultProxy:
    """Listeners for every directed link among `ports` (node id -> real port)."""

    def __init__(self, ports: dict[int, int], host: str = "127.0.0.1") -> None:
        self._host = host
        self._targets = dict(ports)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="chaos-proxy",
                                        daemon=True)
        self._servers: list[asyncio.Server] = []
        self._open: dict[Link, set[asyncio.StreamWriter]] = {}
        self.blocked: frozenset[Link] = frozenset()
        self.listen_ports: dict[Link, int] = {}
        self.refused_connections = 0

    def start(self) -> FaultProxy:
        """Open every listener (on free ports); `listen_ports` then names them."""
        self._thread.start()
        self._run(self._listen_all()).result(timeout=10)
        return self

    def _run(self, coroutine: object) -> Future[object]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]

    async def _listen_all(self) -> None:
        for source in self._targets:
            for target in self._targets:
                if source != target:
                    await self._listen((source, target))

    async def _listen(self, link: Link) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(link, reader, writer)
        server = await asyncio.start_server(accept, self._host, 0)
        self._servers.append(server)
        self.listen_ports[link] = server.sockets[0].getsockname()[1]
        self._open[link] = set()

    async def _serve(self, link: Link, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        if link in self.blocked:
            self.refused_connections += 1
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self._host, self._targets[link[1]])
        except OSError:
            writer.close()
            return
        writers = {writer, upstream_writer}
        self._open[link] |= writers
        try:
            await asyncio.gather(self._pump(reader, upstream_writer),
                                 self._pump(upstream_reader, writer))
        finally:
            self._open[link] -= writers
            for each in writers:
                each.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(PUMP_CHUNK_BYTES):
                if writer.is_closing():  # blocked meanwhile: writing would raise in asyncio
                    break
                writer.write(data)
                await writer.drain()
        writer.close()

    def block(self, links: Iterable[Link]) -> None:
        """Replace the set of blocked links (an empty set heals everything)."""
        wanted = frozenset(links)
        self._run(self._apply(wanted)).result(timeout=10)

    async def _apply(self, wanted: frozenset[Link]) -> None:
        self.blocked = wanted
        for link in wanted:
            for writer in list(self._open.get(link, ())):
                writer.close()

    def close(self) -> None:
        """Close every listener and connection and stop the thread."""
        async def shutdown() -> None:
            await self._apply(frozenset(self._open))
            for server in self._servers:
                server.close()
        with contextlib.suppress(Exception):
            self._run(shutdown()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
