"""Memory of a warmd node that has applied 1M entries, snapshotting every 100k.

A three-process cluster (fsync on, default timing and segment size,
snapshot_interval_entries = 100000) takes 1M durable 100-byte writes through `bench-propose`
on the leader, in chunks of 100k; after each chunk every node's resident set (VmRSS) and its
peak (VmHWM) are read from /proc. Prints one line per chunk, then the last line
`warmd_entries=... warmd_rss_mb_max=... warmd_hwm_mb_max=... leader_rss_mb=...`.
`--quick` takes 100k entries with a snapshot every 10k (under a minute on an idle machine).

    .venv/bin/python bench/raft_memory.py [--quick] [--entries 1000000]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import DEFAULT_TIMING, BenchCluster, warmd_load

CONCURRENCY = 256


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB, from /proc/PID/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k entries, snapshot every 10k")
    parser.add_argument("--entries", type=int, help="entries to apply (default 1000000)")
    args = parser.parse_args()
    entries = args.entries or (100_000 if args.quick else 1_000_000)
    interval = 10_000 if args.quick else 100_000
    timing = dataclasses.replace(DEFAULT_TIMING, snapshot_interval_entries=interval)
    with BenchCluster(3, timing, cluster_id="warmd-memory") as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader(30)
        done, started_s = 0, time.monotonic()
        rss: dict[int, float] = {}
        hwm: dict[int, float] = {}
        while done < entries:
            chunk = min(interval, entries - done)
            result = warmd_load(cluster, chunk, CONCURRENCY)
            done += chunk
            for node_id, node in cluster.nodes.items():
                assert node.process is not None
                rss[node_id], hwm[node_id] = memory_mb(node.process.pid)
            status = cluster.status(leader) or {}
            print(f"{done:>8} entries  {result.ops_s:6.0f} ops/s  snapshot at "
                  f"{status.get('snapshot_index')}  rss MiB "
                  + " ".join(f"{node_id}:{rss[node_id]:.0f}" for node_id in sorted(rss)),
                  flush=True)
        elapsed_s = time.monotonic() - started_s
        print(f"warmd_entries={done} warmd_rss_mb_max={max(rss.values()):.1f} "
              f"warmd_hwm_mb_max={max(hwm.values()):.1f} leader_rss_mb={rss[leader]:.1f} "
              f"snapshot_interval={interval} elapsed_s={elapsed_s:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
