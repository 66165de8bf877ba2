"""Client-side operations shared by the chaos runner, tests and the failover bench: submit
tasks through any live node (retrying across failovers), wait for them to finish, and stop
the cluster and audit its logs and the cache."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from chaos.audit import AuditReport, audit_logs, missing_keys, read_node_log
from warmd.admin.client import AdminClientError
from warmd.statemachine.access import AUDIT_KEPT
from warmd.testing.procs import ProcessCluster

RETRY_PAUSE_S = 0.05


@dataclass(frozen=True, slots=True)
class Submission:
    """One acknowledged submission: which node took it and how long it took."""

    task_id: str
    node_id: int
    started_s: float
    finished_s: float


def executor_settings(lease_ms: int, heartbeat_ms: int, capacity: int = 4,
                      keys_per_second: int = 0, batch_keys: int = 10) -> dict[str, int | bool]:
    """The `[executor]` config keys that turn a test daemon's executor on."""
    return {"enabled": True, "lease_ms": lease_ms, "heartbeat_interval_ms": heartbeat_ms,
            "capacity": capacity, "keys_per_second": int(keys_per_second),
            "batch_keys": batch_keys}


def submit(cluster: ProcessCluster, task_id: str, target: str, keys: Sequence[str],
           timeout_s: float = 30.0, prefer: int = 1) -> Submission:
    """Submit until some node acknowledges it; a refusal because the task already exists
    means an earlier, timed-out attempt was committed, which also acknowledges it.

    Raises:
        TimeoutError: no node acknowledged within `timeout_s`.
    """
    started_s = time.monotonic()
    attempt = 0
    while time.monotonic() - started_s < timeout_s:
        running = [node_id for node_id, node in sorted(cluster.nodes.items()) if node.running()]
        node_id = running[(prefer + attempt) % len(running)] if running else 0
        attempt += 1
        if not node_id:
            time.sleep(RETRY_PAUSE_S)
            continue
        try:
            cluster.call(node_id, "task-submit", timeout_s=5.0, task_id=task_id, target=target,
                         keys=list(keys))
        except AdminClientError as error:
            if "already exists" not in str(error):
                time.sleep(RETRY_PAUSE_S)
                continue
        return Submission(task_id, node_id, started_s, time.monotonic())
    raise TimeoutError(f"task {task_id} was not acknowledged within {timeout_s} s")


def counts(cluster: ProcessCluster) -> dict[str, int] | None:
    """Task counts per state from any answering node (a linearizable read), or None;
    `PRUNED` counts the finished tasks the state has dropped past its bound."""
    for node_id, node in sorted(cluster.nodes.items()):
        if not node.running():
            continue
        try:
            listed = cluster.call(node_id, "task-list", timeout_s=5.0, limit=0)
        except AdminClientError:
            continue
        return {**listed["counts"], "PRUNED": int(listed.get("finished_pruned", 0))}
    return None


def state_bounds(cluster: ProcessCluster) -> dict[str, bool] | None:
    """Which of the replicated state's bounds are reached, from any answering node: the
    finished tasks kept outside plans (some were pruned) and the audit records kept
    (the trail is full). None when no node answers."""
    for node_id, node in sorted(cluster.nodes.items()):
        if not node.running():
            continue
        try:
            listed = cluster.call(node_id, "task-list", timeout_s=5.0, limit=0)
            audit = cluster.call(node_id, "audit", timeout_s=5.0, limit=0)
        except AdminClientError:
            continue
        return {"finished_tasks": int(listed.get("finished_pruned", 0)) > 0,
                "audit_trail": int(audit["total"]) >= AUDIT_KEPT}
    return None


def wait_all_terminal(cluster: ProcessCluster, expected: int, timeout_s: float) -> dict[str, int]:
    """Wait until `expected` tasks are in terminal states; returns the counts."""
    terminal = ("SUCCEEDED", "CANCELLED", "EXPIRED", "SKIPPED", "PRUNED")

    def settled() -> dict[str, int] | None:
        found = counts(cluster)
        return found if found and sum(found[state] for state in terminal) >= expected else None
    return cluster.wait_until(settled, timeout_s, f"{expected} tasks to finish")


def wait_executors(cluster: ProcessCluster, count: int, timeout_s: float = 20.0) -> None:
    """Wait until `count` executors have registered (as seen by a linearizable read)."""
    def registered() -> bool:
        for node_id, node in sorted(cluster.nodes.items()):
            if node.running():
                try:
                    return len(cluster.call(node_id, "nodes", timeout_s=5.0)["nodes"]) >= count
                except AdminClientError:
                    continue
        return False
    cluster.wait_until(registered, timeout_s, f"{count} executors to register")


def pause(cluster: ProcessCluster, node_id: int, paused: bool) -> None:
    """SIGSTOP (or SIGCONT) a node's whole process group."""
    process = cluster.nodes[node_id].process
    if process is not None:
        os.killpg(process.pid, signal.SIGSTOP if paused else signal.SIGCONT)


def cache_keys(redis_port: int) -> set[str]:
    """Every key in the redis-server on `redis_port`."""
    client = redis.Redis(port=redis_port)
    try:
        return {key.decode() for key in client.scan_iter(count=10_000)}
    finally:
        client.close()


def stop_and_audit(cluster: ProcessCluster, acknowledged: Iterable[str],
                   redis_port: int) -> AuditReport:
    """Stop every node cleanly, audit their logs, and check SUCCEEDED tasks' keys in Redis."""
    for node_id, node in cluster.nodes.items():
        if node.process is not None:
            pause(cluster, node_id, paused=False)
            cluster.stop(node_id)
    logs = [read_node_log(node_id, node.data_dir) for node_id, node in sorted(cluster.nodes.items())]
    report, machine = audit_logs(logs, acknowledged)
    missing = missing_keys(machine, cache_keys(redis_port))
    report.missing_keys = len(missing)
    if missing:
        report.violations.append(f"{len(missing)} keys of SUCCEEDED tasks are not in Redis, "
                                 f"e.g. {missing[:3]}")
    return report
