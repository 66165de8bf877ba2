"""Idle cost and task pick-up latency of a real three-node cluster at the default timing.

Three real daemons with their executors on at the shipped defaults (50 ms ticks, 500 ms
executor heartbeats, the default leader loops) and a real redis-server as the target.
First the cluster sits idle for `--idle` seconds and the CPU time of every daemon process
(user + system, from /proc) is read before and after: the cost of being up. Then `--tasks`
one-key tasks are submitted one after another on the leader; for each, pick-up is the
time from the submission being acknowledged (committed and applied on the leader) to
an admin read on the leader showing it RUNNING or SUCCEEDED, polled every 2 ms.

There is no peer here: this measures our shell against itself (before/after a change).
Last line: `idle_cpu_pct=... pickup_ms_median=... pickup_ms_p90=... pickup_ms_max=...`
(`idle_cpu_pct`: the three daemons together, percent of one core).

Usage: python bench/idle_pickup.py [--idle S] [--tasks N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.ops import executor_settings, wait_executors
from warmd.testing.procs import ProcessCluster, Timing
from warmd.testing.servers import start_redis

DEFAULT_TIMING = Timing(tick_interval_ms=50, election_timeout_ticks=10, heartbeat_ticks=2)
POLL_S = 0.002


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cluster_cpu_s(cluster: ProcessCluster) -> float:
    return sum(cpu_seconds(node.process.pid) for node in cluster.nodes.values()
               if node.process is not None)


def pickup_ms(cluster: ProcessCluster, leader: int, target: str, number: int) -> float:
    task_id = f"pickup-{number}"
    cluster.call(leader, "task-submit", task_id=task_id, target=target, keys=[task_id])
    submitted_s = time.monotonic()
    while True:
        task = cluster.call(leader, "task-show", timeout_s=5.0, task_id=task_id)["task"]
        if task["state"] in ("RUNNING", "SUCCEEDED"):
            return (time.monotonic() - submitted_s) * 1000
        if time.monotonic() - submitted_s > 30:
            raise TimeoutError(f"{task_id} not picked up in 30 s: {task['state']}")
        time.sleep(POLL_S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=20.0, help="idle seconds measured")
    parser.add_argument("--tasks", type=int, default=30, help="tasks submitted one by one")
    args = parser.parse_args()
    redis_server = start_redis()
    try:
        latencies, idle_pct = measure(args, f"redis://{redis_server.address}")
    finally:
        redis_server.stop()
    latencies.sort()
    p90 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.9))]
    print(f"idle_s={args.idle} tasks={args.tasks}")
    print(f"idle_cpu_pct={idle_pct:.1f} pickup_ms_median={statistics.median(latencies):.1f} "
          f"pickup_ms_p90={p90:.1f} pickup_ms_max={latencies[-1]:.1f}")
    return 0


def measure(args: argparse.Namespace, target: str) -> tuple[list[float], float]:
    with ProcessCluster(3, timing=DEFAULT_TIMING) as cluster:
        for node in cluster.nodes.values():
            node.executor = executor_settings(lease_ms=3_000, heartbeat_ms=500)
            cluster.write_config(node)
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout_s=20)
        wait_executors(cluster, 3)
        time.sleep(2.0)  # start-up work (rules, first summaries) settles
        before_s = cluster_cpu_s(cluster)
        time.sleep(args.idle)
        idle_pct = (cluster_cpu_s(cluster) - before_s) / args.idle * 100
        latencies = [pickup_ms(cluster, leader, target, number) for number in range(args.tasks)]
    return latencies, idle_pct


if __name__ == "__main__":
    raise SystemExit(main())
