"""Misfire policy: a task whose window closed is expired and recorded, never run late."""

from __future__ import annotations

from warmd.statemachine.commands import Expire
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.state import MachineState


def expirations(state: MachineState, now_ms: int) -> list[Expire]:
    """Expire every unfinished task (FAILED ones waiting for a retry too) past its deadline,
    in state order then id; the deadline index makes this cost the expired tasks only."""
    due = state.index.deadlines.up_to(now_ms)
    due.sort(key=lambda task_id: (_STATE_ORDER[state.tasks[task_id].state], task_id))
    return [Expire(task_id=task_id, now_ms=now_ms) for task_id in due]


_STATE_ORDER = {task_state: number for number, task_state in enumerate(TaskState)}
