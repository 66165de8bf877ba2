"""Warm-up throughput of warmd's backends beside peers measured in the same run.

Redis: warmd's RedisBackend vs `redis-benchmark -P 64 -t set` and a plain redis-py asyncio
pipeline loop; Memcached: vs `memcslap` and bare pymemcache `set_many`; HTTP replay: the
warm runner vs `wrk` at the same concurrency against one aiohttp origin in its own process;
and the origin limiter under a slowdown. The last line is `name=value ...`.

Usage: python bench/warm_throughput.py [--quick] [--only redis|memcached|http|limiter ...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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
from warmd.testing.servers import (
    _wait_port,
    free_port,
    start_memcached,
    start_redis,
)

VALUE = b"v" * 100
TTL_S = 3600
HTTP_CONCURRENCY = 64
RUNNER_BATCH_KEYS = 20_000
NAN = float("nan")


def items(count: int, prefix: str) -> list[CacheItem]:
    """Plain (key, value, ttl) tuples, as the runner builds them (see CacheItem)."""
    return [(f"{prefix}:{n}", VALUE, TTL_S) for n in range(count)]  # type: ignore[misc]


def best_of(rounds: int, measure: Callable[[], float]) -> float:
    """Best of several rounds, for us and every peer alike: the machine is shared, and the
    best round is the one least disturbed by other load."""
    return max(measure() for _ in range(rounds))


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured run: its rate and the CPU seconds the client itself spent."""

    keys_s: float
    client_cpu_s: float


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc (NaN where absent)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return NAN
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """User + system CPU seconds of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ratio(ours: float, peer: float) -> float:
    return ours / peer if peer and peer == peer else NAN


def run_tool(args: list[str], timeout_s: float = 120) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                          check=False).stdout


# --- Redis -------------------------------------------------------------------------------

def redis_benchmark_rps(port: int, count: int, with_ttl: bool = False) -> Sample:
    """`redis-benchmark -P 64` SET of 100-byte values: the target's peer (`-t set`, no
    TTL), or with `with_ttl` the same command warmd sends (`SET key value EX 3600`)."""
    command = (["SET", "key:__rand_int__", VALUE.decode(), "EX", str(TTL_S)] if with_ttl
               else ["-t", "set", "-d", str(len(VALUE))])
    cpu_before = children_cpu_s()
    output = run_tool(["redis-benchmark", "-p", str(port), "-P", "64", "-n", str(count),
                       "-r", str(count), "-q", "--csv", *command])
    match = re.search(r'^"SET[^"]*","([\d.]+)"', output, re.MULTILINE)
    return Sample(float(match.group(1)) if match else NAN, children_cpu_s() - cpu_before)


async def redis_py_pipeline_keys_s(port: int, count: int) -> Sample:
    import redis.asyncio as redis_asyncio

    client = redis_asyncio.Redis(host="127.0.0.1", port=port)
    started, cpu_before = time.perf_counter(), time.process_time()
    for start in range(0, count, 1000):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(count, start + 1000)):
            pipe.set(f"redispy:{n}", VALUE, ex=TTL_S)
        await pipe.execute()
    elapsed = time.perf_counter() - started
    await client.aclose()
    return Sample(count / elapsed, time.process_time() - cpu_before)


async def warmd_redis_keys_s(port: int, count: int) -> Sample:
    """Backend hot path alone: `write_many` of prebuilt (key, value, ttl) tuples."""
    backend = RedisBackend(f"127.0.0.1:{port}")
    batch = items(count, "warmd")
    await backend.write_many(batch[:2000])  # connect outside the timed part
    started, cpu_before = time.perf_counter(), time.process_time()
    outcome = await backend.write_many(batch)
    sample = Sample(outcome.written / (time.perf_counter() - started),
                    time.process_time() - cpu_before)
    await backend.close()
    return sample


async def warmd_runner_keys_s(port: int, count: int) -> Sample:
    """The whole WarmRunner direct fill (`value` loader): key mapping, TTL jitter, memory
    guard, checkpoints and verification included, as the executor runs it."""
    backend = RedisBackend(f"127.0.0.1:{port}")
    await backend.write_many(items(2000, "runner-connect"))  # pooled connections, as in a daemon
    requests = tuple(WarmRequest("", key=f"runner:{n}", value=VALUE) for n in range(count))
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
    """Rounds interleave the peers and warmd (each after a FLUSHALL), so a change of the
    machine's load between rounds hits every figure alike; each rate keeps its best round.

    CPU per key (client + redis-server, median round) is the steadier figure on a shared
    machine: when the two processes share one core, it alone sets the rate.
    """
    server = start_redis()
    rounds, count = (2, 200_000) if quick else (3, 1_000_000)
    port = server.port
    measures: dict[str, Callable[[], Sample]] = {
        "redis_benchmark": lambda: redis_benchmark_rps(port, count),
        "redis_benchmark_ttl": lambda: redis_benchmark_rps(port, count, with_ttl=True),
        "redis_py": lambda: uvloop.run(redis_py_pipeline_keys_s(port, count // 10)),
        "redis": lambda: uvloop.run(warmd_redis_keys_s(port, count)),
        "redis_runner": lambda: uvloop.run(warmd_runner_keys_s(port, count)),
    }
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
    try:
        for _ in range(rounds):
            for name, measure in measures.items():
                run_tool(["redis-cli", "-p", str(port), "flushall"])
                server_before = process_cpu_s(server.process.pid)
                sample = measure()
                server_cpu_s = process_cpu_s(server.process.pid) - server_before
                keys = count // 10 if name == "redis_py" else count
                samples[name].append(
                    (sample.keys_s, (sample.client_cpu_s + server_cpu_s) / keys * 1e6))
    finally:
        server.stop()
    for name, pairs in samples.items():
        results[f"{name}_keys_s"] = max(rate for rate, _ in pairs)
        results[f"{name}_cpu_us_per_key"] = statistics.median(cpu for _, cpu in pairs)
    peer = results["redis_benchmark_keys_s"]
    results["redis_ratio_vs_redis_benchmark"] = ratio(results["redis_keys_s"], peer)
    results["redis_runner_ratio_vs_redis_benchmark"] = ratio(results["redis_runner_keys_s"], peer)
    results["redis_runner_ratio_vs_redis_benchmark_ttl"] = ratio(
        results["redis_runner_keys_s"], results["redis_benchmark_ttl_keys_s"])
    results["redis_runner_cpu_ratio_vs_redis_benchmark"] = ratio(
        results["redis_benchmark_cpu_us_per_key"], results["redis_runner_cpu_us_per_key"])
    results["redis_ratio_vs_redis_py"] = ratio(results["redis_keys_s"], results["redis_py_keys_s"])


# --- Memcached ---------------------------------------------------------------------------

def memcslap_keys_s(address: str, count: int) -> float:
    binary = shutil.which("memcslap") or shutil.which("memaslap")
    if binary is None:
        print("PEER MISSING: memcslap (Debian package libmemcached-tools) - ratio is nan")
        return NAN
    output = run_tool([binary, "-s", address, "-t", "set", "-e", str(count), "-c", "1"])
    match = re.search(r"Time to set\s+(\d+) keys by\s+\d+ threads:\s+([\d.]+) seconds", output)
    return int(match.group(1)) / float(match.group(2)) if match else NAN


def pymemcache_keys_s(port: int, count: int) -> float:
    from pymemcache.client.base import Client

    client = Client(("127.0.0.1", port))
    started = time.perf_counter()
    for start in range(0, count, 1000):
        client.set_many({f"bare:{n}": VALUE for n in range(start, min(count, start + 1000))},
                        expire=TTL_S, noreply=False)
    elapsed = time.perf_counter() - started
    client.close()
    return count / elapsed


async def warmd_memcached_keys_s(address: str, count: int, write_path: str) -> float:
    backend = MemcacheBackend([address], write_path=write_path)  # type: ignore[arg-type]
    batch = items(count, f"warmd-{write_path}")
    await backend.write_many(batch[:1000])
    started = time.perf_counter()
    outcome = await backend.write_many(batch)
    elapsed = time.perf_counter() - started
    await backend.close()
    return outcome.written / elapsed


def bench_memcached(quick: bool, results: dict[str, float]) -> None:
    server = start_memcached(memory_mb=512)
    rounds, count = (2, 60_000) if quick else (3, 300_000)
    address = server.address
    try:
        results["memcslap_keys_s"] = best_of(rounds, lambda: memcslap_keys_s(address, count))
        results["pymemcache_keys_s"] = best_of(
            rounds, lambda: pymemcache_keys_s(server.port, count))
        results["memcached_keys_s"] = best_of(rounds, lambda: uvloop.run(
            warmd_memcached_keys_s(address, count * 2, "raw")))
        results["memcached_pymemcache_path_keys_s"] = best_of(rounds, lambda: uvloop.run(
            warmd_memcached_keys_s(address, count, "pymemcache")))
    finally:
        server.stop()
    ours = results["memcached_keys_s"]
    results["memcached_ratio_vs_memcslap"] = ratio(ours, results["memcslap_keys_s"])
    results["memcached_ratio_vs_pymemcache"] = ratio(ours, results["pymemcache_keys_s"])


# --- HTTP replay -------------------------------------------------------------------------

def wrk_rps(url: str, seconds: int) -> float:
    if shutil.which("wrk") is None:
        print("PEER MISSING: wrk (Debian package wrk) - ratio is nan")
        return NAN
    output = run_tool(["wrk", "-t1", f"-c{HTTP_CONCURRENCY}", f"-d{seconds}s", url])
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return float(match.group(1)) if match else NAN


async def warmd_replay_rps(base_url: str, count: int) -> float:
    client = HttpClient(base_url=base_url, connection_limit=HTTP_CONCURRENCY)
    registry = HookRegistry()
    registry.add(ReplayLoader(client))
    limits = WarmLimits(batch_keys=count, origin=LimitConfig(
        concurrency_max=HTTP_CONCURRENCY, concurrency_initial=HTTP_CONCURRENCY))
    requests = tuple(WarmRequest(f"/item/{n}") for n in range(count))
    await client.get("/item/warm")
    result = await WarmRunner({}, registry).run(WarmTask("replay", requests, "", "replay",
                                                         limits))
    await client.close()
    return result.keys_ok / result.duration_s


def bench_http(quick: bool, results: dict[str, float]) -> None:
    port = free_port()
    origin = subprocess.Popen([sys.executable, "-m", "warmd.testing.origin", "--port",
                               str(port)], cwd=Path(__file__).resolve().parent.parent)
    try:
        _wait_port(port, origin, 10)  # type: ignore[arg-type]
        url = f"http://127.0.0.1:{port}"
        rounds = 2 if quick else 3
        results["wrk_rps"] = best_of(rounds, lambda: wrk_rps(url + "/item/1", 2 if quick else 8))
        results["http_rps"] = best_of(rounds, lambda: uvloop.run(
            warmd_replay_rps(url, 8000 if quick else 40_000)))
    finally:
        origin.terminate()
        origin.wait(timeout=10)
    results["http_ratio_vs_wrk"] = ratio(results["http_rps"], results["wrk_rps"])


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
    parser.add_argument("--quick", action="store_true", help="smaller runs, under a minute")
    parser.add_argument("--only", choices=[*SECTIONS, "limiter"], action="append",
                        help="run only these sections (repeatable); default: all")
    args = parser.parse_args()
    chosen = args.only or [*SECTIONS, "limiter"]
    results: dict[str, float] = {}
    started = time.monotonic()
    for name, section in SECTIONS.items():
        if name in chosen:
            section(args.quick, results)
            print(f"# {name} done at {time.monotonic() - started:.1f}s", flush=True)
    if "limiter" in chosen:
        results.update(uvloop.run(limiter_under_slowdown(1.5 if args.quick else 5.0)))
    for name, value in results.items():
        print(f"{name:40s} {value:14.2f}")
    print(" ".join(f"{name}={value:.3f}" if value % 1 else f"{name}={value:.0f}"
                   for name, value in results.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
