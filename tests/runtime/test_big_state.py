"""A big state never stalls the event loop: snapshots and digests are serialised in a forked
child, and a snapshot install yields to the loop between batches of records. Checked by
where the work runs and by whether other tasks get to run, not by timing."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from warmd.raft.types import ConfState, Snapshot, SnapshotMeta
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.forked import ForkedJobFailed, start_forked
from warmd.statemachine.commands import SubmitTask, TaskSpec
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.snapshot import DECODE_BATCH

TASKS = DECODE_BATCH * 10


def _machine(tasks: int = TASKS) -> StateMachine:
    machine = StateMachine()
    for number in range(tasks):
        spec = TaskSpec(keys=tuple(f"k{number}:{key}" for key in range(5)), target="redis://x:1")
        machine.apply(number + 1, SubmitTask(task_id=f"t{number}", spec=spec, now_ms=number))
    return machine


async def test_a_forked_job_runs_in_another_process_and_returns_its_bytes(
        tmp_path: Path) -> None:
    marker = tmp_path / "pid"

    def produce() -> bytes:
        marker.write_text(str(os.getpid()))
        return b"x" * 3_000_000

    data = await start_forked(produce).result()
    assert data == b"x" * 3_000_000
    assert int(marker.read_text()) != os.getpid()


async def test_a_failing_child_is_reported() -> None:
    def produce() -> bytes:
        raise RuntimeError("boom")

    try:
        await start_forked(produce).result()
    except ForkedJobFailed as error:
        assert "exited with 1" in str(error)
    else:
        raise AssertionError("a failed child must raise")


async def test_the_child_sees_the_state_as_of_the_fork() -> None:
    """Entries applied after the fork do not leak into the snapshot being written."""
    machine = _machine(50)
    job = start_forked(machine.snapshot)
    spec = TaskSpec(keys=("late",), target="redis://x:1")
    machine.apply(1_000, SubmitTask(task_id="late", spec=spec, now_ms=1))
    restored = StateMachine()
    restored.restore(await job.result())
    assert "late" not in restored.state.tasks
    assert len(restored.state.tasks) == 50


async def test_a_snapshot_install_lets_other_tasks_run_and_swaps_the_state_at_the_end() -> None:
    source = _machine()
    snapshot = Snapshot(SnapshotMeta(index=TASKS, term=1, conf_state=ConfState(voters=(1,))),
                        Applier(source, {}).snapshot_data())
    target = Applier(StateMachine(), {})
    seen_sizes: list[int] = []

    async def reader() -> None:
        while True:
            seen_sizes.append(len(target.machine.state.tasks))
            await asyncio.sleep(0)

    reading = asyncio.create_task(reader())
    await asyncio.sleep(0)
    await target.restore_in_steps(snapshot)
    reading.cancel()
    assert len(target.machine.state.tasks) == TASKS
    assert target.machine.digest() == source.digest()
    during = seen_sizes[1:]
    assert len(during) >= TASKS // DECODE_BATCH  # the loop ran between the batches...
    assert set(during) == {0}  # ...and never saw half a state
