"""Durable Raft throughput: warmd vs etcd vs PySyncObj, three members each, rounds interleaved.

Workload (bench/_peers.py has each system's details): closed-loop 100-byte writes, the same
number in flight for everyone (64, and 1,024 without --quick), each acknowledged after
commit and apply; warmd and etcd fsync before acknowledging, PySyncObj writes its journal
without fsync. One warmd and one etcd cluster serve every round; PySyncObj is started per
run. Each round runs every system once at each in-flight count, in an order rotated from
round to round, so a burst of load from elsewhere falls on all of them.

- warmd, follower_client: a client process (bench/_raft_client.py) sends pipelined
  `bench-write` requests to a FOLLOWER's admin socket through warmd's Python client
  (warmd.admin.pipeline, msgpack frames); the follower forwards the proposals
  to the leader, as an executor's proposals travel. The headline figure.
- warmd, leader_client: the same client on the leader's admin socket.
- warmd, in-process: `bench-propose`, the load generated inside the leader (no client);
  printed on a line of its own, never compared with the peers.
- etcd: the same client process through etcd's native gRPC client `aetcd`, to the leader
  and to a follower. With --check-perf, `etcdctl check perf` is run once as a cross-check.
- PySyncObj: its best throughput settings (a sweep of its documented SyncObjConf options
  without --quick; the setting the sweep picked here with --quick), warmed up, failures
  counted; the load runs in its leader's process (it has no client protocol).

Prints each run, then per system and in-flight count the median ops/s with its spread (min
and max over the rounds), the median p50/p99 and the CPU per write of the three members
together and of the client process (where there is one: a client that is the bottleneck
shows here), then the in-process line, and last the
line `warmd_ops_s=... pysyncobj_ops_s=... etcd_ops_s=... ratio_vs_pysyncobj=...
ratio_vs_etcd=... warmd_p99_ms=... etcd_p99_ms=... path=follower_client ...` for 64 in
flight, where etcd is the better of its two paths (by median ops/s) and its p99 that path's.

    .venv/bin/python bench/raft_throughput.py [--quick] [--rounds 3] [--check-perf]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import (
    DEFAULT_TIMING,
    BenchCluster,
    EtcdCluster,
    LoadResult,
    PySyncObjSettings,
    client_load,
    cpu_seconds,
    pysyncobj_load,
    warmd_load,
)

# What the full run's sweep chose at 64 in flight (docs/benchmarks.md, 2026-12-06): batching
# with a 1 ms append period and loop tick (6,626 ops/s against 563 at the defaults).
PYSYNCOBJ_QUICK = PySyncObjSettings(batch=True, append_period_s=0.001, tick_period_s=0.001)
PYSYNCOBJ_CANDIDATES = (
    PySyncObjSettings(),  # the defaults
    PySyncObjSettings(batch=True, append_period_s=0.01, tick_period_s=0.01),
    PySyncObjSettings(batch=True, append_period_s=0.001, tick_period_s=0.001),
    PySyncObjSettings(batch=False),
)
Run = Callable[[int, int, str], LoadResult]  # (count, in flight, run tag) -> result


def best_pysyncobj(count: int, concurrency: int) -> PySyncObjSettings:
    """Run each candidate setting once; the one with the most ops/s."""
    results = []
    for settings in PYSYNCOBJ_CANDIDATES:
        result = pysyncobj_load(count, concurrency, warmup=count // 4, settings=settings)
        print(f"  pysyncobj sweep, {concurrency} in flight, {settings}: "
              f"{result.ops_s:.0f} ops/s p99 {result.p99_ms:.1f} ms", flush=True)
        results.append((result.ops_s, settings))
    return max(results, key=lambda pair: pair[0])[1]


def check_perf(address: str) -> None:
    """etcd's own load check against our cluster (60 s), its summary printed as it is."""
    done = subprocess.run(["etcdctl", f"--endpoints={address}", "check", "perf", "--load=m"],
                          capture_output=True, text=True, timeout=300, check=False)
    lines = [line for line in done.stdout.splitlines() if line.strip() and "%" not in line]
    for line in lines[-6:]:
        print(f"  etcdctl check perf: {line}", flush=True)


def summarize(results: list[LoadResult]) -> LoadResult:
    """Medians over the rounds (failures summed)."""
    return LoadResult(statistics.median(r.ops_s for r in results),
                      statistics.median(r.p50_ms for r in results),
                      statistics.median(r.p99_ms for r in results),
                      sum(r.failures for r in results),
                      statistics.median(r.client_cpu_us for r in results),
                      statistics.median(r.server_cpu_us for r in results))


def describe(name: str, concurrency: int, results: list[LoadResult]) -> str:
    median = summarize(results)
    ops = [r.ops_s for r in results]
    return (f"{name:<22} {concurrency:>5} in flight  {median.ops_s:8.0f} ops/s "
            f"(min {min(ops):.0f}, max {max(ops):.0f}, n={len(ops)})  "
            f"p50 {median.p50_ms:7.1f} ms  p99 {median.p99_ms:7.1f} ms  "
            f"failures {median.failures}  cpu/write: members {median.server_cpu_us:.0f} us, "
            f"client {median.client_cpu_us:.0f} us")


def systems(warmd: BenchCluster, etcd: EtcdCluster,
            pysyncobj: dict[int, PySyncObjSettings], warmup: int) -> dict[str, Run]:
    """Every system's run, by name; leaders are looked up per run (they may change)."""
    def warmd_node(leader: bool) -> str:
        leader_id = warmd.wait_for_leader(30)
        node_id = leader_id if leader else min(n for n in warmd.nodes if n != leader_id)
        return str(warmd.nodes[node_id].socket_path)

    def etcd_member(leader: bool) -> str:
        member = etcd.leader()
        if not leader:
            member = next(m for m in etcd.members if m is not member)
        return member.client_address

    def metered(pids: Callable[[], list[int]], run: Run, warmed: int) -> Run:
        """`run`, with the CPU its members spent per write (warm-up writes included)."""
        def measured(count: int, flight: int, tag: str) -> LoadResult:
            members = pids()
            before_s = cpu_seconds(members)
            result = run(count, flight, tag)
            used_s = cpu_seconds(members) - before_s
            return dataclasses.replace(result, server_cpu_us=used_s / (count + warmed) * 1e6)
        return measured

    def warmd_pids() -> list[int]:
        return [node.process.pid for node in warmd.nodes.values() if node.process is not None]

    def etcd_pids() -> list[int]:
        return [member.process.pid for member in etcd.members if member.process is not None]

    return {
        "warmd follower_client": metered(warmd_pids, lambda count, flight, tag: client_load(
            "warmd", warmd_node(False), count, flight, warmup, tag=tag), warmup),
        "warmd leader_client": metered(warmd_pids, lambda count, flight, tag: client_load(
            "warmd", warmd_node(True), count, flight, warmup, tag=tag), warmup),
        "warmd in-process": metered(warmd_pids, lambda count, flight, tag: warmd_load(
            warmd, count, flight), 0),
        "etcd leader (aetcd)": metered(etcd_pids, lambda count, flight, tag: client_load(
            "etcd", etcd_member(True), count, flight, warmup), warmup),
        "etcd follower (aetcd)": metered(etcd_pids, lambda count, flight, tag: client_load(
            "etcd", etcd_member(False), count, flight, warmup), warmup),
        "pysyncobj": lambda count, flight, tag: pysyncobj_load(
            count, flight, warmup=warmup, settings=pysyncobj[flight]),
    }


def run_rounds(runs: dict[str, Run], rounds: int, counts: dict[int, int]
               ) -> dict[tuple[str, int], list[LoadResult]]:
    results: dict[tuple[str, int], list[LoadResult]] = defaultdict(list)
    names = list(runs)
    for number in range(rounds):
        order = names[number % len(names):] + names[:number % len(names)]
        for concurrency, count in counts.items():
            for name in order:  # a warmd run's tag: unique per round, system and flight
                tag = f"{number:x}{names.index(name)}{concurrency:x}"
                result = runs[name](count, concurrency, tag)
                results[name, concurrency].append(result)
                print(f"round {number + 1} {name:<22} {concurrency:>5} in flight "
                      f"{result.ops_s:8.0f} ops/s  p50 {result.p50_ms:7.1f} ms  "
                      f"p99 {result.p99_ms:7.1f} ms  failures {result.failures}  "
                      f"cpu/write: members {result.server_cpu_us:4.0f} us, "
                      f"client {result.client_cpu_us:4.0f} us", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="64 in flight only, small counts, no sweep (about 3 minutes)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (>= 3)")
    parser.add_argument("--check-perf", action="store_true",
                        help="also run `etcdctl check perf` once (60 s)")
    args = parser.parse_args()
    counts = {64: 3000} if args.quick else {64: 10000, 1024: 20000}
    warmup = 500 if args.quick else 2000
    with BenchCluster(3, DEFAULT_TIMING, cluster_id="warmd-bench") as warmd, EtcdCluster() as etcd:
        warmd.start_all()
        etcd.start_all()
        warmd.wait_for_leader(30)  # started and serving before any CPU is metered
        etcd.leader()
        pysyncobj = ({flight: PYSYNCOBJ_QUICK for flight in counts} if args.quick else
                     {flight: best_pysyncobj(count // 4, flight) for flight, count in counts.items()})
        results = run_rounds(systems(warmd, etcd, pysyncobj, warmup), args.rounds, counts)
        if args.check_perf:
            check_perf(etcd.leader().client_address)
    print(f"medians over {args.rounds} interleaved rounds; pysyncobj: "
          + ", ".join(f"{flight} in flight {settings}" for flight, settings in pysyncobj.items()))
    for (name, concurrency), runs in sorted(results.items(), key=lambda item: item[0][1]):
        print(describe(name, concurrency, runs), flush=True)
    print(last_lines(results, len(counts) > 1))
    return 0


def last_lines(results: dict[tuple[str, int], list[LoadResult]], with_1024: bool) -> str:
    """The in-process line, then the contract line (64 in flight, follower client path)."""
    def median(name: str, flight: int = 64) -> LoadResult:
        return summarize(results[name, flight])

    warmd, inprocess, pysyncobj = (median("warmd follower_client"), median("warmd in-process"),
                                   median("pysyncobj"))
    etcd = max(median("etcd leader (aetcd)"), median("etcd follower (aetcd)"),
               key=lambda result: result.ops_s)
    extra = ""
    if with_1024:
        warmd_1k = median("warmd follower_client", 1024)
        etcd_1k = max(median("etcd leader (aetcd)", 1024), median("etcd follower (aetcd)", 1024),
                      key=lambda result: result.ops_s)
        extra = (f" ratio_vs_etcd_1024={warmd_1k.ops_s / etcd_1k.ops_s:.2f} "
                 f"ratio_vs_pysyncobj_1024="
                 f"{warmd_1k.ops_s / median('pysyncobj', 1024).ops_s:.2f} "
                 f"warmd_p99_ms_1024={warmd_1k.p99_ms:.1f} etcd_p99_ms_1024={etcd_1k.p99_ms:.1f}")
    return (f"in-process (bench-propose inside the leader, no client): "
            f"warmd_inprocess_ops_s={inprocess.ops_s:.0f} "
            f"warmd_inprocess_p99_ms={inprocess.p99_ms:.1f}\n"
            f"warmd_ops_s={warmd.ops_s:.0f} pysyncobj_ops_s={pysyncobj.ops_s:.0f} "
            f"etcd_ops_s={etcd.ops_s:.0f} ratio_vs_pysyncobj={warmd.ops_s / pysyncobj.ops_s:.2f} "
            f"ratio_vs_etcd={warmd.ops_s / etcd.ops_s:.2f} warmd_p99_ms={warmd.p99_ms:.1f} "
            f"etcd_p99_ms={etcd.p99_ms:.1f} pysyncobj_p99_ms={pysyncobj.p99_ms:.1f} "
            f"path=follower_client concurrency=64{extra}")


if __name__ == "__main__":
    sys.exit(main())
