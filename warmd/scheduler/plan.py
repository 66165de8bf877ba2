"""One scheduling pass: (replicated state, leader's clock, policy, seeded rng) -> commands.

The runtime runs it on the leader only, and proposes what it returns in order. It keeps
no state between passes, so a new leader continues from the replicated state alone; a
pass repeated before the last one's commands commit only proposes commands that the
state machine's guards refuse.
"""

from __future__ import annotations

import random

from warmd.scheduler.assignment import assignments
from warmd.scheduler.config import SchedulerConfig
from warmd.scheduler.expiry import expirations
from warmd.scheduler.liveness import Silence, dead_nodes, releases, stamped_silence
from warmd.scheduler.readiness import admissions
from warmd.scheduler.retry import retries
from warmd.statemachine.commands import Command, MarkReady
from warmd.statemachine.lifecycle import TERMINAL_STATES, TaskState
from warmd.statemachine.state import MachineState


def decide(
    state: MachineState, now_ms: int, config: SchedulerConfig, rng: random.Random,
    silence: Silence | None = None,
) -> list[Command]:
    """Everything the leader should propose now, in the order it must be applied.

    Expiry first (an expired task gets nothing else), then dead nodes and the release of
    their tasks, then retries and admissions, then assignment of READY tasks together
    with the ones just released or admitted, so a lost or new task is placed in the same
    pass. `silence` is how long the leader has not heard from each node by its own clock
    (default: derived from the nodes' stamps, for simulations that run on one clock).
    """
    if silence is None:
        silence = stamped_silence(state, now_ms)
    expired = expirations(state, now_ms)
    finished = frozenset(command.task_id for command in expired)
    dying = dead_nodes(state, now_ms, silence)
    dying_ids = frozenset(command.node_id for command in dying)
    released = releases(state, now_ms, dying_ids, skip=finished)
    released_ids = frozenset(command.task_id for command in released)
    admitted = admissions(state, now_ms, skip=finished)
    becoming_ready = sorted(released_ids) + [
        command.task_id for command in admitted if isinstance(command, MarkReady)
    ]
    candidates = [
        task for task in state.in_state(TaskState.READY) if task.task_id not in finished
    ] + [state.tasks[task_id] for task_id in becoming_ready]
    return [
        *expired,
        *dying,
        *released,
        *retries(state, now_ms, config, rng, skip=finished),
        *admitted,
        *assignments(state, now_ms, config, candidates, released_ids, dying_ids, silence),
    ]


def next_due_ms(state: MachineState, now_ms: int, silence: Silence) -> int | None:
    """The earliest wall time at which `decide` may act although the state did not change:
    a node's lease running out, a task's deadline, a backoff or window opening, a gate
    timing out. None when only a change of the state can make it act.

    The leader's loop sleeps until then or until the state changes, instead of polling.
    """
    times: list[int] = [now_ms + node.lease_ms - silence.get(node.node_id, 0) + 1
                        for node in state.nodes.values() if node.alive]
    for task_state in TaskState:
        if task_state in TERMINAL_STATES:
            continue
        times.extend(task.spec.deadline_ms for task in state.in_state(task_state)
                     if task.spec.deadline_ms is not None)
    times.extend(max(task.spec.not_before_ms, task.not_before_ms)
                 for task in state.in_state(TaskState.PENDING))
    times.extend(task.waiting_since_ms + task.spec.gate_timeout_ms
                 for task in state.in_state(TaskState.WAITING))
    return min(times, default=None)
