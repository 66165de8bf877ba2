"""Placement: give READY tasks to live, non-draining nodes by free capacity, labels and rule limits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from warmd.scheduler.config import SchedulerConfig
from warmd.scheduler.liveness import Silence, is_live, stamped_silence
from warmd.statemachine.commands import Assign
from warmd.statemachine.state import ACTIVE_STATES, MachineState, NodeRecord, TaskRecord


def assignments(
    state: MachineState,
    now_ms: int,
    config: SchedulerConfig,
    candidates: Iterable[TaskRecord],
    leaving: frozenset[str] = frozenset(),
    unusable_nodes: frozenset[int] = frozenset(),
    silence: Silence | None = None,
) -> list[Assign]:
    """Assign `candidates` (READY now, or about to be), given in `assignment_order`:
    highest priority first, then oldest submission, then task id. Each goes to the eligible
    node with the most free slots (ties: lowest node id); the pass stops as soon as no
    node has a free slot, so a long READY queue costs only what is placed. `leaving` are active tasks released
    in this pass (they free their rule's slots); `unusable_nodes` are being declared dead;
    `silence` is the leader's view of liveness (default: from the nodes' stamps).
    """
    if silence is None:
        silence = stamped_silence(state, now_ms)
    free = _free_slots(state, silence, unusable_nodes)
    running_per_rule = _active_per_rule(state, leaving)
    commands: list[Assign] = []
    room = sum(max(0, slots) for slots in free.values())
    for task in candidates:
        if len(commands) >= config.assignments_per_pass_max or room <= 0:
            break
        if _past_deadline(task, now_ms) or not _rule_has_room(task, config, running_per_rule):
            continue
        node_id = _best_node(state.nodes, free, task)
        if node_id is None:
            continue
        free[node_id] -= 1
        room -= 1
        running_per_rule[task.spec.rule] += 1
        commands.append(Assign(task_id=task.task_id, node_id=node_id, now_ms=now_ms))
    return commands


def assignment_order(task: TaskRecord) -> tuple[int, int, str]:
    """The order READY tasks are placed in (the state's ready index keeps it too)."""
    return (-task.spec.priority, task.submitted_ms, task.task_id)


def _free_slots(state: MachineState, silence: Silence, unusable: frozenset[int]
                ) -> dict[int, int]:
    """Free slots of each node that may take work now: live, not draining, not dying."""
    return {
        node_id: node.capacity - state.load(node_id)
        for node_id, node in sorted(state.nodes.items())
        if is_live(node, silence) and not node.draining and node_id not in unusable
    }


def _active_per_rule(state: MachineState, leaving: frozenset[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for task_state in ACTIVE_STATES:
        for task in state.in_state(task_state):
            if task.task_id not in leaving:
                counts[task.spec.rule] += 1
    return counts


def _rule_has_room(task: TaskRecord, config: SchedulerConfig, running: Counter[str]) -> bool:
    limit = config.rule_limit(task.spec.rule)
    return limit is None or running[task.spec.rule] < limit


def _past_deadline(task: TaskRecord, now_ms: int) -> bool:
    return task.spec.deadline_ms is not None and now_ms >= task.spec.deadline_ms


def _best_node(nodes: dict[int, NodeRecord], free: dict[int, int], task: TaskRecord) -> int | None:
    eligible = [
        node_id for node_id, slots in free.items()
        if slots > 0 and nodes[node_id].carries(task.spec.required_labels)
        and task.may_run_on(node_id)
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda node_id: (-free[node_id], node_id))
