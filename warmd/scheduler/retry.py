"""Retries: send failed tasks back to PENDING with a backoff the leader draws and stamps."""

from __future__ import annotations

import random

from warmd.scheduler.backoff import retry_delay_ms
from warmd.scheduler.config import SchedulerConfig
from warmd.statemachine.commands import Retry
from warmd.statemachine.state import MachineState


def retries(
    state: MachineState, now_ms: int, config: SchedulerConfig, rng: random.Random,
    skip: frozenset[str],
) -> list[Retry]:
    """Retry each FAILED task whose failure was retryable and that has attempts left.

    Tasks are visited in id order, so the same state and rng seed draw the same jitter.
    """
    commands = []
    for task_id in sorted(state.index.retryable):  # FAILED, retryable, attempts left
        if task_id in skip:
            continue
        task = state.tasks[task_id]
        delay_ms = retry_delay_ms(task.attempt, config, rng)
        commands.append(
            Retry(task_id=task.task_id, not_before_ms=now_ms + delay_ms, now_ms=now_ms)
        )
    return commands
