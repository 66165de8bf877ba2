"""Misfire policy: a task whose window closed is expired and recorded, never run late."""

from __future__ import annotations

from warmd.statemachine.commands import Expire
from warmd.statemachine.lifecycle import TERMINAL_STATES, TaskState
from warmd.statemachine.state import MachineState


def expirations(state: MachineState, now_ms: int) -> list[Expire]:
    """Expire every unfinished task (FAILED ones waiting for a retry too) past its deadline."""
    commands = []
    for task_state in TaskState:
        if task_state in TERMINAL_STATES:
            continue
        for task in state.in_state(task_state):
            deadline_ms = task.spec.deadline_ms
            if deadline_ms is not None and now_ms >= deadline_ms:
                commands.append(Expire(task_id=task.task_id, now_ms=now_ms))
    return commands
