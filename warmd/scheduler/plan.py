"""One scheduling pass: (replicated state, leader's clock, policy, seeded rng) -> commands.

The runtime runs it on the leader only, and proposes what it returns in order. It keeps
no state between passes, so a new leader continues from the replicated state alone; a
pass repeated before the last one's commands commit only proposes commands that the
state machine's guards refuse.
"""

from __future__ import annotations

import heapq
import random

from warmd.scheduler.assignment import assignment_order, assignments
from warmd.scheduler.config import SchedulerConfig
from warmd.scheduler.expiry import expirations
from warmd.scheduler.liveness import Silence, dead_nodes, releases, stamped_silence
from warmd.scheduler.readiness import admissions
from warmd.scheduler.retry import retries
from warmd.statemachine.commands import BatchedCommand, MarkReady
from warmd.statemachine.state import MachineState


def decide(
    state: MachineState, now_ms: int, config: SchedulerConfig, rng: random.Random,
    silence: Silence | None = None,
) -> list[BatchedCommand]:
    """Everything the leader should propose now, in the order it must be applied.

    Expiry first (an expired task gets nothing else), then dead nodes and the release of
    their tasks, then retries and admissions, then assignment of READY tasks together
    with the ones just released or admitted, so a lost or new task is placed in the same
    pass. `silence` is how long the leader has not heard from each node by its own clock
    (default: derived from the nodes' stamps, for simulations that run on one clock).
    Every step reads the state's indexes (warmd/statemachine/indexes.py), so a pass costs
    the tasks that are due, placed or changed, not the whole task table.
    """
    if silence is None:
        silence = stamped_silence(state, now_ms)
    expired = expirations(state, now_ms)
    finished = frozenset(command.task_id for command in expired)
    dying = dead_nodes(state, now_ms, silence)
    dying_ids = frozenset(command.node_id for command in dying)
    released = releases(state, now_ms, dying_ids, skip=finished)
    released_ids = frozenset(command.task_id for command in released)
    admitted = admissions(state, now_ms, skip=finished, limit=config.admissions_per_pass_max)
    becoming_ready = sorted(
        (state.tasks[task_id] for task_id in (
            *released_ids,
            *(command.task_id for command in admitted if isinstance(command, MarkReady)))),
        key=assignment_order)
    ready = (state.tasks[task_id] for task_id in state.index.ready if task_id not in finished)
    candidates = heapq.merge(ready, becoming_ready, key=assignment_order)
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
    Each kind of timer is the first of its index: O(nodes), whatever the number of tasks.
    """
    times: list[int] = [now_ms + node.lease_ms - silence.get(node.node_id, 0) + 1
                        for node in state.nodes.values() if node.alive]
    index = state.index
    for first in (index.deadlines.first_key(), index.opening.first_key(),
                  index.gate_timeouts.first_key()):
        if first is not None:
            times.append(first)
    return min(times, default=None)
