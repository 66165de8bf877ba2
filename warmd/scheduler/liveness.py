"""Lost executors: declare silent nodes dead and take their tasks back for reassignment."""

from __future__ import annotations

from warmd.statemachine.commands import DeclareDead, Release
from warmd.statemachine.state import ACTIVE_STATES, MachineState


def dead_nodes(state: MachineState, now_ms: int) -> list[DeclareDead]:
    """Declare dead each node still alive in the state but silent for longer than its lease."""
    return [
        DeclareDead(node_id=node.node_id, now_ms=now_ms)
        for node_id, node in sorted(state.nodes.items())
        if node.alive and now_ms - node.last_heartbeat_ms > node.lease_ms
    ]


def releases(
    state: MachineState, now_ms: int, dying: frozenset[int], skip: frozenset[str]
) -> list[Release]:
    """Release every ASSIGNED or RUNNING task whose owner is dead, removed, or in `dying`
    (declared dead earlier in this same pass), except the tasks in `skip`.

    The Release carries the task's current fence, so a repeated release is refused.
    """
    commands = []
    for task_state in ACTIVE_STATES:
        for task in state.in_state(task_state):
            if task.task_id in skip:
                continue
            owner = state.nodes.get(task.owner)
            if owner is None or not owner.alive or owner.node_id in dying:
                reason = f"owner node {task.owner} lost"
                commands.append(
                    Release(task_id=task.task_id, fence=task.fence, now_ms=now_ms, reason=reason)
                )
    return commands
