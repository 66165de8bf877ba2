"""The Raft index and term of each step of a task, its gate answers and an operator's re-run
on (or away from) a node: recorded by apply, kept in snapshots, honoured by Assign."""

from __future__ import annotations

from warmd.statemachine.commands import (
    Assign,
    Fail,
    Finish,
    MarkReady,
    MarkWaiting,
    RegisterNode,
    Rerun,
    Start,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import Applied, Rejected, TaskNote

GATED = TaskSpec(keys=("k1",), target="redis", gate="files")


def _machine() -> StateMachine:
    machine = StateMachine()
    for node_id in (1, 2):
        machine.apply(node_id, RegisterNode(node_id=node_id, capacity=2, lease_ms=60_000, now_ms=1),
                      term=1)
    return machine


def test_each_step_keeps_its_index_and_the_state_tells_its_term() -> None:
    """Submitted, assigned (the fence), started and ended each carry their index; the
    terms applied are remembered where they change, so every step's term is known."""
    machine = _machine()
    machine.apply(3, SubmitTask(task_id="t", spec=GATED, now_ms=2), term=1)
    machine.apply(4, MarkReady(task_id="t", now_ms=3, gate_detail="file: /ok exists"), term=2)
    machine.apply(5, Assign(task_id="t", node_id=1, now_ms=4), term=2)
    machine.apply(6, Start(task_id="t", node_id=1, fence=5, now_ms=5), term=3)
    machine.apply(7, Finish(task_id="t", node_id=1, fence=5, now_ms=6), term=3)
    task = machine.state.tasks["t"]
    attempt = task.attempts[-1]
    assert (task.submitted_index, attempt.fence, attempt.started_index, attempt.ended_index) == (
        3, 5, 6, 7)
    assert [machine.state.term_at(index) for index in (3, 4, 5, 6, 7)] == [1, 2, 2, 3, 3]
    assert machine.state.terms == [(1, 1), (4, 2), (6, 3)]
    assert machine.state.term_at(0) is None
    assert task.notes == (TaskNote(4, 3, "gate", "files open: file: /ok exists"),)
    copy = StateMachine()
    copy.restore(machine.snapshot())
    assert copy.state.tasks["t"] == task and copy.state.terms == machine.state.terms
    assert copy.digest() == machine.digest()


def test_gate_answers_are_noted_only_for_gated_tasks() -> None:
    """A gated task notes each MarkWaiting reason and its opening; an ungated one nothing."""
    machine = _machine()
    machine.apply(3, SubmitTask(task_id="g", spec=GATED, now_ms=2))
    machine.apply(4, SubmitTask(task_id="u", spec=TaskSpec(keys=("k",), target="redis"), now_ms=2))
    machine.apply(5, MarkWaiting(task_id="g", now_ms=3, reason="gate files closed: file: /ok missing"))
    machine.apply(6, MarkReady(task_id="g", now_ms=4))
    machine.apply(7, MarkReady(task_id="u", now_ms=4))
    assert [note.detail for note in machine.state.tasks["g"].notes] == [
        "gate files closed: file: /ok missing", "files open: passed"]
    assert machine.state.tasks["u"].notes == ()


def _failed_on_node_1(machine: StateMachine) -> None:
    machine.apply(3, SubmitTask(task_id="t", spec=TaskSpec(keys=("k",), target="r"), now_ms=2))
    machine.apply(4, MarkReady(task_id="t", now_ms=3))
    machine.apply(5, Assign(task_id="t", node_id=1, now_ms=4))
    machine.apply(6, Fail(task_id="t", node_id=1, fence=5, now_ms=5, error="boom"))


def test_a_rerun_away_from_a_node_is_a_new_attempt_that_node_may_not_take() -> None:
    """Rerun sends a FAILED task to PENDING as attempt 2, noted with its actor; Assign to
    the avoided node is refused, to the other allowed; a Rerun of a running task is refused."""
    machine = _machine()
    _failed_on_node_1(machine)
    result = machine.apply(7, Rerun(task_id="t", node_id=1, away=True, now_ms=6, actor="olga"))
    task = machine.state.tasks["t"]
    assert result == Applied(None) and task.state == "PENDING" and task.attempt == 2
    assert task.notes[-1] == TaskNote(7, 6, "rerun", "attempt 2 away from node 1 (by olga)")
    machine.apply(8, MarkReady(task_id="t", now_ms=7))
    refused = machine.apply(9, Assign(task_id="t", node_id=1, now_ms=8))
    assert isinstance(refused, Rejected) and "re-run placement" in refused.reason
    assert machine.apply(10, Assign(task_id="t", node_id=2, now_ms=8)) == Applied(10)
    again = machine.apply(11, Rerun(task_id="t", node_id=2, away=False, now_ms=9))
    assert isinstance(again, Rejected) and "not allowed in state ASSIGNED" in again.reason


def test_a_rerun_pinned_to_an_unknown_node_is_refused() -> None:
    machine = _machine()
    _failed_on_node_1(machine)
    refused = machine.apply(7, Rerun(task_id="t", node_id=9, away=False, now_ms=6))
    assert isinstance(refused, Rejected) and refused.reason == "unknown node 9"
    machine.apply(8, Rerun(task_id="t", node_id=2, away=False, now_ms=6))
    assert machine.state.tasks["t"].may_run_on(2) and not machine.state.tasks["t"].may_run_on(1)
