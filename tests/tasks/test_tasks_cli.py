"""warmctl tasks, nodes and drain against a real 3-node cluster writing into a real Redis."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable

import pytest
import redis

from chaos.ops import wait_all_terminal, wait_executors
from warmd.cli.warmctl import main as warmctl_main
from warmd.runtime.execute.executor import ExecutorOptions
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import ServerProcess, free_port


def warmctl(cluster: ProcessCluster, node_id: int, capsys: pytest.CaptureFixture[str],
            *args: str) -> tuple[int, str]:
    """Run warmctl in-process against one node; returns (exit status, stdout)."""
    capsys.readouterr()
    status = warmctl_main(["--socket", str(cluster.nodes[node_id].socket_path), *args])
    return status, capsys.readouterr().out


def test_submitted_tasks_run_to_success_with_their_keys_in_redis(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Tasks submitted through any node are assigned, run and SUCCEEDED, every key lands in
    Redis, and ls/show/nodes report it in human and JSON form."""
    cluster = make_task_cluster(3).start_all()
    cluster.wait_for_leader()
    target = f"redis://{redis_target.address}"
    for number in range(12):
        status, out = warmctl(cluster, 1 + number % 3, capsys, "tasks", "submit", "--target",
                              target, "--prefix", f"t{number}:", "--count", "50",
                              "--id", f"task-{number}")
        assert status == 0 and out.strip() == f"submitted task-{number}"
    status, _ = warmctl(cluster, 2, capsys, "tasks", "submit", "--target", target,
                        "--key", "single-a", "--key", "single-b", "--id", "task-keys")
    assert status == 0
    wait_all_terminal(cluster, 13, timeout_s=30)
    status, out = warmctl(cluster, 3, capsys, "tasks", "ls", "--json")
    listing = json.loads(out)
    assert listing["counts"]["SUCCEEDED"] == 13 and listing["total"] == 13
    assert {task["checkpoint"] for task in listing["tasks"] if task["task_id"] != "task-keys"} == {50}
    client = redis.Redis(port=redis_target.port)
    assert client.dbsize() == 12 * 50 + 2
    assert client.get("t7:49") == b"task-7" and client.get("single-b") == b"task-keys"
    status, out = warmctl(cluster, 1, capsys, "tasks", "show", "task-3")
    assert status == 0 and "state: SUCCEEDED" in out and "checkpoint: 50" in out
    status, out = warmctl(cluster, 1, capsys, "nodes", "--json")
    nodes = json.loads(out)["nodes"]
    assert [node["node_id"] for node in nodes] == [1, 2, 3]
    held = ExecutorOptions(capacity=4).holds  # the slots and the tasks held ahead of them
    assert all(node["live"] and node["capacity"] == held for node in nodes)
    status, out = warmctl(cluster, 1, capsys, "tasks", "ls", "--state", "succeeded")
    assert "13 tasks (SUCCEEDED 13)" in out and "stale-fence reports refused: 0" in out


def test_a_drained_node_gets_no_new_tasks(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        capsys: pytest.CaptureFixture[str]) -> None:
    """After `warmctl drain 2` every new task finishes on nodes 1 and 3; --undo resumes it."""
    cluster = make_task_cluster(3).start_all()
    cluster.wait_for_leader()
    wait_executors(cluster, 3)
    status, out = warmctl(cluster, 3, capsys, "drain", "2")
    assert status == 0 and out.strip() == "node 2 draining"
    for number in range(15):
        cluster.call(1, "task-submit", task_id=f"d{number}", target=f"redis://{redis_target.address}",
                     key_prefix=f"d{number}:", key_count=20)
    wait_all_terminal(cluster, 15, timeout_s=30)
    tasks = cluster.call(1, "task-list")["tasks"]
    assert {task["owner"] for task in tasks} <= {1, 3}
    status, out = warmctl(cluster, 1, capsys, "nodes")
    assert "draining" in out.splitlines()[2]
    status, out = warmctl(cluster, 1, capsys, "drain", "2", "--undo", "--json")
    assert json.loads(out) == {"node_id": 2, "draining": False}


def test_failed_task_can_be_retried_and_cancelled_and_bad_input_is_refused(
        make_task_cluster: Callable[..., ProcessCluster], capsys: pytest.CaptureFixture[str]) -> None:
    """A task whose Redis refuses connections FAILS after its attempts; `retry` sends it back
    to PENDING, `cancel` ends it; unknown ids and malformed submissions get clear errors."""
    cluster = make_task_cluster(3).start_all()
    cluster.wait_for_leader()
    dead_target = f"redis://127.0.0.1:{free_port()}"
    cluster.call(2, "task-submit", task_id="doomed", target=dead_target, keys=["k"],
                 max_attempts=1)
    cluster.wait_until(lambda: cluster.call(1, "task-show", task_id="doomed")["task"]["state"]
                       == "FAILED", 20, "the task to fail")
    status, out = warmctl(cluster, 1, capsys, "tasks", "retry", "doomed")
    assert status == 0 and "PENDING" in out
    cluster.wait_until(lambda: cluster.call(1, "task-show", task_id="doomed")["task"]["attempt"]
                       == 2, 20, "the second attempt")
    status, out = warmctl(cluster, 3, capsys, "tasks", "cancel", "doomed")
    assert status == 0
    assert cluster.call(1, "task-show", task_id="doomed")["task"]["state"] == "CANCELLED"
    status, _ = warmctl(cluster, 1, capsys, "tasks", "cancel", "doomed")
    assert status == 1  # CANCELLED is final: the refusal is reported, nothing crashes
    status, _ = warmctl(cluster, 1, capsys, "tasks", "show", "no-such-task")
    assert status == 1
    status, _ = warmctl(cluster, 1, capsys, "tasks", "submit", "--target", "", "--key", "x")
    assert status == 64
    assert cluster.status(1) is not None


WARMCTL = "from warmd.cli.warmctl import main; raise SystemExit(main())"
LONG_PREFIX = "a-key-long-enough-that-5000-of-them-overflow-a-pipe:"  # ~280 KB listed


def test_operator_drill_down_commands(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`tasks submit --ttl --value` writes that value with that TTL; `tasks retry --failed`
    retries every FAILED task; `tasks show` prints local times with their age and no stale
    failure reason; `health` checks the quorum and every member; a reader that leaves early
    (`| head -1`) gets no traceback."""
    cluster = make_task_cluster(1).start_all()
    cluster.wait_for_leader()
    wait_executors(cluster, 1)
    status, _ = warmctl(cluster, 1, capsys, "tasks", "submit", "--target",
                        f"redis://{redis_target.address}", "--prefix", LONG_PREFIX, "--count", "5000",
                        "--ttl", "120", "--value", "hello", "--id", "valued")
    assert status == 0
    dead_target = f"redis://127.0.0.1:{free_port()}"
    for name in ("doomed-1", "doomed-2"):
        cluster.call(1, "task-submit", task_id=name, target=dead_target, keys=["k"],
                     max_attempts=1)
    cluster.wait_until(lambda: (counts := cluster.call(1, "task-list", limit=0)["counts"])
                       ["SUCCEEDED"] == 1 and counts["FAILED"] == 2, 30, "1 success, 2 failures")
    cache = redis.Redis(port=redis_target.port)
    last_key = f"{LONG_PREFIX}4999"
    assert cache.get(last_key) == b"hello" and 0 < cache.ttl(last_key) <= 120

    status, out = warmctl(cluster, 1, capsys, "tasks", "retry", "--failed")
    assert status == 0 and out.strip() == "2 FAILED tasks sent back to PENDING"
    cluster.wait_until(lambda: all(cluster.call(1, "task-show", task_id=name)["task"]["attempt"]
                                   == 2 for name in ("doomed-1", "doomed-2")), 20, "the retries")
    status, out = warmctl(cluster, 1, capsys, "tasks", "show", "doomed-1")
    assert status == 0 and "attempts (" in out and "#1 node 1 fence" in out
    assert "Connection refused" in out.split("#1 node 1 fence")[1]  # the first attempt's end
    status, out = warmctl(cluster, 1, capsys, "tasks", "show", "valued")
    assert status == 0 and "ttl_s: 120" in out and "reason" not in out
    assert "submitted: 20" in out and " ago)" in out  # local date and age, not epoch ms
    assert "result:\n  keys_ok: 5000\n  keys_failed: 0" in out and "{" not in out
    status, out = warmctl(cluster, 1, capsys, "tasks", "show", "valued", "--json")
    assert json.loads(out)["task"]["result"]["keys_ok"] == 5000
    status, out = warmctl(cluster, 1, capsys, "tasks", "ls", "--state", "succeeded", "--json")
    assert [task["task_id"] for task in json.loads(out)["tasks"]] == ["valued"]

    status, out = warmctl(cluster, 1, capsys, "health")
    assert status == 0 and "cluster is healthy" in out and "node 1" in out
    status, out = warmctl(cluster, 1, capsys, "health", "--json")
    assert json.loads(out)["quorum"]["healthy"] is True

    piped = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {shlex.quote(sys.executable)} -c {shlex.quote(WARMCTL)}"
                       f" --socket {cluster.nodes[1].socket_path} tasks show valued --keys"
                       " | head -1"], capture_output=True, text=True)
    assert piped.stdout.startswith("task_id: valued")
    assert "Traceback" not in piped.stderr and piped.returncode == 141, piped.stderr
