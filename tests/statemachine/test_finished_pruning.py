"""Finished tasks are kept up to a bound, the oldest dropped first, the same on every replica."""

from __future__ import annotations

import pytest

from warmd.statemachine import machine as machine_module
from warmd.statemachine.commands import Cancel, SubmitTask, TaskSpec
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.machine import StateMachine

SPEC = TaskSpec(keys=("k",), target="redis://127.0.0.1:1")


@pytest.fixture(autouse=True)
def small_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine_module, "FINISHED_KEPT", 20)
    monkeypatch.setattr(machine_module, "PRUNE_BATCH", 5)


def feed(machines: list[StateMachine], start: int, count: int, index: int) -> int:
    """Submit and cancel `count` tasks on every machine; returns the next log index."""
    for number in range(start, start + count):
        task_id = f"t{number:04d}"
        for command in (SubmitTask(task_id=task_id, spec=SPEC, now_ms=number * 10),
                        Cancel(task_id=task_id, reason="done", now_ms=number * 10 + 5)):
            index += 1
            for machine in machines:
                machine.apply(index, command)
    return index


def test_the_oldest_finished_tasks_go_and_unfinished_ones_stay() -> None:
    machine = StateMachine()
    machine.apply(1, SubmitTask(task_id="open", spec=SPEC, now_ms=0))
    feed([machine], 0, 25, index=1)
    finished = machine.state.by_state[TaskState.CANCELLED]
    assert len(finished) == 20  # the 25th finished (a multiple of 5 past 20): back to 20
    assert "t0000" not in machine.state.tasks and "t0004" not in machine.state.tasks
    assert "t0005" in machine.state.tasks and "t0024" in machine.state.tasks
    assert machine.state.tasks["open"].state is TaskState.PENDING
    assert machine.state.finished_pruned == 5  # counted, so an audit can tell pruned from lost


def test_a_replica_restored_from_a_snapshot_prunes_the_same_tasks() -> None:
    live, other = StateMachine(), StateMachine()
    index = feed([live, other], 0, 23, 0)
    restored = StateMachine()
    restored.restore(other.snapshot())
    feed([live, restored], 23, 40, index)
    assert restored.digest() == live.digest()
    assert sorted(restored.state.tasks) == sorted(live.state.tasks)
