"""A follower whose wall clock jumps an hour (libfaketime) while tasks run: only the leader's
clock judges deadlines and liveness. Submissions through it are taken, its tasks run and
none expires wrongly, and once it is SIGKILLed it is declared dead within its lease, though
its last heartbeat was stamped an hour ahead."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from chaos.ops import wait_executors
from warmd.admin.client import AdminClientError
from warmd.admin.protocol import ErrorCode
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import ServerProcess

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
TASKS = 8


def _skewed(offset_file: Path) -> dict[str, str]:
    """libfaketime reading its offset from a file (re-read every second), monotonic time
    untouched (so asyncio's timers stay sane and only the wall clock jumps)."""
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME_TIMESTAMP_FILE": str(offset_file),
            "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def _submit_through(cluster: ProcessCluster, node_id: int, **task: object) -> None:
    """Submit on `node_id`, retrying only when Raft could not take it in time (a loaded
    machine); a refusal fails the test."""
    for _ in range(5):
        try:
            cluster.call(node_id, "task-submit", **task)
            return
        except AdminClientError as error:
            if "already exists" in error.message:
                return  # an earlier, timed-out attempt was committed
            if error.code not in (ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE):
                raise
    raise AssertionError(f"node {node_id} never took {task['task_id']}")


def _states(cluster: ProcessCluster, node_id: int) -> dict[str, str]:
    tasks = cluster.call(node_id, "task-list", limit=1000)["tasks"]
    return {task["task_id"]: task["state"] for task in tasks}


@pytest.mark.skipif(not LIBFAKETIME.exists() or shutil.which("faketime") is None,
                    reason="libfaketime missing (make system-deps installs faketime)")
@pytest.mark.timeout(120)
def test_a_follower_an_hour_off_neither_refuses_nor_expires_nor_outlives_its_lease(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    offset.write_text("+1h\n")
    cluster = make_task_cluster(3, keys_per_second=200.0)
    cluster.start(1)
    cluster.start(2)
    leader = cluster.wait_for_leader(among=[1, 2])
    cluster.start(3, environment=_skewed(offset))
    wait_executors(cluster, 3)
    target = f"redis://{redis_target.address}"
    deadline_ms = int(time.time() * 1000) + 60_000  # a minute ahead by the real clock
    for number in range(TASKS):
        if number == TASKS // 2:
            offset.write_text("-1h\n")  # the follower's clock jumps two hours back mid-run
            time.sleep(1.5)
        _submit_through(cluster, 3, task_id=f"skew-{number}", target=target,
                        keys=[f"skew-{number}:{key}" for key in range(40)],
                        deadline_ms=deadline_ms)
    settled = cluster.wait_until(
        lambda: (states := _states(cluster, leader)) and len(states) == TASKS and all(
            state in ("SUCCEEDED", "EXPIRED", "FAILED") for state in states.values())
        and states, 60, "every task to end")
    assert set(settled.values()) == {"SUCCEEDED"}, settled
    offset.write_text("+1h\n")
    time.sleep(1.0)  # its last heartbeats are stamped an hour ahead
    cluster.kill(3)
    killed_s = time.monotonic()
    lease_s = cluster.call(leader, "nodes")["nodes"][2]["lease_ms"] / 1000
    cluster.wait_until(
        lambda: not next(node for node in cluster.call(leader, "nodes")["nodes"]
                         if node["node_id"] == 3)["alive"], lease_s + 5, "node 3 declared dead")
    assert time.monotonic() - killed_s <= lease_s + 3.0
