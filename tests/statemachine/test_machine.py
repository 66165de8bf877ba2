"""apply(): fencing, sessions, the node registry, guards, checkpoints, retries and misfires."""

from __future__ import annotations

import pytest

from warmd.errors import InvariantViolation
from warmd.statemachine.commands import (
    Assign,
    Cancel,
    DeclareDead,
    Drain,
    Expire,
    Fail,
    Finish,
    Heartbeat,
    MarkReady,
    RegisterNode,
    Release,
    RemoveNode,
    ReportProgress,
    Retry,
    Session,
    Start,
    SubmitTask,
    TaskSpec,
    encode_command,
    labels_from,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.machine import SESSIONS_MAX, StateMachine
from warmd.statemachine.state import Applied, Rejected

LEASE_MS = 1_000


def _ledger(*node_ids: int, capacity: int = 2) -> Ledger:
    ledger = Ledger()
    for node_id in node_ids:
        ledger.append(
            RegisterNode(node_id=node_id, capacity=capacity, lease_ms=LEASE_MS, now_ms=0)
        )
    return ledger


def _ready(ledger: Ledger, task_id: str, *, keys: int = 4, **spec: object) -> None:
    keys_tuple = tuple(f"{task_id}:{n}" for n in range(keys))
    task_spec = TaskSpec(keys=keys_tuple, target="redis", **spec)  # type: ignore[arg-type]
    assert ledger.append(SubmitTask(task_id=task_id, spec=task_spec, now_ms=0)) == Applied(task_id)
    assert ledger.append(MarkReady(task_id=task_id, now_ms=0)) == Applied(None)


def _run(ledger: Ledger, task_id: str, node_id: int, now_ms: int = 10) -> int:
    """Assign and start; returns the fence."""
    result = ledger.append(Assign(task_id=task_id, node_id=node_id, now_ms=now_ms))
    assert isinstance(result, Applied)
    fence = result.value
    start = Start(task_id=task_id, node_id=node_id, fence=fence, now_ms=now_ms)
    assert ledger.append(start) == Applied(None)
    return fence


def _take_over(ledger: Ledger, task_id: str, old_fence: int, now_ms: int) -> int:
    """Node 1 falls silent; node 2 (heartbeating) gets the task; returns the new fence."""
    ledger.append(Heartbeat(node_id=2, now_ms=now_ms))
    assert ledger.append(DeclareDead(node_id=1, now_ms=now_ms)) == Applied(None)
    assert ledger.append(Release(task_id=task_id, fence=old_fence, now_ms=now_ms)) == Applied(None)
    return _run(ledger, task_id, 2, now_ms)


def test_fence_is_the_assignment_index() -> None:
    """Assign's applied value and the task's fence are the log index of the Assign entry."""
    ledger = _ledger(1)
    _ready(ledger, "t")
    index = ledger.next_index
    assert ledger.append(Assign(task_id="t", node_id=1, now_ms=5)) == Applied(index)
    assert ledger.state.tasks["t"].fence == index


def test_stale_reports_after_reassignment_are_rejected_and_counted() -> None:
    """After a reassignment, the old owner's start, progress, finish and fail are all refused
    and counted, and the new owner's work is untouched."""
    ledger = _ledger(1, 2)
    _ready(ledger, "t")
    old = _run(ledger, "t", 1)
    ledger.append(ReportProgress(task_id="t", node_id=1, fence=old, keys_done=2, now_ms=20))
    new = _take_over(ledger, "t", old, now_ms=LEASE_MS + 50)
    assert new > old
    stale = [
        Start(task_id="t", node_id=1, fence=old, now_ms=2_000),
        ReportProgress(task_id="t", node_id=1, fence=old, keys_done=3, now_ms=2_000),
        Finish(task_id="t", node_id=1, fence=old, now_ms=2_000),
        Fail(task_id="t", node_id=1, fence=old, now_ms=2_000, error="late"),
    ]
    for command in stale:
        result = ledger.append(command)
        assert isinstance(result, Rejected) and result.reason.startswith(f"stale fence {old}")
    task = ledger.state.tasks["t"]
    assert (task.state, task.owner, task.fence, task.checkpoint) == (TaskState.RUNNING, 2, new, 2)
    assert ledger.state.stale_fence_rejections == 4
    statistics = ledger.state.statistics()
    assert statistics.stale_fence_rejections == 4
    assert (statistics.nodes_alive, statistics.nodes_dead) == (1, 1)
    assert dict(statistics.tasks_by_state)["RUNNING"] == 1
    done = Finish(task_id="t", node_id=2, fence=new, now_ms=2_100)
    assert ledger.append(done) == Applied(None)
    assert ledger.state.tasks["t"].state == TaskState.SUCCEEDED


def test_reassigned_task_resumes_from_checkpoint() -> None:
    """A released task keeps its checkpoint; the new owner may not report below it."""
    ledger = _ledger(1, 2)
    _ready(ledger, "t", keys=10)
    old = _run(ledger, "t", 1)
    ledger.append(ReportProgress(task_id="t", node_id=1, fence=old, keys_done=6, now_ms=20))
    new = _take_over(ledger, "t", old, now_ms=LEASE_MS + 50)
    assert ledger.state.tasks["t"].checkpoint == 6
    assert ledger.state.tasks["t"].reassignments == 1
    back = ReportProgress(task_id="t", node_id=2, fence=new, keys_done=5, now_ms=2_000)
    assert ledger.append(back) == Rejected("checkpoint 5 outside 6..10")
    over = ReportProgress(task_id="t", node_id=2, fence=new, keys_done=11, now_ms=2_000)
    assert isinstance(ledger.append(over), Rejected)
    assert ledger.state.stale_fence_rejections == 0


def test_release_needs_a_lost_owner_and_the_current_fence() -> None:
    """A live owner's task cannot be released, nor can a release repeat with the old fence."""
    ledger = _ledger(1, 2)
    _ready(ledger, "t")
    fence = _run(ledger, "t", 1)
    assert ledger.append(Release(task_id="t", fence=fence, now_ms=50)) == Rejected(
        "owner node 1 is alive"
    )
    _take_over(ledger, "t", fence, now_ms=LEASE_MS + 50)
    again = ledger.append(Release(task_id="t", fence=fence, now_ms=LEASE_MS + 60))
    assert isinstance(again, Rejected) and "not the current fence" in again.reason


def test_session_applies_a_retried_command_once() -> None:
    """The same (client, sequence) twice gives one effect and the first result both times."""
    ledger = _ledger(1)
    spec = TaskSpec(keys=("k",), target="redis")
    submit = Session(client_id="c1", sequence=1, command=SubmitTask(task_id="t", spec=spec, now_ms=0))
    assert ledger.append(submit) == Applied("t")
    assert ledger.append(submit) == Applied("t")  # not "already exists"
    assert len(ledger.state.tasks) == 1
    cancel = Session(client_id="c1", sequence=2, command=Cancel(task_id="t", now_ms=1))
    ledger.append(cancel)
    ledger.append(cancel)
    assert ledger.state.tasks["t"].state == TaskState.CANCELLED
    old = ledger.append(submit)
    assert isinstance(old, Rejected) and "older than the last applied (2)" in old.reason


def test_session_caches_rejections_too() -> None:
    """A rejected first apply is remembered: the retry gets the same rejection, no new effect."""
    ledger = _ledger(1)
    heartbeat = Session(client_id="c", sequence=1, command=Heartbeat(node_id=9, now_ms=0))
    assert ledger.append(heartbeat) == Rejected("unknown node 9")
    ledger.append(RegisterNode(node_id=9, capacity=1, lease_ms=5, now_ms=0))
    assert ledger.append(heartbeat) == Rejected("unknown node 9")


def test_sessions_are_bounded_least_recently_used_first() -> None:
    """Past SESSIONS_MAX clients, the least recently used session is forgotten."""
    ledger = _ledger(1)
    for client in range(SESSIONS_MAX + 1):
        ledger.append(Session(client_id=f"c{client}", sequence=1,
                              command=Heartbeat(node_id=1, now_ms=client)))
    assert len(ledger.state.sessions) == SESSIONS_MAX
    assert "c0" not in ledger.state.sessions and f"c{SESSIONS_MAX}" in ledger.state.sessions


def test_assignment_guards() -> None:
    """Assign is refused to unknown, dead, draining, full or unlabelled nodes, and past deadline
    (Assign is the leader's: its stamp is the leader's clock)."""
    ledger = _ledger(1, capacity=1)
    ledger.append(RegisterNode(node_id=2, capacity=1, lease_ms=LEASE_MS, now_ms=0,
                               labels=labels_from({"zone": "b"})))
    _ready(ledger, "a")
    _ready(ledger, "b")
    _ready(ledger, "c", required_labels=labels_from({"zone": "a"}), deadline_ms=5_000)

    def reason(task_id: str, node_id: int, now_ms: int = 10) -> str:
        result = ledger.append(Assign(task_id=task_id, node_id=node_id, now_ms=now_ms))
        return result.reason if isinstance(result, Rejected) else "applied"

    assert reason("a", 7) == "unknown node 7"
    ledger.append(DeclareDead(node_id=1, now_ms=LEASE_MS + 1, heartbeats=1))
    assert reason("a", 1) == "node 1 is not live"
    ledger.append(Heartbeat(node_id=1, now_ms=LEASE_MS + 2))  # back: a heartbeat revives it
    assert reason("c", 2) == "node 2 lacks labels {'zone': 'a'}"
    assert reason("a", 1) == "applied"
    assert reason("b", 1) == "node 1 is full (1 tasks)"
    ledger.append(Drain(node_id=2, now_ms=10))
    assert reason("b", 2) == "node 2 is draining"
    ledger.append(Drain(node_id=2, now_ms=10, draining=False))
    assert reason("b", 2) == "applied"
    ledger.append(RegisterNode(node_id=3, capacity=1, lease_ms=10_000, now_ms=0,
                               labels=labels_from({"zone": "a", "disk": "ssd"})))
    assert reason("c", 3, now_ms=5_000) == "deadline 5000 passed"
    assert reason("c", 3, now_ms=4_999) == "applied"


def test_node_registry() -> None:
    """Heartbeats are counted and revive a dead node; DeclareDead is judged on the count the
    leader saw, never on the node's stamps; removal forgets."""
    ledger = _ledger(1)
    node = ledger.state.nodes[1]
    ledger.append(Heartbeat(node_id=1, now_ms=500))
    ledger.append(Heartbeat(node_id=1, now_ms=3_600_000))  # a clock an hour ahead: a hint only
    assert (node.heartbeats, node.last_heartbeat_ms) == (3, 3_600_000)
    assert ledger.append(DeclareDead(node_id=1, now_ms=1_501, heartbeats=2)) == Rejected(
        "node 1 was heard from since (heartbeat 3, judged on 2)")
    assert ledger.append(DeclareDead(node_id=1, now_ms=1_501, heartbeats=3)) == Applied(None)
    assert ledger.append(DeclareDead(node_id=1, now_ms=1_502, heartbeats=3)) == Rejected(
        "node 1 is already dead")
    assert not node.alive
    ledger.append(Drain(node_id=1, now_ms=1_600))
    ledger.append(RegisterNode(node_id=1, capacity=5, lease_ms=LEASE_MS, now_ms=1_700))
    assert (node.alive, node.draining, node.capacity) == (True, True, 5)
    assert ledger.append(RemoveNode(node_id=1, now_ms=1_800)) == Applied(None)
    assert ledger.append(Heartbeat(node_id=1, now_ms=1_900)) == Rejected("unknown node 1")


def test_removed_owner_lets_its_task_be_released() -> None:
    """A task whose owner was removed from the registry may be released and reassigned."""
    ledger = _ledger(1, 2)
    _ready(ledger, "t")
    fence = _run(ledger, "t", 1)
    ledger.append(RemoveNode(node_id=1, now_ms=20))
    assert ledger.append(Release(task_id="t", fence=fence, now_ms=20)) == Applied(None)
    assert ledger.state.tasks["t"].state == TaskState.READY


def test_retry_policy_counts_attempts_and_honours_backoff() -> None:
    """Automatic retries stop at max_attempts or a non-retryable failure; the backoff holds
    MarkReady back; a manual retry ignores the limit."""
    ledger = _ledger(1)
    _ready(ledger, "t", max_attempts=2)
    fence = _run(ledger, "t", 1)
    ledger.append(Fail(task_id="t", node_id=1, fence=fence, now_ms=20, error="boom"))
    assert ledger.append(Retry(task_id="t", not_before_ms=500, now_ms=20)) == Applied(None)
    task = ledger.state.tasks["t"]
    assert (task.state, task.attempt, task.fence, task.owner) == (TaskState.PENDING, 2, 0, 0)
    assert ledger.append(MarkReady(task_id="t", now_ms=499)) == Rejected(
        "not ready before 500 (now 499)"
    )
    ledger.append(MarkReady(task_id="t", now_ms=500))
    fence = _run(ledger, "t", 1, now_ms=500)
    ledger.append(Fail(task_id="t", node_id=1, fence=fence, now_ms=600, error="boom"))
    assert ledger.append(Retry(task_id="t", not_before_ms=900, now_ms=600)) == Rejected(
        "attempts used up (2 of 2)"
    )
    manual = Retry(task_id="t", not_before_ms=600, now_ms=600, manual=True)
    assert ledger.append(manual) == Applied(None)
    _ready_again = ledger.append(MarkReady(task_id="t", now_ms=600))
    assert _ready_again == Applied(None)
    fence = _run(ledger, "t", 1, now_ms=600)
    ledger.append(Fail(task_id="t", node_id=1, fence=fence, now_ms=700, error="bad", retryable=False))
    assert ledger.append(Retry(task_id="t", not_before_ms=900, now_ms=700)) == Rejected(
        "the failure is not retryable"
    )


def test_misfire_expires_and_never_starts_late() -> None:
    """Only the leader's clock judges deadlines: an executor's late stamp does not refuse its
    Start, the leader's Expire ends the task (and its run); Expire before it is refused; a
    submission whose deadline passed by the submitter's clock is taken and left to expire."""
    ledger = _ledger(1)
    _ready(ledger, "t", deadline_ms=1_000)
    fence = ledger.append(Assign(task_id="t", node_id=1, now_ms=900)).value
    skewed = Start(task_id="t", node_id=1, fence=fence, now_ms=3_600_000)
    assert ledger.append(skewed) == Applied(None)
    assert ledger.append(Expire(task_id="t", now_ms=999)) == Rejected(
        "deadline 1000 not reached (now 999)"
    )
    assert ledger.append(Expire(task_id="t", now_ms=1_000)) == Applied(None)
    task = ledger.state.tasks["t"]
    assert task.state == TaskState.EXPIRED and "deadline 1000" in task.reason
    spec = TaskSpec(keys=("k",), target="r", deadline_ms=50)
    assert ledger.append(SubmitTask(task_id="late", spec=spec, now_ms=50)) == Applied("late")
    assert ledger.append(Expire(task_id="late", now_ms=50)) == Applied(None)


def test_only_the_owner_reports() -> None:
    """A report with the right fence from another node is refused and not counted as stale."""
    ledger = _ledger(1, 2)
    _ready(ledger, "t")
    fence = _run(ledger, "t", 1)
    impostor = Finish(task_id="t", node_id=2, fence=fence, now_ms=20)
    assert ledger.append(impostor) == Rejected("node 2 does not own task t")
    assert ledger.state.stale_fence_rejections == 0


def test_apply_entry_rejects_undecodable_bytes_and_keeps_indexes() -> None:
    """Garbage entry bytes are Rejected (never raised) and still advance the applied index."""
    machine = StateMachine()
    result = machine.apply_entry(3, b"\xc1")
    assert isinstance(result, Rejected) and result.reason.startswith("invalid command")
    assert machine.state.applied_index == 3
    heartbeat = encode_command(Heartbeat(node_id=1, now_ms=0))
    assert machine.apply_entry(4, heartbeat) == Rejected("unknown node 1")


def test_non_commands_are_rejected() -> None:
    """An object that is not a command is Rejected, not raised."""
    assert StateMachine().apply(1, "drop tables") == Rejected("not a command: str")  # type: ignore[arg-type]


def test_indexes_must_increase() -> None:
    """Applying an index twice is a driver bug and raises InvariantViolation."""
    machine = StateMachine()
    machine.apply(5, Heartbeat(node_id=1, now_ms=0))
    with pytest.raises(InvariantViolation):
        machine.apply(5, Heartbeat(node_id=1, now_ms=0))


def test_every_attempt_is_kept_with_its_times_and_end() -> None:
    """A task taken over from a lost owner lists both assignments: node, fence, leader times
    and how each ended; a snapshot restores them, and a success clears the stale reason."""
    ledger = _ledger(1, 2)
    _ready(ledger, "t", keys=10)
    old = _run(ledger, "t", 1, now_ms=10)
    new = _take_over(ledger, "t", old, now_ms=LEASE_MS + 50)
    assert ledger.append(Finish(task_id="t", node_id=2, fence=new, now_ms=LEASE_MS + 90)) \
        == Applied(None)
    task = ledger.state.tasks["t"]
    first, second = task.attempts
    assert (first.node_id, first.fence, first.assigned_ms, first.started_ms) == (1, old, 10, 10)
    assert (first.outcome, first.ended_ms) == ("RELEASED", LEASE_MS + 50)
    assert (second.node_id, second.fence, second.outcome, second.ended_ms) == (
        2, new, "SUCCEEDED", LEASE_MS + 90)
    assert task.reason == ""
    restored = StateMachine()
    restored.restore(ledger.machine.snapshot())
    assert restored.state.tasks["t"].attempts == task.attempts
