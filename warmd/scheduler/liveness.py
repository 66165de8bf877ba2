"""Lost executors: declare silent nodes dead and take their tasks back for reassignment.

Silence is measured by the leader's own clock (`Silence`: how long since the leader saw each
node's heartbeat count change), never by the times nodes stamp on their heartbeats: a node
whose clock runs an hour ahead must not look alive for an hour after it died.
"""

from __future__ import annotations

from collections.abc import Mapping

from warmd.statemachine.commands import DeclareDead, Release
from warmd.statemachine.state import ACTIVE_STATES, MachineState, NodeRecord

Silence = Mapping[int, int]  # node id -> ms since the leader last saw it heartbeat


def stamped_silence(state: MachineState, now_ms: int) -> dict[int, int]:
    """Silence from the nodes' own stamps: only for simulations where every node and the
    leader share one clock (the daemon's leader passes what it observed itself)."""
    return {node_id: now_ms - node.last_heartbeat_ms for node_id, node in state.nodes.items()}


def is_live(node: NodeRecord, silence: Silence) -> bool:
    """Alive in the state and heard from within its lease (unseen yet: just heard)."""
    return node.alive and silence.get(node.node_id, 0) <= node.lease_ms


def dead_nodes(state: MachineState, now_ms: int, silence: Silence) -> list[DeclareDead]:
    """Declare dead each node still alive in the state but silent for longer than its
    lease, naming the heartbeat count judged on (refused if a heartbeat lands first)."""
    return [
        DeclareDead(node_id=node.node_id, now_ms=now_ms, heartbeats=node.heartbeats)
        for node_id, node in sorted(state.nodes.items())
        if node.alive and not is_live(node, silence)
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
