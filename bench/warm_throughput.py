"""Warm-up throughput of warmd's backends beside fair peers measured in the same run.

Every section runs rounds (3 or more) that interleave warmd and its peers in a rotating
order, against one server process, and prints each rate's median with its range; a ratio
is the median of the per-round ratios (ours / peer in the same round), with their range.
Same work everywhere: 16-byte keys, 100-byte values, acknowledged writes, the same number
of keys (bench/_warm_peers.py says how each peer is set up). The last line is
`name=value ...`.

Usage: python bench/warm_throughput.py [--quick] [--only redis|memcached|http|limiter ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _warm_peers as peers
from _peers import Spread, interleaved_rounds
from _warm_peers import NAN, TTL_S, VALUE, Sample, key_of, process_cpu_s

from warmd.cache.base import CacheItem
from warmd.cache.http import HttpClient
from warmd.cache.memcache import MemcacheBackend
from warmd.cache.redis import RedisBackend
from warmd.hooks.base import WarmRequest
from warmd.hooks.loaders import ReplayLoader
from warmd.hooks.registry import HookRegistry
from warmd.hooks.task import LimitConfig, WarmLimits, WarmTask
from warmd.runtime.execute.limiter import OriginLimiter
from warmd.runtime.execute.warmer import WarmRunner
from warmd.testing.origin import OriginState, TestOrigin
from warmd.testing.servers import start_memcached, start_redis

REDIS_CONNECTIONS = 4  # RedisBackend's default connection_count: redis-py gets as many
HTTP_CONCURRENCY = 64
RUNNER_BATCH_KEYS = 20_000


@dataclass(frozen=True, slots=True)
class Round:
    """One system's run in one round: its rate, the CPU microseconds per key of client and
    server together, and the server's (or origin's) busy share of one core meanwhile."""

    keys_s: float
    cpu_us_per_key: float
    server_busy: float


@dataclass(frozen=True, slots=True)
class Section:
    """The systems one section measures, and what runs before each measurement."""

    measures: dict[str, Callable[[], Sample]]
    keys: dict[str, int]  # keys (or requests) each system handles per run
    server_pid: int
    reset: Callable[[], None] = lambda: None


def run_rounds(section: Section, rounds: int) -> dict[str, list[Round]]:
    """Every system once per round, in a rotating order; the server's CPU from /proc."""
    runs: dict[str, list[Round]] = {name: [] for name in section.measures}
    for order in interleaved_rounds(rounds, list(section.measures)):
        for name in order:
            section.reset()
            server_before, started = process_cpu_s(section.server_pid), time.perf_counter()
            sample = section.measures[name]()
            wall_s = time.perf_counter() - started
            server_cpu_s = process_cpu_s(section.server_pid) - server_before
            cpu_us = (sample.client_cpu_s + server_cpu_s) / section.keys[name] * 1e6
            runs[name].append(Round(sample.keys_s, cpu_us, server_cpu_s / wall_s))
            print(f"#   {name:<22} {sample.keys_s:>12,.0f} keys/s  server busy "
                  f"{server_cpu_s / wall_s:.2f}", flush=True)
    return runs


def summarise(runs: dict[str, list[Round]], ratios: dict[str, tuple[str, str]],
              results: dict[str, float]) -> None:
    """Medians per system and paired ratios (ours / peer, round by round) into `results`;
    a human table with the ranges on stdout."""
    for name, rounds in runs.items():
        rate = Spread.of([r.keys_s for r in rounds])
        cpu = Spread.of([r.cpu_us_per_key for r in rounds])
        busy = Spread.of([r.server_busy for r in rounds])
        results[f"{name}_keys_s"] = rate.median
        results[f"{name}_cpu_us_per_key"] = cpu.median
        print(f"{name:<24} {rate.describe():>34} keys/s  cpu {cpu.describe(2)} us/key  "
              f"server busy {busy.describe(2)}")
    for ratio_name, (ours, peer) in ratios.items():
        paired = Spread.of([a.keys_s / b.keys_s if b.keys_s else NAN
                            for a, b in zip(runs[ours], runs[peer], strict=True)])
        results[ratio_name] = paired.median
        results[f"{ratio_name}_low"], results[f"{ratio_name}_high"] = paired.low, paired.high
        print(f"{ratio_name:<48} {paired.describe(2)}")


# --- Redis -------------------------------------------------------------------------------

def items(count: int, prefix: str) -> list[CacheItem]:
    """Plain (key, value, ttl) tuples, as the runner builds them (see CacheItem)."""
    return [(key_of(prefix, n), VALUE, TTL_S) for n in range(count)]  # type: ignore[misc]


async def warmd_redis(port: int, count: int) -> Sample:
    """Backend hot path alone: `write_many` of prebuilt (key, value, ttl) tuples."""
    backend = RedisBackend(f"127.0.0.1:{port}", connection_count=REDIS_CONNECTIONS)
    batch = items(count, "warmd:")
    await backend.write_many(items(2000, "connect:"))  # connect outside the timed part
    started, cpu_before = time.perf_counter(), time.process_time()
    outcome = await backend.write_many(batch)
    sample = Sample(outcome.written / (time.perf_counter() - started),
                    time.process_time() - cpu_before)
    await backend.close()
    if outcome.written != count:
        raise RuntimeError(f"warmd wrote {outcome.written} of {count} keys")
    return sample


async def warmd_runner(port: int, count: int) -> Sample:
    """The whole WarmRunner direct fill (`value` loader): key mapping, TTL jitter, memory
    guard, checkpoints and verification included, as the executor runs it."""
    backend = RedisBackend(f"127.0.0.1:{port}", connection_count=REDIS_CONNECTIONS)
    await backend.write_many(items(2000, "connect:"))  # pooled connections, as in a daemon
    requests = tuple(WarmRequest("", key=key_of("runner:", n), value=VALUE)
                     for n in range(count))
    runner = WarmRunner({"r": backend}, HookRegistry())
    limits = WarmLimits(batch_keys=RUNNER_BATCH_KEYS, ttl_s=TTL_S)
    cpu_before = time.process_time()
    result = await runner.run(WarmTask("bench", requests, "r", "value", limits))
    cpu_s = time.process_time() - cpu_before
    await backend.close()
    if result.keys_ok != count or result.verify_mismatches:
        raise RuntimeError(f"runner bench did not write every key: {result}")
    return Sample(result.keys_ok / result.duration_s, cpu_s)


def bench_redis(quick: bool, results: dict[str, float]) -> None:
    """redis-benchmark with and without EX, redis-py at its best, warmd's backend and
    runner: the same number of keys each, a FLUSHALL before each."""
    server = start_redis()
    rounds, count = (3, 100_000) if quick else (5, 1_000_000)
    port = server.port
    section = Section(
        measures={
            "redis_benchmark": lambda: peers.redis_benchmark(port, count, with_ttl=False),
            "redis_benchmark_ttl": lambda: peers.redis_benchmark(port, count, with_ttl=True),
            "redis_py": lambda: uvloop.run(peers.redis_py(port, count, REDIS_CONNECTIONS)),
            "redis": lambda: uvloop.run(warmd_redis(port, count)),
            "redis_runner": lambda: uvloop.run(warmd_runner(port, count)),
        },
        keys=dict.fromkeys(("redis_benchmark", "redis_benchmark_ttl", "redis_py", "redis",
                            "redis_runner"), count),
        server_pid=server.process.pid,
        reset=lambda: peers.run_tool(["redis-cli", "-p", str(port), "flushall"]))
    try:
        runs = run_rounds(section, rounds)
    finally:
        server.stop()
    summarise(runs, {
        "redis_runner_ratio_vs_redis_benchmark_ttl": ("redis_runner", "redis_benchmark_ttl"),
        "redis_ratio_vs_redis_benchmark_ttl": ("redis", "redis_benchmark_ttl"),
        "redis_runner_ratio_vs_redis_benchmark": ("redis_runner", "redis_benchmark"),
        "redis_ratio_vs_redis_py": ("redis", "redis_py"),
        "redis_runner_ratio_vs_redis_py": ("redis_runner", "redis_py"),
    }, results)


# --- Memcached ---------------------------------------------------------------------------

PYMEMCACHE_THREADS = 4  # MemcacheBackend's default thread_count
PYMEMCACHE_BATCH_KEYS = 1000  # MemcacheBackend's default batch_keys


async def warmd_memcached(address: str, count: int) -> Sample:
    """MemcacheBackend's default (raw) write path: `write_many` of prebuilt tuples."""
    backend = MemcacheBackend([address])
    batch = items(count, "warmd:")
    await backend.write_many(items(1000, "connect:"))
    started, cpu_before = time.perf_counter(), time.process_time()
    outcome = await backend.write_many(batch)
    sample = Sample(outcome.written / (time.perf_counter() - started),
                    time.process_time() - cpu_before)
    await backend.close()
    if outcome.written != count:
        raise RuntimeError(f"warmd wrote {outcome.written} of {count} keys")
    return sample


def bench_memcached(quick: bool, results: dict[str, float]) -> None:
    """memcaslap and pymemcache's pool beside warmd, interleaved, one server (2 threads)."""
    server = start_memcached(memory_mb=1024)
    rounds, count = (3, 100_000) if quick else (5, 500_000)
    address, port = server.address, server.port
    section = Section(
        measures={
            "memcslap": lambda: peers.memcaslap(address, count),
            "pymemcache": lambda: peers.pymemcache_pool(port, count, PYMEMCACHE_THREADS,
                                                        PYMEMCACHE_BATCH_KEYS),
            "memcached": lambda: uvloop.run(warmd_memcached(address, count)),
        },
        keys=dict.fromkeys(("memcslap", "pymemcache", "memcached"), count),
        server_pid=server.process.pid)
    try:
        runs = run_rounds(section, rounds)
    finally:
        server.stop()
    summarise(runs, {
        "memcached_ratio_vs_memcslap": ("memcached", "memcslap"),
        "memcached_ratio_vs_pymemcache": ("memcached", "pymemcache"),
    }, results)


# --- HTTP replay -------------------------------------------------------------------------

async def warmd_replay(base_url: str, count: int, pinned: bool = False,
                       pipeline: int = 1) -> Sample:
    """WarmRunner replaying `count` distinct paths through the adaptive limiter, cap and
    start at 64 (what a rule gets); `pinned` holds the limit at 64 (concurrency_min too), to
    show the client's own pace apart from the limiter's backing off; `pipeline` requests
    deep on each connection (the http cache's `pipeline` setting)."""
    client = HttpClient(base_url=base_url, connection_limit=HTTP_CONCURRENCY,
                        pipeline=pipeline)
    registry = HookRegistry()
    registry.add(ReplayLoader(client))
    limits = WarmLimits(batch_keys=count, origin=LimitConfig(
        concurrency_max=HTTP_CONCURRENCY, concurrency_initial=HTTP_CONCURRENCY,
        concurrency_min=HTTP_CONCURRENCY if pinned else 1))
    requests = tuple(WarmRequest(f"/item/{n}") for n in range(count))
    await client.get("/item/warm")
    runner = WarmRunner({}, registry)
    cpu_before = time.process_time()
    result = await runner.run(WarmTask("replay", requests, "", "replay", limits))
    cpu_s = time.process_time() - cpu_before
    await client.close()
    for limiter in runner.limiters.values():  # how far the adaptive limit backed off
        stats = limiter.statistics()
        print(f"#     limiter: limit {stats.limit} at the end, {stats.backoff_count} back-offs, "
              f"healthy latency {(stats.healthy_latency_s or 0) * 1000:.2f} ms", flush=True)
    if result.keys_ok != count:
        raise RuntimeError(f"replay fetched {result.keys_ok} of {count}: {result}")
    return Sample(result.keys_ok / result.duration_s, cpu_s)


HTTP_PIPELINE = 16  # GETs per connection at once in the pipelined pair (warmd and wrk alike)


def bench_http(quick: bool, results: dict[str, float]) -> None:
    """wrk and warmd's replay against nginx, without and with HTTP/1.1 pipelining (16 deep
    on 64 connections, both); nginx runs 2 workers (one saturated its core under wrk on a
    quiet machine) and its busy cores (master and workers, at most 2.0) are printed per run,
    to show whether it limited anyone.

    The headline `http_ratio_vs_wrk` is the pipelined pair (each at its best, same
    settings); `http_unpipelined_ratio_vs_wrk` is the pair without pipelining, warmd's
    default."""
    rounds, seconds, count = (3, 3, 100_000) if quick else (5, 8, 300_000)
    url_of = "{}/item/1".format
    with peers.nginx_origin() as origin:
        section = Section(
            measures={
                "wrk": lambda: peers.wrk(url_of(origin.url), HTTP_CONCURRENCY, seconds),
                "wrk_pipelined": lambda: peers.wrk(origin.url, HTTP_CONCURRENCY, seconds,
                                                   pipeline=HTTP_PIPELINE),
                "http": lambda: uvloop.run(warmd_replay(origin.url, count)),
                "http_pinned": lambda: uvloop.run(warmd_replay(origin.url, count, pinned=True)),
                "http_pipelined": lambda: uvloop.run(warmd_replay(origin.url, count,
                                                                  pipeline=HTTP_PIPELINE)),
            },
            keys={"wrk": 1, "wrk_pipelined": 1, "http": count, "http_pinned": count,
                  "http_pipelined": count},  # wrk's: see below
            server_pid=origin.pid)
        runs = run_rounds(section, rounds)
    # wrk ran for `seconds`, so its CPU per request is its CPU over (rate x seconds).
    for name in ("wrk", "wrk_pipelined"):
        runs[name] = [Round(r.keys_s, r.cpu_us_per_key / (r.keys_s * seconds), r.server_busy)
                      for r in runs[name]]
    summarise(runs, {"http_ratio_vs_wrk": ("http_pipelined", "wrk_pipelined"),
                     "http_unpipelined_ratio_vs_wrk": ("http", "wrk"),
                     "http_pinned_ratio_vs_wrk": ("http_pinned", "wrk")}, results)
    for name in ("wrk", "wrk_pipelined", "http", "http_pipelined"):
        results[f"origin_busy_{name}"] = statistics.median(r.server_busy for r in runs[name])


# --- Origin slowdown ---------------------------------------------------------------------

async def limiter_under_slowdown(phase_s: float) -> dict[str, float]:
    """Healthy origin (24 workers), then 3 workers: cap, healthy p99, settled p99."""
    state = OriginState(capacity=24, service_time_s=0.01)
    cap = 32
    async with TestOrigin(state) as origin:
        client = HttpClient(base_url=origin.url)
        limiter = OriginLimiter(LimitConfig(concurrency_max=cap, concurrency_initial=8))
        await drive(limiter, client, phase_s)
        healthy_p99 = p99(state.latencies_s)
        state.capacity = 3
        state.reset_counters()
        await drive(limiter, client, phase_s * 2)
        settled_p99 = p99(state.latencies_s[len(state.latencies_s) // 2:])
        await client.close()
    return {"limiter_cap": cap, "limiter_origin_in_flight_max": state.in_flight_max,
            "limiter_healthy_p99_ms": healthy_p99 * 1000,
            "limiter_settled_p99_ms": settled_p99 * 1000,
            "limiter_p99_ratio": settled_p99 / healthy_p99}


async def drive(limiter: OriginLimiter, client: HttpClient, seconds: float) -> None:
    deadline = time.monotonic() + seconds

    async def worker(number: int) -> None:
        while time.monotonic() < deadline:
            async with limiter.slot() as report:
                try:
                    await client.get(f"/item/{number}")
                except Exception:
                    report.failed = True

    await asyncio.gather(*(worker(n) for n in range(48)))


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[int(0.99 * (len(ordered) - 1))]


SECTIONS = {"redis": bench_redis, "memcached": bench_memcached, "http": bench_http}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of smaller runs")
    parser.add_argument("--only", choices=[*SECTIONS, "limiter"], action="append",
                        help="run only these sections (repeatable); default: all")
    args = parser.parse_args()
    chosen = args.only or [*SECTIONS, "limiter"]
    results: dict[str, float] = {}
    started = time.monotonic()
    for name, section in SECTIONS.items():
        if name in chosen:
            print(f"# {name}", flush=True)
            try:
                section(args.quick, results)
            except Exception as error:  # one broken peer must not cost the other sections
                print(f"# {name} FAILED: {error!r}", flush=True)
                results[f"{name}_failed"] = 1
            print(f"# {name} done at {time.monotonic() - started:.1f}s", flush=True)
    if "limiter" in chosen:
        results.update(uvloop.run(limiter_under_slowdown(1.5 if args.quick else 5.0)))
    print(" ".join(f"{name}={value:.3f}" if value % 1 else f"{name}={value:.0f}"
                   for name, value in results.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
