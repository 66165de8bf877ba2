"""Failover on real processes: 3 nodes, 500 tasks of 100 keys into a real Redis, the leader
SIGKILLed mid-run and an executor SIGSTOPped past its lease; nothing is lost or doubled."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from chaos.ops import pause, stop_and_audit, submit, wait_all_terminal, wait_executors
from warmd.cli.warmctl import main as warmctl_main
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import ServerProcess

TASKS = 500
KEYS_PER_TASK = 100


def _submit_all(cluster: ProcessCluster, target: str, acknowledged: list[str]) -> None:
    def one(number: int) -> None:
        task_id = f"task-{number:04d}"
        keys = [f"{task_id}:{key}" for key in range(KEYS_PER_TASK)]
        submit(cluster, task_id, target, keys, prefer=number)
        acknowledged.append(task_id)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(one, range(TASKS)))


@pytest.mark.timeout(150)
def test_leader_kill_and_executor_pause_lose_and_double_nothing(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        capsys: pytest.CaptureFixture[str]) -> None:
    """With the leader SIGKILLed (and restarted) and a follower SIGSTOPped longer than its
    lease mid-run, every acknowledged task ends SUCCEEDED once with its keys in Redis, no
    stale-fence report is accepted, the paused node's tasks were reassigned, the replicas
    agree, and `warmctl status` shows the refused stale-fence reports."""
    cluster = make_task_cluster(3, keys_per_second=400.0).start_all()
    leader = cluster.wait_for_leader()
    acknowledged: list[str] = []
    submitter = threading.Thread(target=_submit_all, args=(
        cluster, f"redis://{redis_target.address}", acknowledged))
    submitter.start()
    time.sleep(3.0)
    cluster.kill(leader)
    cluster.start(leader)
    new_leader = cluster.wait_for_leader(timeout_s=15)
    time.sleep(2.0)
    victim = next(node_id for node_id in (1, 2, 3) if node_id != new_leader)
    wait_executors(cluster, 3)
    lease_ms = cluster.call(victim, "nodes")["nodes"][victim - 1]["lease_ms"]
    cluster.wait_until(lambda: any(task["owner"] == victim for task in cluster.call(
        new_leader, "task-list", state="RUNNING")["tasks"]), 20, f"node {victim} to run a task")
    pause(cluster, victim, paused=True)
    time.sleep(lease_ms / 1000 * 2)
    pause(cluster, victim, paused=False)
    submitter.join(timeout=60)
    assert not submitter.is_alive() and len(acknowledged) == TASKS
    found = wait_all_terminal(cluster, TASKS, timeout_s=60)
    assert found["SUCCEEDED"] == TASKS
    capsys.readouterr()
    assert warmctl_main(["--socket", str(cluster.nodes[victim].socket_path), "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert warmctl_main(["--socket", str(cluster.nodes[victim].socket_path), "status"]) == 0
    assert f"stale-fence reports refused: {status['stale_fence_rejections']}" in capsys.readouterr().out
    report = stop_and_audit(cluster, acknowledged, redis_target.port)
    assert report.violations == []
    assert (report.lost, report.duplicates, report.stale_fence_accepted, report.divergent) == (0, 0, 0, 0)
    assert report.terminal == TASKS and report.missing_keys == 0
    assert report.reassignments >= 1  # the pause really took tasks away from the victim
    assert report.stale_fence_refused >= status["stale_fence_rejections"]  # late ones count too


def test_a_restarted_executor_adopts_its_running_task_and_resumes_from_the_checkpoint(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess) -> None:
    """An executor SIGKILLed and restarted within its lease finds its RUNNING task in the
    state, resumes it from the checkpoint under the same fence, and finishes it."""
    cluster = make_task_cluster(3, lease_ms=8_000, keys_per_second=200.0).start_all()
    leader = cluster.wait_for_leader()
    wait_executors(cluster, 3)
    cluster.call(leader, "drain", node_id=leader)  # the task runs on a follower
    cluster.call(leader, "task-submit", task_id="adopt", target=f"redis://{redis_target.address}",
                 key_prefix="adopt:", key_count=600)

    def show() -> dict:
        return cluster.call(leader, "task-show", task_id="adopt")["task"]
    running = cluster.wait_until(lambda: (t := show())["checkpoint"] >= 100 and t, 20, "progress")
    cluster.kill(running["owner"])
    cluster.start(running["owner"])
    done = cluster.wait_until(lambda: (t := show())["state"] == "SUCCEEDED" and t, 30, "success")
    assert (done["owner"], done["fence"], done["reassignments"]) == (
        running["owner"], running["fence"], 0)
    log = cluster.nodes[running["owner"]].log_text()
    resumed = [json.loads(line) for line in log.splitlines()
               if line.startswith("{") and '"executor_resuming"' in line]
    assert resumed and resumed[-1]["checkpoint"] >= running["checkpoint"]
