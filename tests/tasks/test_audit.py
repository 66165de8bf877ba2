"""The chaos audit on hand-made logs: clean histories pass, and deliberately broken state
machines (accepting stale fences, releasing live owners) or forked logs are caught."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from chaos import audit
from chaos.audit import NodeLog, audit_logs
from warmd.config import ExecutorConfig
from warmd.errors import ConfigError
from warmd.raft.types import Entry
from warmd.runtime.execute.executor import ExecutorOptions
from warmd.statemachine.commands import (
    FENCED_COMMANDS,
    Assign,
    Batch,
    Command,
    Finish,
    Heartbeat,
    MarkReady,
    RegisterNode,
    Release,
    ReportProgress,
    Start,
    SubmitTask,
    TaskSpec,
    encode_command,
)
from warmd.statemachine.machine import StateMachine

LEASE_MS = 1_000


def _log(node_id: int, commands: list[Command]) -> NodeLog:
    entries = tuple(Entry(term=1, index=number, data=encode_command(command))
                    for number, command in enumerate(commands, start=1))
    return NodeLog(node_id, 0, None, entries)


def _history() -> list[Command]:
    """Task t runs on node 1 (assigned at index 5), is released while node 1 is still in its lease,
    and goes to node 2 (assigned at index 10); node 1's late report uses fence 5."""
    spec = TaskSpec(keys=("a", "b"), target="redis://127.0.0.1:1")
    return [
        RegisterNode(node_id=1, capacity=1, lease_ms=LEASE_MS, now_ms=0),
        RegisterNode(node_id=2, capacity=1, lease_ms=LEASE_MS, now_ms=0),
        SubmitTask(task_id="t", spec=spec, now_ms=10),
        MarkReady(task_id="t", now_ms=20),
        Assign(task_id="t", node_id=1, now_ms=30),  # index 5: fence 5
        Start(task_id="t", node_id=1, fence=5, now_ms=40),
        Heartbeat(node_id=2, now_ms=1_400),
        Heartbeat(node_id=1, now_ms=1_000),  # node 1's lease now runs until 2_000
        Release(task_id="t", fence=5, now_ms=1_500, reason="owner lost"),  # refused: 1 alive
        Assign(task_id="t", node_id=2, now_ms=1_600),  # index 10; refused unless released
    ]


def test_a_clean_history_passes_and_an_unfinished_task_counts_as_lost() -> None:
    """A task that ran and finished once passes; an acknowledged task not terminal is lost."""
    spec = TaskSpec(keys=("a",), target="redis://127.0.0.1:1")
    commands: list[Command] = [
        RegisterNode(node_id=1, capacity=1, lease_ms=LEASE_MS, now_ms=0),
        SubmitTask(task_id="t", spec=spec, now_ms=1), MarkReady(task_id="t", now_ms=2),
        Assign(task_id="t", node_id=1, now_ms=3), Start(task_id="t", node_id=1, fence=4, now_ms=4),
        ReportProgress(task_id="t", node_id=1, fence=4, keys_done=1, now_ms=5),
        Finish(task_id="t", node_id=1, fence=4, now_ms=6),
        Finish(task_id="t", node_id=1, fence=4, now_ms=7),  # a repeat: refused, not a duplicate
        SubmitTask(task_id="u", spec=spec, now_ms=8),
    ]
    report, _ = audit_logs([_log(1, commands), _log(2, commands)], ["t"])
    assert report.violations == [] and report.terminal == 1 and report.duplicates == 0
    report, _ = audit_logs([_log(1, commands)], ["t", "u"])
    assert report.lost == 1 and "u is PENDING" in report.violations[0]


class _AcceptsStaleFences(StateMachine):
    """A broken machine: it takes any report as the current owner's, under the current fence."""

    def _apply_task(self, index: int, command: Any) -> Any:
        task = self.state.tasks.get(command.task_id)
        if task is not None and isinstance(command, FENCED_COMMANDS):
            command = dataclasses.replace(command, fence=task.fence, node_id=task.owner)
        return super()._apply_task(index, command)


class _ReleasesLiveOwners(StateMachine):
    """A broken machine: it declares a task's owner dead whenever a Release arrives."""

    def _apply_task(self, index: int, command: Any) -> Any:
        task = self.state.tasks.get(command.task_id)
        if isinstance(command, Release) and task is not None and task.owner in self.state.nodes:
            self.state.nodes[task.owner].alive = False
        return super()._apply_task(index, command)


def test_the_audit_catches_an_accepted_stale_fence_and_a_release_inside_a_lease(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With the fence check broken, node 1's late Start under fence 5 after the reassignment is
    flagged; with the liveness guard broken, the release inside node 1's lease is flagged."""
    late = Start(task_id="t", node_id=1, fence=5, now_ms=1_700)
    monkeypatch.setattr(audit, "StateMachine", _AcceptsStaleFences)
    report, _ = audit_logs([_log(1, [*_history(), late])], [])
    assert report.stale_fence_accepted == 0  # the release was refused: fence 5 is still current
    monkeypatch.setattr(audit, "StateMachine", _ReleasesLiveOwners)
    report, _ = audit_logs([_log(1, [*_history(), late])], [])
    assert report.lease_overlaps == 1 and report.reassignments == 1

    class _Both(_ReleasesLiveOwners, _AcceptsStaleFences):
        """Both bugs at once."""
    monkeypatch.setattr(audit, "StateMachine", _Both)
    report, _ = audit_logs([_log(1, [*_history(), late])], [])
    assert report.stale_fence_accepted == 1
    assert any("accepted under fence 5, latest assignment 10" in v for v in report.violations)


def test_commands_inside_batches_are_audited_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same history with the release and reassignment in one Batch entry and the late
    Start batched with a heartbeat: a clean machine passes, the broken ones are caught."""
    history = _history()
    late = Start(task_id="t", node_id=1, fence=5, now_ms=1_700)
    batched: list[Command] = [*history[:8], Batch(commands=(history[8], history[9])),
                              Batch(commands=(Heartbeat(node_id=2, now_ms=1_650), late))]
    report, _ = audit_logs([_log(1, batched)], [])
    assert report.violations == []

    class _Both(_ReleasesLiveOwners, _AcceptsStaleFences):
        """Both bugs at once."""
    monkeypatch.setattr(audit, "StateMachine", _Both)
    report, _ = audit_logs([_log(1, batched)], [])
    assert report.lease_overlaps == 1 and report.reassignments == 1
    assert report.stale_fence_accepted == 1
    assert any("accepted under fence 5, latest assignment 9" in v for v in report.violations)


def test_a_task_finished_inside_a_batch_counts_once() -> None:
    """Finishes batched with other reports reach a terminal state once each; a repeat in a
    later batch is refused, not a duplicate."""
    spec = TaskSpec(keys=("a",), target="redis://127.0.0.1:1")
    commands: list[Command] = [
        RegisterNode(node_id=1, capacity=2, lease_ms=LEASE_MS, now_ms=0),
        SubmitTask(task_id="t", spec=spec, now_ms=1), SubmitTask(task_id="u", spec=spec, now_ms=1),
        Batch(commands=(MarkReady(task_id="t", now_ms=2), MarkReady(task_id="u", now_ms=2),
                        Assign(task_id="t", node_id=1, now_ms=2),
                        Assign(task_id="u", node_id=1, now_ms=2))),  # index 4: both fences
        Batch(commands=(Start(task_id="t", node_id=1, fence=4, now_ms=3),
                        Start(task_id="u", node_id=1, fence=4, now_ms=3))),
        Batch(commands=(Finish(task_id="t", node_id=1, fence=4, now_ms=4),
                        Finish(task_id="u", node_id=1, fence=4, now_ms=4))),
        Batch(commands=(Finish(task_id="t", node_id=1, fence=4, now_ms=5),
                        Heartbeat(node_id=1, now_ms=5))),
    ]
    report, _ = audit_logs([_log(1, commands), _log(2, commands)], ["t", "u"])
    assert report.violations == [] and report.terminal == 2 and report.duplicates == 0


def test_forked_logs_are_reported_as_divergent() -> None:
    """Two nodes whose logs hold different commands at the same index do not agree."""
    history = _history()
    forked = [*history[:6], Heartbeat(node_id=1, now_ms=999), *history[7:]]
    report, _ = audit_logs([_log(1, history), _log(2, forked)], [])
    assert report.divergent == 1 and "node 2 differs" in report.violations[0]


def test_executor_options_come_from_the_config_and_bad_values_are_refused() -> None:
    """The [executor] section sets the options (disabled: no executor); a heartbeat beyond
    the lease fails."""
    options = ExecutorOptions.from_config(ExecutorConfig(lease_ms=2000, capacity=7))
    assert options is not None and (options.lease_ms, options.capacity) == (2000, 7)
    assert ExecutorOptions.from_config(ExecutorConfig(enabled=False)) is None
    assert ExecutorOptions.from_config(ExecutorConfig()) == ExecutorOptions()
    with pytest.raises(ConfigError, match="shorter than the lease"):
        ExecutorOptions.from_config(ExecutorConfig(heartbeat_interval_ms=5000))
