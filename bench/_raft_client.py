"""The client process of bench/raft_throughput.py: closed-loop writes to warmd or etcd.

Run as its own process, so the system under test pays its real client path and the client's
CPU is not the server's. Both systems get the same loop: `concurrency` coroutines on one
asyncio loop, each keeping one write in flight over one connection (warmd: the admin socket
through warmd's own `PipelinedClient`, msgpack frames, the requests of a loop turn in one
write, replies matched by id, `--lines` for JSON lines instead; etcd: one gRPC channel of
the `aetcd` client, multiplexed).
A warm-up of `--warmup` writes runs first and is not counted. A failed write is counted and
the loop goes on; the run is reported either way. Prints one JSON line:
`{"ops_s", "p50_ms", "p99_ms", "failures", "count", "first_error", "client_cpu_us"}` (the
client's own CPU per write: whether the client could be the bottleneck).

    python bench/_raft_client.py warmd /path/admin.sock --count N --concurrency C
    python bench/_raft_client.py etcd 127.0.0.1:2379 --count N --concurrency C
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgpack
from _peers import percentile_ms

from warmd.admin.pipeline import PipelinedClient
from warmd.runtime.commands.bench_load import padded_entry

Write = Callable[[int, int], Awaitable[None]]  # (worker, sequence) -> acknowledged
TYPICAL_SEQUENCE = 1000  # the width the padding is computed for (sequences 128..65535)


@dataclass(slots=True)
class Tally:
    """Latencies of the acknowledged writes and the failures, of one measured run."""

    latencies_s: list[float] = field(default_factory=list)
    failures: int = 0
    first_error: str = ""
    cpu_s: float = 0.0  # this client process's CPU time over the run

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        self.first_error = self.first_error or f"{type(error).__name__}: {error}"[:300]


async def closed_loop(write: Write, count: int, concurrency: int, tally: Tally,
                      first_sequence: int = 1) -> float:
    """`count` writes, `concurrency` in flight; returns the elapsed seconds. Each worker
    numbers its writes from `first_sequence` (a run after a warm-up starts past it)."""
    remaining = [count]

    async def worker(number: int) -> None:
        for sequence in itertools.count(first_sequence):
            if remaining[0] <= 0:
                return
            remaining[0] -= 1
            sent_s = time.perf_counter()
            try:
                await write(number, sequence)
            except Exception as error:  # counted, and the loop goes on
                tally.failed(error)
                continue
            tally.latencies_s.append(time.perf_counter() - sent_s)

    started_s, started_cpu_s = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(number) for number in range(concurrency)))
    tally.cpu_s = time.process_time() - started_cpu_s
    return time.perf_counter() - started_s


# ---------------------------------------------------------------------------- warmd

class WarmdConnection:
    """`bench-write` requests in flight on one admin connection, through warmd's own
    pipelined client (warmd/admin/pipeline.py: msgpack frames, the requests of one loop
    turn in one write, replies by id)."""

    def __init__(self, client: PipelinedClient, size_bytes: int, run_tag: str) -> None:
        self._client = client
        self._client_ids: dict[int, str] = {}
        self._size_bytes, self._run_tag = size_bytes, run_tag

    @staticmethod
    async def open(path: str, size_bytes: int, run_tag: str, frames: bool) -> WarmdConnection:
        return WarmdConnection(await PipelinedClient.open(path, frames=frames), size_bytes,
                               run_tag)

    def client_id(self, worker: int) -> str:
        """The worker's client id, padded so its entry is `size_bytes` long (node ids and
        now_ms have one msgpack width on every node, so the client can size it)."""
        if worker not in self._client_ids:
            name = f"{self._run_tag}.{base36(worker)}"
            entry = padded_entry(1, name, TYPICAL_SEQUENCE, self._size_bytes,
                                 int(time.time() * 1000))
            self._client_ids[worker] = msgpack.unpackb(entry)["client_id"]
        return self._client_ids[worker]

    async def write(self, worker: int, sequence: int) -> None:
        await self._client.call("bench-write", client_id=self.client_id(worker),
                                sequence=sequence)

    async def close(self) -> None:
        await self._client.close()


def base36(number: int) -> str:
    """`number` in base 36: worker 1023 is "sf", so a 100-byte entry still has room."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


async def run_warmd(path: str, count: int, warmup: int, concurrency: int,
                    size_bytes: int, tag: str, frames: bool = True) -> tuple[Tally, float]:
    connection = await WarmdConnection.open(path, size_bytes, tag, frames)
    try:
        await closed_loop(connection.write, warmup, concurrency, Tally())
        tally = Tally()
        elapsed_s = await closed_loop(connection.write, count, concurrency, tally, warmup + 1)
        return tally, elapsed_s
    finally:
        await connection.close()


# ---------------------------------------------------------------------------- etcd

async def run_etcd(address: str, count: int, warmup: int, concurrency: int,
                   size_bytes: int, tag: str) -> tuple[Tally, float]:
    import aetcd  # only the etcd runs need it (the `bench` extra)

    host, _, port = address.rpartition(":")
    keys = [f"k{number:06d}".encode() for number in range(concurrency)]
    value = b"v" * (size_bytes - len(keys[0]))  # key and value together: size_bytes

    async with aetcd.Client(host=host, port=int(port), timeout=30) as client:
        async def write(worker: int, sequence: int) -> None:
            await client.put(keys[worker], value)

        await closed_loop(write, warmup, concurrency, Tally())
        tally = Tally()
        elapsed_s = await closed_loop(write, count, concurrency, tally)
        return tally, elapsed_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=("warmd", "etcd"))
    parser.add_argument("target", help="warmd: admin socket path; etcd: host:port")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--lines", action="store_true",
                        help="warmd: speak JSON lines instead of msgpack frames (to compare)")
    parser.add_argument("--tag", default=f"{time.time_ns() % 4096:x}",
                        help="names this run's warmd sessions (unique per run on a cluster)")
    args = parser.parse_args()
    if args.system == "warmd":
        run = run_warmd(args.target, args.count, args.warmup, args.concurrency, args.size,
                        args.tag, frames=not args.lines)
    else:
        run = run_etcd(args.target, args.count, args.warmup, args.concurrency, args.size,
                       args.tag)
    tally, elapsed_s = asyncio.run(run)
    latencies_s = sorted(tally.latencies_s)
    print(json.dumps({
        "ops_s": len(latencies_s) / elapsed_s, "p50_ms": percentile_ms(latencies_s, 0.5),
        "p99_ms": percentile_ms(latencies_s, 0.99), "failures": tally.failures,
        "count": args.count, "first_error": tally.first_error,
        "client_cpu_us": tally.cpu_s / args.count * 1e6,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
