"""Event-loop time of one /metrics scrape at 100 templates x 3 log sources (issue 17: < 5 ms).

The scrape runs on the daemon's event loop (the collector reads the loop's state), so its
whole cost is time the loop cannot tick Raft. Measured three ways in one run:

- the on-loop part: the node collector over a real state machine (2,000 tasks, 5 peers)
  and 3 sources of 100 templates x 3 results (the text is written in a worker thread);
- the whole scrape rendered in one go, as it was before that split;
- HTTP scrapes through aiohttp on a running loop, with a 1 ms ticker task measuring the
  worst delay the scrapes caused it (what a heartbeat would feel);
- the peer: the same number of series held as ordinary prometheus-client Counter children
  (what counting every template "where it happens" would cost to expose).

Not a test: `.venv/bin/python bench/metrics_scrape.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time

import aiohttp
from prometheus_client import CollectorRegistry, Counter, generate_latest

from warmd import metrics
from warmd.config_table import Address
from warmd.runtime.ingest.pipeline import SourceStatus
from warmd.runtime.node.status import DriverStatus, PeerView
from warmd.statemachine.commands import SubmitTask, TaskSpec
from warmd.statemachine.machine import StateMachine
from warmd.web import metrics_route
from warmd.web.app import create_app
from warmd.web.collector import NodeCollector, NodeReaders
from warmd.web.server import WebServer

TARGETS = 3
RESULTS = ("hit", "miss", "unknown")
BUDGET_MS = 5.0


def node_readers(templates: int) -> NodeReaders:
    machine = StateMachine()
    for number in range(2_000):
        machine.apply(number + 1, SubmitTask(task_id=f"t{number}", spec=TaskSpec(
            keys=("k",), target="redis"), now_ms=1))
    peers = tuple(PeerView(n, f"10.0.0.{n}:7000", True, 1990, 1991, 0, "replicate", 0.01)
                  for n in range(1, 6))
    status = DriverStatus(node_id=1, role="leader", term=3, leader_id=1, commit_index=2000,
                          applied_index=2000, last_index=2000, snapshot_index=0,
                          voters=(1, 2, 3, 4, 5), learners=(), peers=peers, removed=False)
    sources = [SourceStatus(f"site{t}", (), 10**6, 10, (), None, None, cache_requests=tuple(
        (f"/api/v{t}/endpoint{p}/{{int}}", result, 1000 + p) for p in range(templates)
        for result in RESULTS)) for t in range(TARGETS)]
    return NodeReaders(status=lambda: status, state=lambda: machine.state,
                       proposals_pending=lambda: 4, sources=lambda: sources,
                       origin_limits=lambda: {f"replay:site{t}": 32 for t in range(TARGETS)})


def populate_event_metrics() -> None:
    """Children of the event metrics a busy node has (targets, outcomes, routes)."""
    for t in range(TARGETS):
        metrics.task_finished(f"site{t}", "http", "succeeded", 1.5, 100, 1, 10_000)
        metrics.task_finished(f"site{t}", "http", "failed", 1.5, 0, 100, 0)
        metrics.warm_request("origin", 0.01)


def peer_registry(templates: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("peer_cache_requests_total", "", ["target", "pattern", "result"],
                      registry=registry)
    for t in range(TARGETS):
        for p in range(templates):
            for result in RESULTS:
                counter.labels(f"site{t}", f"/api/v{t}/endpoint{p}/{{int}}", result).inc(1000 + p)
    return registry


def timed_ms(function, runs: int) -> list[float]:
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        durations.append((time.perf_counter() - started) * 1000)
    return sorted(durations)


async def ticker(stop: asyncio.Event, delays_ms: list[float]) -> None:
    """A 1 ms sleeper, like the Raft ticker: how late each wake-up is."""
    while not stop.is_set():
        due = time.perf_counter() + 0.001
        await asyncio.sleep(0.001)
        delays_ms.append((time.perf_counter() - due) * 1000)


async def http_scrapes(collector: NodeCollector, runs: int
                       ) -> tuple[list[float], list[float], list[float]]:
    """Scrape over HTTP: round trips, and a ticker's delays during the scrapes and during
    as long a time without them (the machine's own noise)."""
    app = create_app()
    metrics_route.setup(app, metrics.REGISTRY, [collector])
    server = WebServer(app, Address("127.0.0.1", 0), "bench")
    await server.start()
    stop, busy_ms = asyncio.Event(), []
    ticking = asyncio.create_task(ticker(stop, busy_ms))
    round_trips = []
    started_all = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.port}/metrics"
        for _ in range(runs):
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
            round_trips.append((time.perf_counter() - started) * 1000)
    stop.set()
    await ticking
    await server.close()
    stop, idle_ms = asyncio.Event(), []
    ticking = asyncio.create_task(ticker(stop, idle_ms))
    await asyncio.sleep(time.perf_counter() - started_all)
    stop.set()
    await ticking
    return sorted(round_trips), sorted(busy_ms), sorted(idle_ms)


def report(name: str, durations: list[float]) -> None:
    p99 = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
    print(f"{name:<46} median {statistics.median(durations):6.2f} ms   p99 {p99:6.2f} ms"
          f"   max {durations[-1]:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer scrapes")
    parser.add_argument("--templates", type=int, default=100)
    args = parser.parse_args()
    runs = 50 if args.quick else 300
    collector = NodeCollector(node_readers(args.templates), patterns_max=args.templates)
    populate_event_metrics()
    body = asyncio.run(metrics_route.render(metrics.REGISTRY, [collector]))
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    print(f"# {platform.python_version()} on {platform.machine()}, {runs} scrapes, "
          f"{args.templates} templates x {TARGETS} sources x {len(RESULTS)} results; "
          f"{series} samples, {len(body)} bytes")
    on_loop = timed_ms(lambda: list(collector.collect()), runs)
    report("on the loop: node collector", on_loop)
    whole = timed_ms(lambda: generate_latest(_Everything(collector)), runs)
    report("whole scrape in one thread (before the split)", whole)
    peer = peer_registry(args.templates)
    theirs = timed_ms(lambda: generate_latest(peer), runs)
    report("peer: same series as Counter children", theirs)
    round_trips, busy_ms, idle_ms = asyncio.run(http_scrapes(collector, runs))
    report("HTTP scrape round trip (aiohttp)", round_trips)
    report("1 ms ticker's delay while scraped", busy_ms)
    report("1 ms ticker's delay, no scrapes (noise)", idle_ms)
    median = statistics.median(on_loop)
    print(f"on-loop median / peer's whole scrape: {median / statistics.median(theirs):.3f}; "
          f"budget {BUDGET_MS} ms on the loop: {'met' if median < BUDGET_MS else 'MISSED'}")


class _Everything:
    """The registry and the node collector rendered together, as one thread would."""

    def __init__(self, collector: NodeCollector) -> None:
        self.collector = collector

    def collect(self):
        yield from metrics.REGISTRY.collect()
        yield from self.collector.collect()


if __name__ == "__main__":
    main()
