"""The state's derived indexes checked against a full scan of the task table (for tests).

`MachineState` keeps its indexes (warmd/statemachine/indexes.py and the plan indexes) up
to date as tasks move; this recomputes what each must hold from the tasks and plans
alone, the slow way, and names every difference. Property tests and the seeded
simulations call it after each step and after a restore.
"""

from __future__ import annotations

from typing import Any

from warmd.statemachine.lifecycle import TERMINAL_STATES, TaskState
from warmd.statemachine.state import ACTIVE_STATES, MachineState


def _scan(state: MachineState) -> dict[str, Any]:
    tasks = state.tasks.values()
    by_owner: dict[int, set[str]] = {}
    for task in tasks:
        if task.state in ACTIVE_STATES:
            by_owner.setdefault(task.owner, set()).add(task.task_id)
    plan_of = {task_id: plan.plan_id for plan in state.plans.values()
               for task_id in plan.task_ids if task_id in state.tasks}
    unfinished = {plan.plan_id: sum(1 for task_id in plan.task_ids if task_id in state.tasks
                                    and state.tasks[task_id].state not in TERMINAL_STATES)
                  for plan in state.plans.values() if not plan.outcome}
    return {
        "ready": sorted((-t.spec.priority, t.submitted_ms, t.task_id)
                        for t in tasks if t.state == TaskState.READY),
        "opening": sorted((max(t.spec.not_before_ms, t.not_before_ms), t.task_id)
                          for t in tasks if t.state == TaskState.PENDING),
        "gate_timeouts": sorted((t.waiting_since_ms + t.spec.gate_timeout_ms, t.task_id)
                                for t in tasks if t.state == TaskState.WAITING),
        "deadlines": sorted((t.spec.deadline_ms, t.task_id) for t in tasks
                            if t.state not in TERMINAL_STATES and t.spec.deadline_ms is not None),
        "retryable": sorted(t.task_id for t in tasks if t.state == TaskState.FAILED
                            and t.retryable and t.attempt < t.spec.max_attempts),
        "by_owner": by_owner,
        "plan_of": plan_of,
        "unfinished": unfinished,
        "plan_keys": {plan.plan_id: sum(len(state.tasks[task_id].spec.keys)
                                        for task_id in plan.task_ids if task_id in state.tasks)
                      for plan in state.plans.values() if not plan.outcome},
        "finished_plans": sorted(plan_id for plan_id, count in unfinished.items()
                                 if not count and state.plans[plan_id].task_ids),
    }


def _held(state: MachineState) -> dict[str, Any]:
    index = state.index
    return {
        "ready": [(*key, task_id) for key, task_id in index.ready.items()],
        "opening": index.opening.items(),
        "gate_timeouts": index.gate_timeouts.items(),
        "deadlines": index.deadlines.items(),
        "retryable": sorted(index.retryable),
        "by_owner": {owner: set(owned) for owner, owned in index.by_owner.items()},
        "plan_of": dict(state.plan_of),
        "unfinished": dict(state.unfinished),
        "plan_keys": dict(state.plan_keys),
        "finished_plans": sorted(state.finished_plans),
    }


def index_problems(state: MachineState) -> list[str]:
    """Every index that differs from the full scan, with both values (empty: all true)."""
    expected, held = _scan(state), _held(state)
    return [f"{name}: index {held[name]!r} != scan {expected[name]!r}"
            for name in expected if held[name] != expected[name]]
