"""Faults in the middle of pipelined tasks, on real processes and a real Redis: executors that
take tasks ahead (prefetch), write while their Start commits, checkpoint in the background
and take the next task before the Finish commits. An executor SIGKILLed with checkpoints in
flight and queued tasks, and a leader killed between the Assign and the Finish of running
and queued tasks, lose nothing and run nothing twice (the audit replays every log)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chaos.ops import stop_and_audit, submit, wait_all_terminal, wait_executors
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import ServerProcess

PREFETCH = 2


def _pipelined_cluster(make_task_cluster: Callable[..., ProcessCluster]) -> ProcessCluster:
    """3 nodes running 2 tasks at once each and holding 2 more per slot, 300 keys/s a task
    in checkpoints of 10 keys, so checkpoints are always in flight."""
    cluster = make_task_cluster(3, capacity=2, keys_per_second=300.0)
    for node in cluster.nodes.values():
        node.executor["prefetch"] = PREFETCH
        cluster.write_config(node)
    return cluster.start_all()


def _submit(cluster: ProcessCluster, redis: ServerProcess, count: int, keys: int) -> list[str]:
    task_ids = [f"pipe-{number:02d}" for number in range(count)]
    for number, task_id in enumerate(task_ids):
        submit(cluster, task_id, f"redis://{redis.address}",
               [f"{task_id}:{key}" for key in range(keys)], prefer=number)
    return task_ids


def _active(cluster: ProcessCluster, node_id: int) -> list[dict[str, Any]]:
    return [task for state in ("ASSIGNED", "RUNNING")
            for task in cluster.call(node_id, "task-list", state=state, limit=1000)["tasks"]]


def _audit_is_clean(cluster: ProcessCluster, task_ids: list[str], redis: ServerProcess) -> int:
    report = stop_and_audit(cluster, task_ids, redis.port)
    assert report.violations == []
    assert (report.lost, report.duplicates, report.stale_fence_accepted, report.divergent,
            report.missing_keys) == (0, 0, 0, 0, 0)
    assert report.terminal == len(task_ids)
    return report.reassignments


@pytest.mark.timeout(120)
def test_an_executor_killed_with_checkpoints_in_flight_and_tasks_queued_loses_nothing(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess) -> None:
    """The victim holds running tasks (checkpoints proposed in the background) and queued
    ones; SIGKILLed, it loses them all after its lease; the other follower resumes each
    from its newest committed checkpoint, and every task ends SUCCEEDED once."""
    cluster = _pipelined_cluster(make_task_cluster)
    leader = cluster.wait_for_leader()
    wait_executors(cluster, 3)
    cluster.call(leader, "drain", node_id=leader)  # work and faults on the followers only
    task_ids = _submit(cluster, redis_target, count=12, keys=300)

    def victim_task() -> dict[str, Any] | None:
        running = [task for task in _active(cluster, leader)
                   if task["state"] == "RUNNING" and task["checkpoint"] >= 50]
        return running[0] if running else None
    seen = cluster.wait_until(victim_task, 30, "a follower's task to checkpoint")
    victim = seen["owner"]
    held = [task["task_id"] for task in _active(cluster, leader) if task["owner"] == victim]
    assert len(held) > 2  # running 2 at once, so some were queued (prefetch)
    cluster.kill(victim)
    wait_all_terminal(cluster, len(task_ids), timeout_s=60)
    final = cluster.call(leader, "task-show", task_id=seen["task_id"])["task"]
    assert final["state"] == "SUCCEEDED" and final["reassignments"] == 1
    assert final["result"]["keys_ok"] <= 300 - seen["checkpoint"]  # resumed, not restarted
    cluster.start(victim)
    assert _audit_is_clean(cluster, task_ids, redis_target) >= len(held)


@pytest.mark.timeout(120)
def test_a_leader_change_between_assign_and_finish_loses_and_doubles_nothing(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess) -> None:
    """Tasks the old leader assigned (running or queued on the followers) are finished under
    the new leader with the same fence: the Assign and the Finish straddle the change."""
    cluster = _pipelined_cluster(make_task_cluster)
    leader = cluster.wait_for_leader()
    wait_executors(cluster, 3)
    task_ids = _submit(cluster, redis_target, count=24, keys=200)

    def followers_busy() -> list[dict[str, Any]] | None:
        active = [task for task in _active(cluster, leader) if task["owner"] != leader]
        return active if len(active) >= 4 else None
    straddling = {task["task_id"]: task["fence"]
                  for task in cluster.wait_until(followers_busy, 30, "followers' tasks")}
    cluster.kill(leader)
    cluster.start(leader)
    new_leader = cluster.wait_for_leader(timeout_s=15)
    wait_all_terminal(cluster, len(task_ids), timeout_s=60)
    kept = [task_id for task_id, fence in straddling.items()
            if (task := cluster.call(new_leader, "task-show", task_id=task_id)["task"])
            ["state"] == "SUCCEEDED" and task["fence"] == fence]
    # Every one finished under the fence the old leader gave: the followers that ran them
    # kept heartbeating through the election (a heartbeat stuck in a proposal to the dead
    # leader once silenced them past their lease, and the new leader took every task back).
    assert sorted(kept) == sorted(straddling)
    _audit_is_clean(cluster, task_ids, redis_target)
