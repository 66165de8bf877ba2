"""Dead nodes, expiry, retries with backoff, and admission through readiness gates."""

from __future__ import annotations

import random

import pytest

from warmd.errors import ConfigError
from warmd.scheduler import SchedulerConfig, decide
from warmd.scheduler.backoff import retry_delay_ms
from warmd.statemachine.commands import (
    Assign,
    DeclareDead,
    Expire,
    Fail,
    Heartbeat,
    MarkReady,
    MarkWaiting,
    RegisterNode,
    Release,
    RemoveNode,
    ReportProgress,
    Retry,
    Skip,
    Start,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.state import Applied

LEASE_MS = 1_000
NO_JITTER = SchedulerConfig(backoff_base_ms=100, backoff_cap_ms=1_000, backoff_jitter_ratio=0.0)


def _ledger(*node_ids: int, capacity: int = 4) -> Ledger:
    ledger = Ledger()
    for node_id in node_ids:
        ledger.append(RegisterNode(node_id=node_id, capacity=capacity, lease_ms=LEASE_MS, now_ms=0))
    return ledger


def _submit(ledger: Ledger, task_id: str, keys: int = 1, **spec: object) -> None:
    task_spec = TaskSpec(keys=tuple(f"{task_id}:{n}" for n in range(keys)), target="redis", **spec)  # type: ignore[arg-type]
    assert isinstance(ledger.append(SubmitTask(task_id=task_id, spec=task_spec, now_ms=0)), Applied)


def _pass(ledger: Ledger, now_ms: int, config: SchedulerConfig = NO_JITTER, seed: int = 7) -> list:
    """One scheduling pass, applied; returns the commands."""
    commands = decide(ledger.state, now_ms, config, random.Random(seed))
    ledger.append_all(commands)
    return commands


def _running_on_node_1(ledger: Ledger, task_id: str, keys: int = 10) -> int:
    _submit(ledger, task_id, keys=keys)
    ledger.append(MarkReady(task_id=task_id, now_ms=0))
    fence = ledger.append(Assign(task_id=task_id, node_id=1, now_ms=0)).value
    ledger.append(Start(task_id=task_id, node_id=1, fence=fence, now_ms=0))
    return fence


def test_dead_node_tasks_are_reassigned_with_a_higher_fence_in_one_pass() -> None:
    """A node silent past its lease is declared dead, its task released and reassigned, with
    a higher fence and its checkpoint kept, all in one pass."""
    ledger = _ledger(1, 2)
    old = _running_on_node_1(ledger, "t")
    ledger.append(ReportProgress(task_id="t", node_id=1, fence=old, keys_done=4, now_ms=10))
    ledger.append(Heartbeat(node_id=2, now_ms=LEASE_MS))
    assert _pass(ledger, LEASE_MS) == []  # exactly at the lease: still alive
    commands = _pass(ledger, LEASE_MS + 1)
    assert [type(command) for command in commands] == [DeclareDead, Release, Assign]
    task = ledger.state.tasks["t"]
    assert (task.state, task.owner, task.checkpoint) == (TaskState.ASSIGNED, 2, 4)
    assert task.fence > old
    assert not ledger.state.nodes[1].alive


def test_removed_node_tasks_are_released() -> None:
    """A task whose owner was removed from the registry goes back to READY and is reassigned."""
    ledger = _ledger(1, 2)
    _running_on_node_1(ledger, "t")
    ledger.append(RemoveNode(node_id=1, now_ms=5))
    commands = _pass(ledger, 10)
    assert [type(command) for command in commands] == [Release, Assign]
    assert ledger.state.tasks["t"].owner == 2


def test_lost_task_waits_when_no_node_can_take_it() -> None:
    """With no live node left, a lost task is released to READY and waits there."""
    ledger = _ledger(1)
    _running_on_node_1(ledger, "t")
    _pass(ledger, LEASE_MS + 5)
    assert ledger.state.tasks["t"].state == TaskState.READY
    ledger.append(Heartbeat(node_id=1, now_ms=LEASE_MS + 10))  # it comes back
    _pass(ledger, LEASE_MS + 20)
    assert ledger.state.tasks["t"].state == TaskState.ASSIGNED


def test_tasks_past_deadline_expire_in_every_unfinished_state() -> None:
    """PENDING, READY, RUNNING and FAILED tasks past their deadline are expired, nothing else."""
    ledger = _ledger(1)
    for task_id in ("pending", "ready", "failed", "later"):
        deadline = 5_000 if task_id == "later" else 500
        _submit(ledger, task_id, deadline_ms=deadline, not_before_ms=0 if task_id != "pending" else 400)
    ledger.append(MarkReady(task_id="ready", now_ms=0))
    ledger.append(MarkReady(task_id="failed", now_ms=0))
    fence = ledger.append(Assign(task_id="failed", node_id=1, now_ms=0)).value
    ledger.append(Fail(task_id="failed", node_id=1, fence=fence, now_ms=1, error="x"))
    ledger.append(Heartbeat(node_id=1, now_ms=500))
    commands = decide(ledger.state, 500, NO_JITTER, random.Random(1))
    expired = {command.task_id for command in commands if isinstance(command, Expire)}
    assert expired == {"pending", "ready", "failed"}
    assert not [command for command in commands if getattr(command, "task_id", "") in expired
                and not isinstance(command, Expire)]
    ledger.append_all(commands)
    assert ledger.state.tasks["failed"].state == TaskState.EXPIRED
    assert ledger.state.tasks["later"].state == TaskState.ASSIGNED


def test_backoff_grows_exponentially_and_caps() -> None:
    """Without jitter, delays double from the base and stop at the cap."""
    rng = random.Random(0)
    delays = [retry_delay_ms(n, NO_JITTER, rng) for n in range(1, 8)]
    assert delays == [100, 200, 400, 800, 1_000, 1_000, 1_000]
    assert retry_delay_ms(10_000, NO_JITTER, rng) == 1_000


def test_jitter_stays_within_its_ratio_and_below_the_cap() -> None:
    """With jitter 0.5, each delay lies in [half, full] of the unjittered delay and varies."""
    config = SchedulerConfig(backoff_base_ms=1_000, backoff_cap_ms=4_000, backoff_jitter_ratio=0.5)
    rng = random.Random(42)
    for retry_number, full in ((1, 1_000), (2, 2_000), (3, 4_000), (9, 4_000)):
        drawn = {retry_delay_ms(retry_number, config, rng) for _ in range(50)}
        assert min(drawn) >= full // 2 and max(drawn) <= full
        assert len(drawn) > 10
    with pytest.raises(ValueError, match="start at 1"):
        retry_delay_ms(0, config, rng)


def test_retries_use_backoff_and_stop_at_max_attempts() -> None:
    """A failed task is retried after a growing backoff until its attempts are used up."""
    ledger = _ledger(1)
    _submit(ledger, "t", max_attempts=3)
    now_ms, waits = 0, []
    for _ in range(3):
        _pass(ledger, now_ms)  # MarkReady + Assign
        task = ledger.state.tasks["t"]
        assert task.state == TaskState.ASSIGNED, task
        ledger.append(Fail(task_id="t", node_id=1, fence=task.fence, now_ms=now_ms, error="x"))
        retry = [c for c in _pass(ledger, now_ms) if isinstance(c, Retry)]
        if ledger.state.tasks["t"].attempt == 3 and not retry:
            break
        waits.append(retry[0].not_before_ms - now_ms)
        assert _pass(ledger, retry[0].not_before_ms - 1) == []  # still backing off
        now_ms = retry[0].not_before_ms
        ledger.append(Heartbeat(node_id=1, now_ms=now_ms))
    assert waits == [100, 200]
    assert ledger.state.tasks["t"].state == TaskState.FAILED


def test_non_retryable_failure_is_not_retried() -> None:
    """A failure marked not retryable stays FAILED."""
    ledger = _ledger(1)
    _submit(ledger, "t", max_attempts=5)
    _pass(ledger, 0)
    fence = ledger.state.tasks["t"].fence
    ledger.append(Fail(task_id="t", node_id=1, fence=fence, now_ms=1, error="bad", retryable=False))
    assert _pass(ledger, 2) == []


def test_admission_respects_window_and_gates() -> None:
    """A task is made ready only once its window opens; a gated one waits, then is skipped."""
    ledger = _ledger(1)
    _submit(ledger, "later", not_before_ms=300)
    _submit(ledger, "gated", gate="db-warm", gate_timeout_ms=200)
    first = _pass(ledger, 100)
    assert [type(command) for command in first] == [MarkWaiting]
    assert _pass(ledger, 299) == []
    assert {type(command) for command in _pass(ledger, 300)} == {Skip, MarkReady, Assign}
    assert ledger.state.tasks["gated"].state == TaskState.SKIPPED
    assert ledger.state.tasks["later"].state == TaskState.ASSIGNED


def test_config_is_validated() -> None:
    """Nonsense policy values raise ConfigError with the offending value."""
    with pytest.raises(ConfigError, match="backoff_base_ms <= backoff_cap_ms"):
        SchedulerConfig(backoff_base_ms=10, backoff_cap_ms=5)
    with pytest.raises(ConfigError, match="jitter"):
        SchedulerConfig(backoff_jitter_ratio=1.5)
    with pytest.raises(ConfigError, match="twice"):
        SchedulerConfig(rule_concurrency=(("a", 1), ("a", 2)))
    with pytest.raises(ConfigError, match="multiplier"):
        SchedulerConfig(backoff_multiplier=0.5)
