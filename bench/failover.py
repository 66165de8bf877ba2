"""Leader failover with default settings: warmd vs etcd, three processes each.

For each round: SIGKILL the leader, then measure the time from the kill to the first
proposal committed (and applied) by the survivors; restart the killed node and let it catch
up before the next round. warmd: the survivors' admin sockets are polled every 10 ms for a
new leader, which then commits one write (`check-write 1`). etcd: a put is sent to a
survivor right after the kill and retried at once on any error until one is acknowledged
(etcd followers forward it to the new leader). Both use their default timing (warmd: 50 ms
ticks, election timeout 10-20 ticks, pre-vote and check-quorum on; etcd: heartbeat 100 ms,
election 1000 ms). Prints each round, then the last line `warmd_failover_ms_median=...
warmd_failover_ms_max=... etcd_failover_ms_median=...`. `--quick` runs 3 rounds each.

    .venv/bin/python bench/failover.py [--quick] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import (
    DEFAULT_TIMING,
    BenchCluster,
    EtcdCluster,
    etcd_put_once,
)

from warmd.admin.client import AdminClientError
from warmd.testing.procs import ProcessCluster

POLL_S = 0.01
SETTLE_S = 1.0  # after a restart, before the next kill: the returning node is a follower again


def warmd_new_leader(cluster: ProcessCluster, survivors: list[int], old_term: int) -> int | None:
    for node_id in survivors:
        status = cluster.status(node_id)
        if status is not None and status["role"] == "leader" and status["term"] > old_term:
            return node_id
    return None


def warmd_round(cluster: ProcessCluster) -> float:
    """One kill of the leader; milliseconds from the kill to the first committed write."""
    leader = cluster.wait_for_leader(30)
    old_term = cluster.status(leader)["term"]  # type: ignore[index]
    survivors = [node_id for node_id in cluster.nodes if node_id != leader]
    killed_s = time.perf_counter()
    cluster.kill(leader)
    while True:
        new_leader = warmd_new_leader(cluster, survivors, old_term)
        if new_leader is not None:
            try:
                cluster.call(new_leader, "check-write", timeout_s=10, count=1)
                break
            except AdminClientError:
                pass  # lost leadership again, or not yet able to commit: keep trying
        time.sleep(POLL_S)
    elapsed_ms = (time.perf_counter() - killed_s) * 1000
    cluster.start(leader)
    cluster.wait_for_leader(30)
    time.sleep(SETTLE_S)
    return elapsed_ms


def measure_warmd(rounds: int) -> list[float]:
    with BenchCluster(3, DEFAULT_TIMING, cluster_id="warmd-failover") as cluster:
        cluster.start_all()
        cluster.wait_for_leader(30)
        for node_id in cluster.nodes:  # register every node once, so a round is one write
            cluster.call(node_id, "check-write", timeout_s=10, count=1)
        times_ms = []
        for number in range(rounds):
            times_ms.append(warmd_round(cluster))
            print(f"warmd round {number + 1}: {times_ms[-1]:.0f} ms", flush=True)
        return times_ms


async def etcd_first_put(urls: list[str]) -> None:
    """Start a put every POLL_S (alternating survivors) until one is acknowledged: a put sent
    to a follower still following the dead leader hangs, so waiting on one would measure
    etcd's request timeout, not its failover."""
    attempts: set[asyncio.Task[bool]] = set()
    number = 0
    try:
        while True:
            attempts.add(asyncio.create_task(etcd_put_once(urls[number % len(urls)], 5.0)))
            number += 1
            done, _ = await asyncio.wait(attempts, timeout=POLL_S)
            if any(task.result() for task in done):
                return
            attempts -= done
    finally:
        for task in attempts:
            task.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)


def measure_etcd(rounds: int) -> list[float]:
    with EtcdCluster() as cluster:
        cluster.start_all()
        times_ms = []
        for number in range(rounds):
            leader = cluster.leader()
            asyncio.run(etcd_first_put([leader.client_url]))
            urls = [member.client_url for member in cluster.members if member is not leader]
            killed_s = time.perf_counter()
            cluster.kill(leader)
            asyncio.run(etcd_first_put(urls))
            times_ms.append((time.perf_counter() - killed_s) * 1000)
            print(f"etcd round {number + 1}: {times_ms[-1]:.0f} ms", flush=True)
            cluster.start(leader)
            cluster.leader()
            time.sleep(SETTLE_S)
        return times_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds each (under a minute)")
    parser.add_argument("--rounds", type=int, help="kills per system (default 10)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 10)
    warmd = measure_warmd(rounds)
    etcd = measure_etcd(rounds)
    print(f"warmd_failover_ms_median={statistics.median(warmd):.0f} "
          f"warmd_failover_ms_max={max(warmd):.0f} "
          f"etcd_failover_ms_median={statistics.median(etcd):.0f} "
          f"etcd_failover_ms_max={max(etcd):.0f} rounds={rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
