"""Task failover: an executor SIGKILLed mid-task; how soon, and from where, another resumes it.

Three real daemons (1.5 s executor lease, 300 ms heartbeats) and a real redis-server. The
leader is drained, so tasks run on followers and the kill measures executor failover, not
an election. Each trial submits one task of `--keys` keys written at a capped rate, waits
until its checkpoint has moved, SIGKILLs its owner, and polls another node until the task
is RUNNING under a new owner. resume_ms is kill -> the new owner's Start applied (target:
within lease + 1 s); redone_keys is how many keys the dead owner had already written past
the checkpoint the new owner resumed from (the cost of checkpointing every batch).
Last line: `resume_ms_median=... resume_ms_max=... lease_ms=... redone_keys=...`.

Usage: python bench/task_failover.py [--trials N] [--keys K]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from chaos.ops import executor_settings, wait_executors
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import start_redis

LEASE_MS = 1_500
HEARTBEAT_MS = 300
POLL_S = 0.005


def task_state(cluster: ProcessCluster, node_id: int, task_id: str) -> dict:
    return cluster.call(node_id, "task-show", timeout_s=5.0, task_id=task_id)["task"]


def one_trial(cluster: ProcessCluster, leader: int, target: str, redis_port: int,
              number: int, keys: int) -> tuple[float, int]:
    """Run one kill; returns (resume_ms, redone_keys)."""
    task_id = f"failover-{number}"
    redis.Redis(port=redis_port).flushall()
    cluster.call(leader, "task-submit", task_id=task_id, target=target,
                 key_prefix=f"{task_id}:", key_count=keys)
    running = cluster.wait_until(
        lambda: (lambda t: t if t["state"] == "RUNNING" and t["checkpoint"] > keys // 10 else None)(
            task_state(cluster, leader, task_id)), 30, "the task to make progress")
    owner = running["owner"]
    cluster.kill(owner)
    killed_s = time.monotonic()
    written_before = redis.Redis(port=redis_port).dbsize()
    while True:
        task = task_state(cluster, leader, task_id)
        if task["owner"] not in (0, owner) and task["state"] in ("RUNNING", "SUCCEEDED"):
            break
        time.sleep(POLL_S)
    resume_ms = (time.monotonic() - killed_s) * 1000
    redone = max(0, written_before - task["checkpoint"])
    cluster.start(owner)
    cluster.wait_until(lambda: task_state(cluster, leader, task_id)["state"] == "SUCCEEDED", 60,
                       "the task to finish")
    # The next trial kills another member: until the restarted one is back and caught up,
    # that would leave no quorum (a loaded machine takes seconds to start a daemon).
    cluster.wait_applied(owner, cluster.call(leader, "status")["commit_index"], timeout_s=60)
    print(f"trial {number}: owner {owner} killed at checkpoint {running['checkpoint']}, "
          f"resumed by node {task['owner']} after {resume_ms:.0f} ms from checkpoint "
          f"{task['checkpoint']} ({written_before} keys were written), redone {redone}",
          flush=True)
    return resume_ms, redone


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--keys", type=int, default=2000)
    args = parser.parse_args()
    server = start_redis()
    cluster = ProcessCluster(3)
    try:
        settings = executor_settings(LEASE_MS, HEARTBEAT_MS, keys_per_second=1000, batch_keys=50)
        for node in cluster.nodes.values():
            node.executor.update(settings)
            cluster.write_config(node)
        leader = cluster.start_all().wait_for_leader()
        wait_executors(cluster, 3)
        cluster.call(leader, "drain", node_id=leader)
        results = [one_trial(cluster, leader, f"redis://{server.address}", server.port, number,
                             args.keys) for number in range(args.trials)]
    finally:
        cluster.close()
        server.stop()
    resume = [ms for ms, _ in results]
    redone = [keys for _, keys in results]
    print(f"resume_ms_median={statistics.median(resume):.0f} resume_ms_max={max(resume):.0f} "
          f"lease_ms={LEASE_MS} redone_keys={max(redone)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
