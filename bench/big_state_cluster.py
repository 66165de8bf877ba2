"""Elections while a real three-node cluster with a big state snapshots, digests and installs.

Three real daemons at the shipped Raft timing (50 ms ticks, 0.5-1 s election timeout), a
state of `--tasks` tasks of 2,500 keys each (400 tasks: a ~30 MB snapshot), writes going on
from a client thread throughout. The leader snapshots (and compacts), every node answers a
`read` (a ReadIndex point and the state's digest), and a new node joins as a learner, which
the leader brings up with the snapshot. Before snapshots were forked, installs stepped and
snapshot files written beside the log writer, each of these held a node's event loop or its
driver for as long as the work took. Prints the wall time of each step and, last,
`elections=... state_mb=... snapshot_s=... digest_s_max=... install_s=...`; `elections` is
how many times the terms moved (0 is the goal). There is no peer: this is our own shell.

Usage: python bench/big_state_cluster.py [--tasks 400] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warmd.admin.client import AdminClientError
from warmd.testing.procs import ClusterTimeout, ProcessCluster, Timing

KEYS_PER_TASK = 2_500
SHIPPED_TIMING = Timing(tick_interval_ms=50, election_timeout_ticks=10, heartbeat_ticks=2,
                        proposal_timeout_ms=10_000)


def terms(cluster: ProcessCluster) -> dict[int, int]:
    return {node_id: int(cluster.status(node_id)["term"]) for node_id in (1, 2, 3)}  # type: ignore[index]


def writes(cluster: ProcessCluster, leader: int, stop: threading.Event) -> None:
    while not stop.wait(0.05):
        try:
            cluster.call(leader, "check-write", timeout_s=10, count=5)
        except AdminClientError:
            continue  # a term change shows in the terms; slowness is not the question here


def timed(step: str, action: Callable[[], object]) -> float:
    """Seconds the step took; a step the cluster could not serve is reported and counted as
    its time until the refusal (the run goes on, so the terms are still compared)."""
    started = time.monotonic()
    outcome = ""
    try:
        action()
    except (AdminClientError, ClusterTimeout, TimeoutError) as error:
        outcome = f"  FAILED: {error}"
    elapsed = time.monotonic() - started
    print(f"{step:<10} {elapsed:6.2f} s{outcome}", flush=True)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400, help="tasks of 2,500 keys in the state")
    parser.add_argument("--quick", action="store_true", help="100 tasks")
    args = parser.parse_args()
    tasks = 100 if args.quick else args.tasks
    with ProcessCluster(3, SHIPPED_TIMING) as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader(timeout_s=20)
        for number in range(tasks):
            cluster.call(leader, "task-submit", timeout_s=60, task_id=f"big-{number}",
                         target="redis://127.0.0.1:1", key_prefix=f"big-{number}:{'k' * 16}:",
                         key_count=KEYS_PER_TASK)
        before = terms(cluster)
        stop = threading.Event()
        writer = threading.Thread(target=writes, args=(cluster, leader, stop))
        writer.start()
        snapshot: dict[str, int] = {}
        try:
            snapshot_s = timed("snapshot", lambda: snapshot.update(
                cluster.call(leader, "snapshot", timeout_s=300)))
            digest_s = max(timed(f"read {node_id}", lambda node_id=node_id: cluster.call(
                node_id, "read", timeout_s=300)) for node_id in (1, 2, 3))
            joiner = cluster.add_joining_node(4)
            cluster.start(4)

            def install() -> None:
                cluster.call(leader, "add-learner", timeout_s=120, node_id=4,
                             address=joiner.address)
                applied = int(cluster.status(leader)["applied_index"])  # type: ignore[index]
                cluster.wait_applied(4, applied, timeout_s=300)
            install_s = timed("install", install)
        finally:
            stop.set()
            writer.join(timeout=30)
        after = terms(cluster)
    elections = max(after.values()) - max(before.values())
    print(f"terms before {before} after {after}")
    print(f"elections={elections} state_mb={snapshot.get('data_bytes', 0) / 1e6:.0f} "
          f"snapshot_s={snapshot_s:.2f} digest_s_max={digest_s:.2f} install_s={install_s:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
