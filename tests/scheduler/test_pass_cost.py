"""A scheduling pass costs what changed: it reads the indexes, not every task."""

from __future__ import annotations

import random
from collections.abc import Iterator

from warmd.scheduler import SchedulerConfig, decide
from warmd.scheduler.plan import next_due_ms
from warmd.statemachine.commands import Assign, MarkReady, RegisterNode, SubmitTask, TaskSpec
from warmd.statemachine.indexes import SortedTasks
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.lifecycle import TaskState

NOW_MS = 1_000


class CountingSorted(SortedTasks):
    """The READY index, counting how many ids a pass takes from it."""

    def __init__(self, source: SortedTasks) -> None:
        super().__init__()
        for key, task_id in source.items():
            self.add(task_id, key)
        self.taken = 0

    def __iter__(self) -> Iterator[str]:
        for task_id in super().__iter__():
            self.taken += 1
            yield task_id


def _ledger(tasks: int, capacity: int, not_before_ms: int = 0) -> Ledger:
    ledger = Ledger()
    ledger.append(RegisterNode(node_id=1, capacity=capacity, lease_ms=60_000, now_ms=NOW_MS))
    for number in range(tasks):
        spec = TaskSpec(keys=(f"k{number}",), target="redis", not_before_ms=not_before_ms)
        ledger.append(SubmitTask(task_id=f"t{number:05d}", spec=spec, now_ms=number))
    return ledger


def test_a_pass_over_a_long_ready_queue_takes_only_what_it_places() -> None:
    ledger = _ledger(10_000, capacity=4)
    for task in ledger.state.in_state(TaskState.PENDING):
        ledger.append(MarkReady(task_id=task.task_id, now_ms=NOW_MS))
    counting = CountingSorted(ledger.state.index.ready)
    ledger.state.index.ready = counting
    commands = decide(ledger.state, NOW_MS, SchedulerConfig(), random.Random(1))
    assert [command.task_id for command in commands] == [f"t{n:05d}" for n in range(4)]
    assert all(isinstance(command, Assign) for command in commands)
    assert counting.taken <= 5  # the four placed, and at most one to see the node is full
    for command in commands:
        ledger.append(command)
    counting.taken = 0
    assert decide(ledger.state, NOW_MS, SchedulerConfig(), random.Random(1)) == []
    assert counting.taken <= 1  # no free slot: the READY queue is not read (merge peeks one)


def test_admissions_are_bounded_per_pass_and_the_rest_are_due_at_once() -> None:
    ledger = _ledger(2_500, capacity=0)
    config = SchedulerConfig(admissions_per_pass_max=1_000)
    admitted = 0
    for _ in range(3):
        commands = decide(ledger.state, NOW_MS, config, random.Random(1))
        assert len(commands) <= 1_000
        for command in commands:
            ledger.append(command)
        admitted += len(commands)
        if ledger.state.in_state(TaskState.PENDING):
            assert next_due_ms(ledger.state, NOW_MS, {}) <= NOW_MS  # the next pass is due now
    assert admitted == 2_500 and len(ledger.state.in_state(TaskState.READY)) == 2_500


def test_next_due_reads_the_first_timer_of_each_index() -> None:
    ledger = _ledger(3, capacity=0, not_before_ms=NOW_MS + 500)
    assert next_due_ms(ledger.state, NOW_MS, {1: 0}) == NOW_MS + 500
