"""The console under load (issue 16): a page of a 10,000-task table rendered on the server
(< 300 ms, paginated), and what 50 open event streams cost an idle leader (< 5 % CPU).

1. Render: an in-process aiohttp app serves the console over a state machine holding
   10,000 tasks (one plan; 3,000 succeeded, 500 failed, 200 running, the rest pending)
   built from real commands. A middleware times each handler (server-side: filtering,
   sorting, paging, templates). The peer, timed in the same rounds, is what listing the
   same table cost before the console: every task as `warmctl tasks list` documents it
   (`task_document`), serialised unpaged.
2. Streams: one real daemon (executor on, so heartbeats flow as in production) with the
   console on [web] listen; its process CPU (user + system, /proc) over windows with 0 and
   with 50 open /api/v1/events streams, interleaved.

Not a test: `.venv/bin/python bench/console_load.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.ops import executor_settings
from warmd.clock import SystemClock
from warmd.config_table import Address
from warmd.runtime.commands.tasks import task_document
from warmd.runtime.node.changes import ChangeFeed
from warmd.runtime.node.status import DriverStatus, PeerView
from warmd.testing.console_state import StateBuilder
from warmd.testing.procs import ProcessCluster, Timing
from warmd.testing.servers import free_port
from warmd.web.app import create_app
from warmd.web.console import routes
from warmd.web.console.readers import ConsoleReaders
from warmd.web.server import WebServer

TASKS = 10_000
RENDER_BUDGET_MS = 300.0
STREAMS = 50
CPU_BUDGET_PERCENT = 5.0
SHIPPED_TIMING = Timing(tick_interval_ms=50, election_timeout_ticks=10, heartbeat_ticks=2)
PAGES = ("/tasks", "/tasks?state=SUCCEEDED&sort=keys&page=20", "/tasks?text=00042",
         "/plans/big", "/api/v1/tasks?per_page=500", "/nodes", "/")


def build_state() -> StateBuilder:
    builder = StateBuilder()
    builder.nodes(5, capacity=200)
    ids = builder.plan("big", TASKS, keys=5, watch="redis")
    builder.run(ids[:3000], 1)
    builder.run(ids[3000:3500], 2, "fail")
    builder.run(ids[3500:3700], 3, "start")
    builder.effect("big", "redis", (100, 900), (700, 300))
    return builder


def driver_status(applied_index: int) -> DriverStatus:
    peers = tuple(PeerView(n, f"10.0.0.{n}:7000", True, applied_index, applied_index + 1, 0,
                           "replicate", 0.01) for n in range(1, 4))
    return DriverStatus(node_id=1, role="leader", term=3, leader_id=1,
                        commit_index=applied_index, applied_index=applied_index,
                        last_index=applied_index, snapshot_index=0, voters=(1, 2, 3),
                        learners=(), peers=peers, removed=False)


async def refuse(command: str, args: Any, actor: Any) -> Any:
    raise RuntimeError("the render bench makes no changes")


def timing_middleware(seen: list[float]) -> Any:
    @web.middleware
    async def timer(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        started_s = time.perf_counter()
        response = await handler(request)
        seen.append((time.perf_counter() - started_s) * 1000)
        return response
    return timer


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    return (f"median {statistics.median(ordered):8.2f}   min {ordered[0]:8.2f}   "
            f"max {ordered[-1]:8.2f}")


async def render_rounds(rounds: int) -> dict[str, list[float]]:
    builder = build_state()
    state, status = builder.state, driver_status(builder.index)
    seen: list[float] = []
    app = create_app()
    app.middlewares.append(timing_middleware(seen))
    routes.setup(app, ConsoleReaders(status=lambda: status, state=lambda: state,
                                     subscribe=ChangeFeed(SystemClock()).subscribe,
                                     invoke=refuse, wall_ms=lambda: builder.now_ms))
    server = WebServer(app, Address("127.0.0.1", 0), "bench")
    await server.start()
    results: dict[str, list[float]] = {path: [] for path in (*PAGES, "peer")}
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(rounds):
                for path in PAGES:
                    async with session.get(f"http://127.0.0.1:{server.port}{path}") as response:
                        assert response.status == 200, (path, await response.text())
                        await response.read()
                    results[path].append(seen[-1])
                started_s = time.perf_counter()
                ordered = sorted(state.tasks.values(), key=lambda task: task.updated_ms)
                json.dumps([task_document(task) for task in ordered])
                results["peer"].append((time.perf_counter() - started_s) * 1000)
    finally:
        await server.close()
    return results


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def hold_streams(url: str, headers: dict[str, str], count: int, window_s: float,
                       pid: int) -> float:
    """CPU % of the daemon over `window_s` while `count` event streams are open."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None),
                                     headers=headers) as session:
        responses = [await session.get(url) for _ in range(count)]
        for response in responses:  # each stream is open: its first event arrived
            if response.status != 200:
                raise RuntimeError(f"{url}: HTTP {response.status}: {await response.text()}")
            while not (line := await response.content.readline()).startswith(b"event: change"):
                if not line:
                    raise RuntimeError(f"{url}: the stream ended before its first change")
        readers = [asyncio.create_task(response.content.read()) for response in responses]
        before_s, started_s = process_cpu_s(pid), time.monotonic()
        await asyncio.sleep(window_s)
        used_s, elapsed_s = process_cpu_s(pid) - before_s, time.monotonic() - started_s
        for reader in readers:
            reader.cancel()
        for response in responses:
            response.close()
    return 100 * used_s / elapsed_s


async def stream_rounds(rounds: int, window_s: float) -> dict[int, list[float]]:
    results: dict[int, list[float]] = {0: [], STREAMS: []}
    with ProcessCluster(1, SHIPPED_TIMING) as cluster:
        node = cluster.nodes[1]
        node.web_port = free_port()
        node.executor.update(executor_settings(3_000, 500))
        cluster.write_config(node)
        cluster.start_all()
        cluster.wait_for_leader(20)
        assert node.process is not None
        await asyncio.sleep(3.0)  # registration and start-up settle
        url = f"http://127.0.0.1:{node.web_port}/api/v1/events"
        # The API asks every client for a login or a token (since issue 16's access work).
        token = cluster.call(1, "token-add", name="console-load", role="viewer")
        headers = {"Authorization": f"Bearer {token['secret']}"}
        for _ in range(rounds):
            for count in (0, STREAMS):
                results[count].append(await hold_streams(url, headers, count, window_s,
                                                         node.process.pid))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter windows")
    args = parser.parse_args()
    rounds, stream_round_count, window_s = (10, 3, 8.0) if args.quick else (30, 5, 20.0)
    print(f"# {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; {TASKS} tasks; {rounds} render rounds")
    rendered = asyncio.run(render_rounds(rounds))
    for path, durations in rendered.items():
        label = "peer: every task as task_document, unpaged JSON" if path == "peer" else path
        print(f"render ms  {label:<48} {spread(durations)}")
    worst = max(statistics.median(values) for path, values in rendered.items() if path != "peer")
    print(f"worst page median {worst:.1f} ms (budget {RENDER_BUDGET_MS:.0f} ms): "
          f"{'ok' if worst < RENDER_BUDGET_MS else 'OVER'}; /tasks / peer = "
          f"{statistics.median(rendered['/tasks']) / statistics.median(rendered['peer']):.3f}")
    print(f"# streams: {stream_round_count} rounds of {window_s:.0f} s windows, interleaved")
    cpu = asyncio.run(stream_rounds(stream_round_count, window_s))
    for count, values in cpu.items():
        print(f"leader CPU % with {count:>2} open event streams   {spread(values)}")
    with_streams = statistics.median(cpu[STREAMS])
    print(f"{STREAMS} streams: {with_streams:.2f} % of a core "
          f"(budget {CPU_BUDGET_PERCENT:.0f} %): {'ok' if with_streams < CPU_BUDGET_PERCENT else 'OVER'};"
          f" added by the streams {with_streams - statistics.median(cpu[0]):+.2f} points")
    print(f"worst_page_ms={worst:.1f} streams={STREAMS} streams_cpu_pct={with_streams:.2f} "
          f"idle_cpu_pct={statistics.median(cpu[0]):.2f}")


if __name__ == "__main__":
    main()
