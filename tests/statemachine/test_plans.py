"""Plans are applied whole, keep their tasks bounded, record effects; summaries keep the newest."""

from __future__ import annotations

from warmd.statemachine.commands import (
    Assign,
    Finish,
    MarkReady,
    PlannedTask,
    RecordEffect,
    RegisterNode,
    Start,
    SubmitPlan,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.plans import PLANS_KEPT
from warmd.statemachine.state import Applied, Rejected
from warmd.statemachine.summaries import ReportSummary

SPEC = TaskSpec(keys=("/a", "/b"), target="shop", loader="replay", plan_id="p1",
                rules_version="v1")


def plan(plan_id: str, *task_ids: str, now_ms: int = 10) -> SubmitPlan:
    return SubmitPlan(plan_id=plan_id, trigger="cache-flush:redis", rules_version="v1",
                      requests=2 * len(task_ids), now_ms=now_ms, watch="redis",
                      tasks=tuple(PlannedTask(task_id=task_id, spec=SPEC) for task_id in task_ids))


class Log:
    """A state machine fed with consecutive log indexes."""

    def __init__(self) -> None:
        self.machine = StateMachine()
        self.index = 0

    def apply(self, command: object):
        self.index += 1
        return self.machine.apply(self.index, command)


def test_a_plan_creates_all_its_tasks_pending_and_is_recorded():
    """SubmitPlan adds every task as PENDING and records the plan with its trigger."""
    log = Log()
    assert log.apply(plan("p1", "p1-1", "p1-2")) == Applied("p1")
    state = log.machine.state
    assert [task.state for task in state.tasks.values()] == [TaskState.PENDING] * 2
    record = state.plans["p1"]
    assert (record.trigger, record.task_ids, record.rules_version, record.watch) == (
        "cache-flush:redis", ("p1-1", "p1-2"), "v1", "redis")
    assert state.last_plan_ms("cache-flush:redis") == 10
    assert state.last_plan_ms("schedule") is None


def test_a_plan_is_refused_whole_when_one_task_id_exists():
    """A clash on one task id refuses the plan and creates none of its tasks."""
    log = Log()
    log.apply(SubmitTask(task_id="p2-2", spec=SPEC, now_ms=1))
    result = log.apply(plan("p2", "p2-1", "p2-2"))
    assert isinstance(result, Rejected) and "p2-2" in result.reason
    assert set(log.machine.state.tasks) == {"p2-2"}
    assert "p2" not in log.machine.state.plans


def test_a_repeated_plan_is_refused():
    """The same plan id twice (a retried proposal) is applied once."""
    log = Log()
    log.apply(plan("p1", "p1-1"))
    assert isinstance(log.apply(plan("p1", "p1-9")), Rejected)
    assert set(log.machine.state.tasks) == {"p1-1"}


def test_old_plans_are_dropped_with_their_finished_tasks_only():
    """Beyond PLANS_KEPT the oldest plan goes; its finished task goes, its running one stays."""
    log = Log()
    log.apply(RegisterNode(node_id=1, capacity=4, lease_ms=1000, now_ms=1))
    log.apply(plan("first", "first-done", "first-running"))
    for task_id in ("first-done", "first-running"):
        log.apply(MarkReady(task_id=task_id, now_ms=2))
        fence = log.apply(Assign(task_id=task_id, node_id=1, now_ms=2))
        log.apply(Start(task_id=task_id, node_id=1, fence=fence.value, now_ms=3))
    done = log.machine.state.tasks["first-done"]
    log.apply(Finish(task_id="first-done", node_id=1, fence=done.fence, now_ms=4))
    for number in range(PLANS_KEPT):
        log.apply(plan(f"later{number}", f"later{number}-1", now_ms=5 + number))
    state = log.machine.state
    assert len(state.plans) == PLANS_KEPT and "first" not in state.plans
    assert "first-done" not in state.tasks
    assert state.tasks["first-running"].state == TaskState.RUNNING
    assert "first-done" not in state.by_state[TaskState.SUCCEEDED]


def test_an_effect_is_recorded_on_its_plan():
    """RecordEffect stores the before/after counts; an unknown plan is refused."""
    log = Log()
    log.apply(plan("p1", "p1-1"))
    effect = RecordEffect(plan_id="p1", cache="redis", before_hits=10, before_misses=90,
                          after_hits=95, after_misses=5, window_ms=60_000, now_ms=20)
    assert log.apply(effect) == Applied(None)
    recorded = log.machine.state.plans["p1"].effect
    assert recorded is not None
    assert (recorded.before_hit_rate, recorded.after_hit_rate) == (0.1, 0.95)
    unknown = RecordEffect(plan_id="nope", cache="redis", before_hits=0, before_misses=0,
                           after_hits=0, after_misses=0, window_ms=1, now_ms=21)
    assert isinstance(log.apply(unknown), Rejected)


def report(sequence: int, data: bytes = b"s", node_id: int = 1) -> ReportSummary:
    return ReportSummary(node_id=node_id, source="nginx", sequence=sequence, lines=sequence,
                         malformed=0, data=data, now_ms=sequence)


def test_only_a_newer_summary_replaces_the_kept_one():
    """A summary report replaces the (node, source) record only with a higher sequence."""
    log = Log()
    assert log.apply(report(5, b"five")) == Applied(5)
    assert isinstance(log.apply(report(5, b"again")), Rejected)
    assert isinstance(log.apply(report(4, b"older")), Rejected)
    log.apply(report(1, b"other node", node_id=2))
    summaries = log.machine.state.summaries
    assert summaries["1/nginx"].data == b"five" and summaries["2/nginx"].data == b"other node"
    log.apply(report(6, b"six"))
    assert summaries["1/nginx"].data == b"six" and summaries["1/nginx"].index == log.index


def test_summaries_plans_and_effects_survive_a_snapshot():
    """A restored snapshot holds the same summaries, plans and effects (equal digests)."""
    log = Log()
    log.apply(report(3, b"\x00\xffbinary"))
    log.apply(plan("p1", "p1-1"))
    log.apply(RecordEffect(plan_id="p1", cache="redis", before_hits=1, before_misses=2,
                           after_hits=3, after_misses=4, window_ms=5, now_ms=6))
    log.apply(plan("p2", "p2-1"))
    restored = StateMachine()
    restored.restore(log.machine.snapshot())
    assert restored.digest() == log.machine.digest()
    assert list(restored.state.plans) == ["p1", "p2"]
    assert restored.state.plans["p1"].effect == log.machine.state.plans["p1"].effect
    assert restored.state.summaries["1/nginx"].data == b"\x00\xffbinary"
    assert restored.state.tasks["p1-1"].spec == SPEC
