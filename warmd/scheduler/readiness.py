"""Admission: open a submitted task's window, route gated tasks to their gate, give up on gates."""

from __future__ import annotations

from warmd.statemachine.commands import MarkReady, MarkWaiting, Skip
from warmd.statemachine.state import MachineState


def admissions(
    state: MachineState, now_ms: int, skip: frozenset[str], limit: int | None = None
) -> list[MarkReady | MarkWaiting | Skip]:
    """Decide for PENDING and WAITING tasks (except those in `skip`).

    A PENDING task whose window is open and backoff over becomes READY when it has no
    readiness gate, WAITING when it has one (the runtime's gate checker then proposes
    MarkReady). A WAITING task past its gate timeout is SKIPPED. Both are read from the
    state's indexes (by opening and by give-up time), so only the tasks due are visited;
    at most `limit` PENDING tasks, those whose window opened first.
    """
    commands: list[MarkReady | MarkWaiting | Skip] = []
    for task_id in sorted(state.index.opening.up_to(now_ms, limit)):  # PENDING, open
        task = state.tasks[task_id]
        if task_id in skip:
            continue
        if task.spec.gate:
            reason = f"waiting for gate {task.spec.gate}"
            commands.append(MarkWaiting(task_id=task.task_id, now_ms=now_ms, reason=reason))
        else:
            commands.append(MarkReady(task_id=task.task_id, now_ms=now_ms))
    for task_id in sorted(state.index.gate_timeouts.up_to(now_ms)):  # WAITING, timed out
        task = state.tasks[task_id]
        waited_ms = now_ms - task.waiting_since_ms
        if task_id not in skip:
            reason = f"gate {task.spec.gate} still closed after {waited_ms} ms"
            if task.reason.startswith(f"gate {task.spec.gate} closed: "):  # the last evidence
                reason += task.reason.removeprefix(f"gate {task.spec.gate} closed")
            commands.append(Skip(task_id=task.task_id, now_ms=now_ms, reason=reason))
    return commands
