"""A real aiohttp origin for tests and benchmarks that counts its own concurrency.

It models a service with `capacity` workers, each taking `service_time_s` per request:
requests beyond capacity queue, so latency grows with concurrency as in a real origin.
Tests change `capacity`, `service_time_s` and `fail_ratio` (503 injection, seeded) while it runs.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from warmd.testing.servers import ServerProcess, ServerStartError, _wait_port, free_port


@dataclass
class OriginState:
    """Live knobs and counters of a TestOrigin."""

    capacity: int = 64
    service_time_s: float = 0.0
    fail_ratio: float = 0.0  # share of requests answered 503, drawn from a seeded RNG
    seed: int = 0
    body_bytes: int = 100
    in_flight: int = 0
    in_flight_max: int = 0
    requests: int = 0
    failures: int = 0
    not_found: int = 0
    latencies_s: list[float] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    _busy: int = 0
    _free: asyncio.Condition | None = None
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        # Random, not every n-th: a fixed period can lock step with the retries of a few
        # workers and fail the same key every time.
        self.rng = random.Random(self.seed)

    def reset_counters(self) -> None:
        self.in_flight_max = self.in_flight
        self.requests = self.failures = 0
        self.latencies_s = []
        self.paths = []


class TestOrigin:
    """`async with TestOrigin() as origin:` serves on a free loopback port."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, state: OriginState | None = None, port: int = 0,
                 record_paths: bool = False) -> None:
        self.state = state or OriginState()
        self.port = port
        self.record_paths = record_paths
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        application = web.Application()
        application.router.add_get("/health", self._health)
        application.router.add_get("/missing/{tail:.*}", self._missing)
        application.router.add_get("/{tail:.*}", self._handle)
        return application

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _missing(self, request: web.Request) -> web.Response:
        self.state.not_found += 1
        return web.Response(status=404, text="no such item")

    async def _handle(self, request: web.Request) -> web.Response:
        state = self.state
        started = time.perf_counter()
        state.in_flight += 1
        state.in_flight_max = max(state.in_flight_max, state.in_flight)
        state.requests += 1
        if self.record_paths:
            state.paths.append(request.path_qs)
        try:
            if state.fail_ratio and state.rng.random() < state.fail_ratio:
                state.failures += 1
                return web.Response(status=503, text="overloaded")
            await self._serve(state)
            body = (request.path.encode() * (state.body_bytes // max(1, len(request.path)) + 1))
            return web.Response(body=body[: state.body_bytes])
        finally:
            state.in_flight -= 1
            state.latencies_s.append(time.perf_counter() - started)

    async def _serve(self, state: OriginState) -> None:
        """Wait for a free worker, then spend service_time_s in it."""
        if state.service_time_s <= 0:
            return
        if state._free is None:
            state._free = asyncio.Condition()
        async with state._free:
            await state._free.wait_for(lambda: state._busy < state.capacity)
            state._busy += 1
        try:
            await asyncio.sleep(state.service_time_s)
        finally:
            async with state._free:
                state._busy -= 1
                state._free.notify()

    async def __aenter__(self) -> TestOrigin:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def start_origin(*, service_time_s: float = 0.0, capacity: int = 64,
                 startup_timeout_s: float = 15.0) -> ServerProcess:
    """A TestOrigin in its own process (so a test's busy event loop does not slow it)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "warmd.testing.origin", "--port", str(port),
         "--service-time-ms", str(service_time_s * 1000), "--capacity", str(capacity)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = ServerProcess("origin", port, process, Path(tempfile.gettempdir()),
                           owns_directory=False)
    try:
        _wait_port(port, process, startup_timeout_s)
    except ServerStartError:
        server.stop()
        raise
    return server


def main() -> None:
    """Run an origin in its own process (used by bench/warm_throughput.py and tests)."""
    import argparse

    parser = argparse.ArgumentParser(description="warmd test origin")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-bytes", type=int, default=100)
    parser.add_argument("--service-time-ms", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=64)
    args = parser.parse_args()
    origin = TestOrigin(OriginState(body_bytes=args.body_bytes, capacity=args.capacity,
                                    service_time_s=args.service_time_ms / 1000),
                        port=args.port)
    web.run_app(origin.app(), host="127.0.0.1", port=args.port, access_log=None,
                print=None, backlog=2048)


if __name__ == "__main__":
    main()
