"""Leader failover, warmd vs etcd at equal settings and at each one's defaults, rounds interleaved.

Four three-member clusters run side by side for the whole bench:

- warmd at its defaults: 50 ms ticks, heartbeat 2 ticks (100 ms), election timeout 10 ticks
  (500 ms, randomised over 500-1000 ms), pre-vote and check-quorum on;
- etcd at warmd's settings: `--heartbeat-interval 100 --election-timeout 500` (etcd also
  randomises its timeout over [timeout, 2 x timeout));
- etcd at its defaults: heartbeat 100 ms, election timeout 1000 ms;
- warmd at etcd's defaults: heartbeat 2 ticks (100 ms), election timeout 20 ticks (1000 ms).

A round SIGKILLs the leader of each cluster in turn (the order rotates from round to round)
and measures the time from the kill to the first write committed (and applied) by the
survivors, then restarts the killed member and lets it rejoin before the next. warmd: the
survivors' admin sockets are polled every 10 ms for a new leader, which then commits one
write (`check-write 1`). etcd: a put is started every 10 ms, alternating survivors (etcd
followers forward it to the new leader), until one is acknowledged. Prints every round, the
medians and maxima, then the last line `warmd_failover_ms_median=... warmd_failover_ms_max=...
etcd_same_settings_ms_median=... etcd_default_ms_median=... ...`. `--quick`: 3 rounds.

    .venv/bin/python bench/failover.py [--quick] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import DEFAULT_TIMING, BenchCluster, EtcdCluster, etcd_put_once

from warmd.admin.client import AdminClientError
from warmd.testing.procs import ProcessCluster

POLL_S = 0.01
SETTLE_S = 1.0  # after a restart, before the next kill: the returning node is a follower again
# etcd's defaults expressed in warmd's ticks: heartbeat 100 ms, election timeout 1000 ms.
ETCD_DEFAULT_TIMING = dataclasses.replace(DEFAULT_TIMING, election_timeout_ticks=20)
WARMD_HEARTBEAT_MS = DEFAULT_TIMING.tick_interval_ms * DEFAULT_TIMING.heartbeat_ticks
WARMD_ELECTION_MS = DEFAULT_TIMING.tick_interval_ms * DEFAULT_TIMING.election_timeout_ticks


# ---------------------------------------------------------------------------- warmd

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


def start_warmd(cluster: BenchCluster) -> BenchCluster:
    cluster.start_all()
    cluster.wait_for_leader(30)
    for node_id in cluster.nodes:  # register every node once, so a round is one write
        cluster.call(node_id, "check-write", timeout_s=10, count=1)
    return cluster


# ---------------------------------------------------------------------------- etcd

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


def etcd_round(cluster: EtcdCluster) -> float:
    """One kill of the leader; milliseconds from the kill to the first acknowledged put."""
    leader = cluster.leader()
    asyncio.run(etcd_first_put([leader.client_url]))
    urls = [member.client_url for member in cluster.members if member is not leader]
    killed_s = time.perf_counter()
    cluster.kill(leader)
    asyncio.run(etcd_first_put(urls))
    elapsed_ms = (time.perf_counter() - killed_s) * 1000
    cluster.start(leader)
    cluster.leader()
    time.sleep(SETTLE_S)
    return elapsed_ms


# ---------------------------------------------------------------------------- the bench

def start_all(stack: contextlib.ExitStack) -> dict[str, Callable[[], float]]:
    """The four clusters, started; each name's one-round function."""
    warmd = stack.enter_context(BenchCluster(3, DEFAULT_TIMING, cluster_id="warmd-failover"))
    warmd_slow = stack.enter_context(BenchCluster(3, ETCD_DEFAULT_TIMING,
                                                  cluster_id="warmd-failover-etcd-timing"))
    etcd_same = stack.enter_context(EtcdCluster(heartbeat_ms=WARMD_HEARTBEAT_MS,
                                                election_ms=WARMD_ELECTION_MS))
    etcd_default = stack.enter_context(EtcdCluster())
    for cluster in (warmd, warmd_slow):
        start_warmd(cluster)
    for etcd in (etcd_same, etcd_default):
        etcd.start_all()
        etcd.leader()
    return {
        "warmd": lambda: warmd_round(warmd),
        "etcd_same_settings": lambda: etcd_round(etcd_same),
        "etcd_default": lambda: etcd_round(etcd_default),
        "warmd_etcd_defaults": lambda: warmd_round(warmd_slow),
    }


def run_rounds(rounds: dict[str, Callable[[], float]], count: int) -> dict[str, list[float]]:
    times_ms: dict[str, list[float]] = {name: [] for name in rounds}
    names = list(rounds)
    for number in range(count):
        for name in names[number % len(names):] + names[:number % len(names)]:
            times_ms[name].append(rounds[name]())
            print(f"round {number + 1} {name:<20} {times_ms[name][-1]:6.0f} ms", flush=True)
    return times_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds (about 2 minutes)")
    parser.add_argument("--rounds", type=int, help="kills per cluster (default 10)")
    args = parser.parse_args()
    count = args.rounds or (3 if args.quick else 10)
    print(f"warmd timing: heartbeat {WARMD_HEARTBEAT_MS} ms, election {WARMD_ELECTION_MS} ms; "
          f"etcd defaults: heartbeat 100 ms, election 1000 ms", flush=True)
    with contextlib.ExitStack() as stack:
        times_ms = run_rounds(start_all(stack), count)
    for name, values in times_ms.items():
        print(f"{name:<20} median {statistics.median(values):6.0f} ms  min {min(values):6.0f} ms"
              f"  max {max(values):6.0f} ms  (n={len(values)})", flush=True)
    summary = {name: (statistics.median(values), max(values)) for name, values in times_ms.items()}
    print(f"warmd_failover_ms_median={summary['warmd'][0]:.0f} "
          f"warmd_failover_ms_max={summary['warmd'][1]:.0f} "
          f"etcd_same_settings_ms_median={summary['etcd_same_settings'][0]:.0f} "
          f"etcd_same_settings_ms_max={summary['etcd_same_settings'][1]:.0f} "
          f"etcd_default_ms_median={summary['etcd_default'][0]:.0f} "
          f"etcd_default_ms_max={summary['etcd_default'][1]:.0f} "
          f"warmd_etcd_defaults_ms_median={summary['warmd_etcd_defaults'][0]:.0f} "
          f"warmd_etcd_defaults_ms_max={summary['warmd_etcd_defaults'][1]:.0f} "
          f"etcd_failover_ms_median={summary['etcd_default'][0]:.0f} rounds={count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
