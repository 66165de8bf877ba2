"""The chaos audit judges fences only from what it can see: a log that starts at a
snapshot takes each task's latest assignment from the snapshot's state."""

from __future__ import annotations

from chaos.audit import NodeLog, audit_logs
from warmd.raft.types import Entry
from warmd.statemachine.commands import (
    Assign,
    Command,
    Finish,
    MarkReady,
    RegisterNode,
    Start,
    SubmitTask,
    TaskSpec,
    encode_command,
)
from warmd.statemachine.machine import StateMachine

SPEC = TaskSpec(keys=("a",), target="redis://127.0.0.1:1")


def _before_snapshot() -> list[Command]:
    """Task t assigned to node 1 at index 4 (fence 4) and started: all of it compacted."""
    return [
        RegisterNode(node_id=1, capacity=1, lease_ms=1_000, now_ms=0),
        SubmitTask(task_id="t", spec=SPEC, now_ms=1), MarkReady(task_id="t", now_ms=2),
        Assign(task_id="t", node_id=1, now_ms=3), Start(task_id="t", node_id=1, fence=4, now_ms=4),
    ]


def _node_log(node_id: int, after: list[Command]) -> NodeLog:
    """A node whose snapshot covers `_before_snapshot()` and whose log holds `after`."""
    machine = StateMachine()
    before = _before_snapshot()
    for index, command in enumerate(before, start=1):
        machine.apply_entry(index, encode_command(command))
    entries = tuple(Entry(term=1, index=index, data=encode_command(command))
                    for index, command in enumerate(after, start=len(before) + 1))
    return NodeLog(node_id, len(before), machine.snapshot(), entries)


def test_a_finish_whose_assign_is_in_the_snapshot_is_not_a_stale_fence() -> None:
    """The soak's false `stale_fence_accepted`: Finish under fence 4, Assign compacted."""
    after: list[Command] = [Finish(task_id="t", node_id=1, fence=4, now_ms=5)]
    report, machine = audit_logs([_node_log(1, after), _node_log(2, after)], ["t"])
    assert report.stale_fence_accepted == 0, report.violations
    assert report.violations == [] and report.terminal == 1
    assert machine.state.tasks["t"].fence == 4


def test_a_stale_fence_is_still_refused_and_counted_after_a_snapshot() -> None:
    """A report under a fence the snapshot does not hold is refused by the machine, and
    the audit counts the refusal; the seeded fence does not hide a real mismatch."""
    after: list[Command] = [Finish(task_id="t", node_id=1, fence=3, now_ms=5)]
    report, machine = audit_logs([_node_log(1, after)], [])
    assert report.stale_fence_accepted == 0 and report.stale_fence_refused == 1
    assert machine.state.tasks["t"].state.value == "RUNNING"
