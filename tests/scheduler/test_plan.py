"""A scheduling pass is deterministic, stateless and safe to repeat."""

from __future__ import annotations

import random

from warmd.scheduler import SchedulerConfig, decide
from warmd.statemachine.commands import (
    Assign,
    Fail,
    MarkWaiting,
    RegisterNode,
    Retry,
    Start,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import Rejected

CONFIG = SchedulerConfig(backoff_base_ms=100, backoff_cap_ms=5_000, backoff_jitter_ratio=0.5)


def _busy_ledger() -> Ledger:
    """Nodes (one about to be declared dead), tasks ready, failed, gated and running."""
    ledger = Ledger()
    ledger.append(RegisterNode(node_id=1, capacity=2, lease_ms=100, now_ms=0))
    ledger.append(RegisterNode(node_id=2, capacity=3, lease_ms=10_000, now_ms=0))
    for n in range(8):
        gate = "g" if n == 7 else ""
        spec = TaskSpec(keys=(f"k{n}",), target="redis", priority=n % 3, gate=gate)
        ledger.append(SubmitTask(task_id=f"t{n}", spec=spec, now_ms=n))
    ledger.append_all(decide(ledger.state, 10, CONFIG, random.Random(0)))
    for task in list(ledger.state.tasks.values())[:4]:
        if task.fence:
            ledger.append(Start(task_id=task.task_id, node_id=task.owner, fence=task.fence, now_ms=20))
    for task_id in ("t0", "t1", "t2"):
        task = ledger.state.tasks[task_id]
        if task.fence:
            ledger.append(Fail(task_id=task_id, node_id=task.owner, fence=task.fence, now_ms=30,
                               error="x"))
    return ledger


def test_same_state_and_seed_give_the_same_commands() -> None:
    """Two passes over equal states with equal seeds propose identical commands."""
    one, two = _busy_ledger(), _busy_ledger()
    first = decide(one.state, 500, CONFIG, random.Random(11))
    second = decide(two.state, 500, CONFIG, random.Random(11))
    assert first == second
    assert any(isinstance(command, Retry) for command in first)


def _retry_times(commands: list) -> list[int]:
    return [command.not_before_ms for command in commands if isinstance(command, Retry)]


def test_jitter_comes_from_the_seed() -> None:
    """Different seeds draw different retry times; nothing else in the pass changes."""
    ledger = _busy_ledger()
    first = decide(ledger.state, 500, CONFIG, random.Random(1))
    second = decide(ledger.state, 500, CONFIG, random.Random(2))
    assert _retry_times(first) != _retry_times(second)
    assert [type(c) for c in first] == [type(c) for c in second]


def test_new_leader_decides_from_replicated_state_alone() -> None:
    """A replica restored from a snapshot (a new leader) proposes exactly what the old one would."""
    ledger = _busy_ledger()
    successor = StateMachine()
    successor.restore(ledger.machine.snapshot())
    assert decide(successor.state, 500, CONFIG, random.Random(3)) == decide(
        ledger.state, 500, CONFIG, random.Random(3)
    )


def test_repeating_a_pass_before_it_commits_is_harmless() -> None:
    """Proposing the same pass twice (a leader that re-ran before commit): every repeat is
    refused, except a WAITING re-check, and the second copy changes no task's state."""
    ledger = _busy_ledger()
    commands = decide(ledger.state, 500, CONFIG, random.Random(5))
    assert any(isinstance(command, Assign) for command in commands)
    ledger.append_all(commands)
    states = {task_id: task.state for task_id, task in ledger.state.tasks.items()}
    for command, result in zip(commands, ledger.append_all(commands), strict=True):
        assert isinstance(result, Rejected) or isinstance(command, MarkWaiting), command
    assert {task_id: task.state for task_id, task in ledger.state.tasks.items()} == states


def test_scheduler_never_mutates_the_state() -> None:
    """A pass reads the state only: the digest is unchanged after deciding."""
    ledger = _busy_ledger()
    before = ledger.machine.digest()
    decide(ledger.state, 500, CONFIG, random.Random(9))
    assert ledger.machine.digest() == before
