"""Durable Raft throughput: warmd vs PySyncObj vs etcd, three processes each, same run.

Workload (bench/_peers.py has the details for each system): closed-loop 100-byte writes,
CONCURRENCY in flight, each acknowledged after commit and apply; warmd and etcd fsync,
PySyncObj writes its journal without fsync. Prints each system's ops/s and p50/p99 latency,
then the last line `warmd_ops_s=... pysyncobj_ops_s=... etcd_ops_s=... ratio_vs_pysyncobj=...
ratio_vs_etcd=... warmd_p99_ms=... etcd_p99_ms=...`. `--quick` runs in under a minute.

    .venv/bin/python bench/raft_throughput.py [--quick] [--concurrency 64] [--count N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import (
    DEFAULT_TIMING,
    BenchCluster,
    EtcdCluster,
    LoadResult,
    etcd_load,
    pysyncobj_load,
    warmd_load,
)


def measure_warmd(count: int, concurrency: int) -> LoadResult:
    with BenchCluster(3, DEFAULT_TIMING, cluster_id="warmd-bench") as cluster:
        cluster.start_all()
        warmd_load(cluster, min(count, 2000), concurrency)  # warm-up: connections, caches
        return warmd_load(cluster, count, concurrency)


def measure_etcd(count: int, concurrency: int) -> LoadResult:
    with EtcdCluster() as cluster:
        cluster.start_all()
        url = cluster.leader().client_url
        etcd_load(url, min(count, 2000), concurrency)  # warm-up
        return etcd_load(url, count, concurrency)


def describe(name: str, result: LoadResult) -> str:
    return (f"{name:<10} {result.ops_s:9.0f} ops/s  p50 {result.p50_ms:7.1f} ms  "
            f"p99 {result.p99_ms:7.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts (under a minute)")
    parser.add_argument("--concurrency", type=int, default=64, help="writes in flight")
    parser.add_argument("--count", type=int, help="writes per system (default 30000, quick 5000)")
    args = parser.parse_args()
    count = args.count or (5000 if args.quick else 30000)
    warmd = measure_warmd(count, args.concurrency)
    print(describe("warmd", warmd), flush=True)
    pysyncobj = pysyncobj_load(count, args.concurrency)
    print(describe("pysyncobj", pysyncobj), flush=True)
    etcd = measure_etcd(count, args.concurrency)
    print(describe("etcd", etcd), flush=True)
    print(f"warmd_ops_s={warmd.ops_s:.0f} pysyncobj_ops_s={pysyncobj.ops_s:.0f} "
          f"etcd_ops_s={etcd.ops_s:.0f} ratio_vs_pysyncobj={warmd.ops_s / pysyncobj.ops_s:.2f} "
          f"ratio_vs_etcd={warmd.ops_s / etcd.ops_s:.2f} warmd_p99_ms={warmd.p99_ms:.1f} "
          f"etcd_p99_ms={etcd.p99_ms:.1f} pysyncobj_p99_ms={pysyncobj.p99_ms:.1f} "
          f"concurrency={args.concurrency} count={count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
