"""Plans of any size: bounded parts applied whole, staged across snapshots, and finished
plans compacted to their outcome so the state holds live work, not history."""

from __future__ import annotations

import pytest

from warmd.statemachine.commands import (
    AddPlanPart,
    Assign,
    Finish,
    InvalidCommand,
    MarkReady,
    OpenPlan,
    PlannedTask,
    RegisterNode,
    Session,
    Start,
    SubmitPlan,
    TaskSpec,
    encode_command,
)
from warmd.statemachine.documents import plan_document
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.plan_parts import PLAN_PART_BYTES, STAGED_PLANS_MAX, split_plan
from warmd.statemachine.plans import FINISHED_KEYS_KEPT
from warmd.statemachine.state import Applied, Rejected
from warmd.testing.index_check import index_problems


def big_plan(plan_id: str, tasks: int, keys_per_task: int, now_ms: int = 10) -> SubmitPlan:
    planned = tuple(
        PlannedTask(task_id=f"{plan_id}-{n}", spec=TaskSpec(
            keys=tuple(f"{plan_id}:{n}:{k}:{'x' * 24}" for k in range(keys_per_task)),
            target="redis://127.0.0.1:1", plan_id=plan_id))
        for n in range(tasks))
    return SubmitPlan(plan_id=plan_id, trigger="manual", rules_version="",
                      requests=tasks * keys_per_task, tasks=planned, now_ms=now_ms)


class Log:
    """A state machine fed with consecutive log indexes, through the entry bytes."""

    def __init__(self) -> None:
        self.machine = StateMachine()
        self.index = 0

    def apply(self, command: object) -> object:
        self.index += 1
        envelope = Session(client_id="c", sequence=self.index, command=command)  # type: ignore[arg-type]
        self.data = encode_command(envelope)
        return self.machine.apply_entry(self.index, self.data)


def test_a_small_plan_is_one_submit_plan() -> None:
    plan = big_plan("p", tasks=3, keys_per_task=10)
    assert split_plan(plan) == (plan,)


def test_a_big_plan_goes_in_bounded_parts_that_carry_every_task_once_in_order() -> None:
    plan = big_plan("p", tasks=40, keys_per_task=2_000)  # ~3 MB as one entry
    entries = split_plan(plan)
    header, parts = entries[0], entries[1:]
    assert isinstance(header, OpenPlan) and header.parts == len(parts) > 1
    sizes = [len(encode_command(Session(client_id="node-1-xyz", sequence=10**9, command=entry)))
             for entry in entries]
    assert max(sizes) <= PLAN_PART_BYTES
    carried = [task for part in parts for task in part.tasks]  # type: ignore[attr-defined]
    assert carried == list(plan.tasks)
    assert [part.part for part in parts] == list(range(len(parts)))  # type: ignore[attr-defined]


def test_a_task_bigger_than_a_part_is_refused_when_split() -> None:
    with pytest.raises(InvalidCommand, match="give it fewer keys"):
        split_plan(big_plan("p", tasks=2, keys_per_task=20_000))


def test_tasks_exist_only_once_the_last_part_applies() -> None:
    log = Log()
    entries = split_plan(big_plan("p", tasks=40, keys_per_task=2_000))
    for entry in entries[:-1]:
        assert isinstance(log.apply(entry), Applied)
        assert log.machine.state.tasks == {} and "p" not in log.machine.state.plans
    assert log.apply(entries[-1]) == Applied("p")
    state = log.machine.state
    assert len(state.in_state(TaskState.PENDING)) == 40 and state.staged_plans == {}
    assert state.plans["p"].task_ids == tuple(f"p-{n}" for n in range(40))
    assert state.unfinished["p"] == 40 and state.plan_keys["p"] == 80_000


def test_parts_out_of_order_unknown_or_short_are_refused_and_create_nothing() -> None:
    log = Log()
    entries = split_plan(big_plan("p", tasks=40, keys_per_task=2_000))
    assert isinstance(log.apply(entries[2]), Rejected)  # never opened
    log.apply(entries[0])
    refused = log.apply(entries[2])
    assert isinstance(refused, Rejected) and "part 0 expected" in refused.reason
    assert isinstance(log.apply(entries[0]), Rejected)  # opened twice
    header = entries[0]
    assert isinstance(header, OpenPlan)
    short = OpenPlan(plan_id="q", trigger="manual", rules_version="", requests=1, parts=1,
                     tasks=2, now_ms=1)
    log.apply(short)
    one = big_plan("q", tasks=1, keys_per_task=1).tasks
    refused = log.apply(AddPlanPart(plan_id="q", part=0, tasks=one, now_ms=1))
    assert isinstance(refused, Rejected) and "announced 2" in refused.reason
    assert log.machine.state.tasks == {} and "q" not in log.machine.state.staged_plans


def test_abandoned_staged_plans_are_bounded() -> None:
    log = Log()
    for number in range(STAGED_PLANS_MAX + 3):
        log.apply(OpenPlan(plan_id=f"s{number}", trigger="manual", rules_version="",
                           requests=1, parts=1, tasks=1, now_ms=number))
    assert list(log.machine.state.staged_plans) == [
        f"s{number}" for number in range(3, STAGED_PLANS_MAX + 3)]


def test_a_snapshot_taken_between_parts_restores_the_staging_exactly() -> None:
    log, entries = Log(), split_plan(big_plan("p", tasks=40, keys_per_task=2_000))
    for entry in entries[:3]:
        log.apply(entry)
    restored = StateMachine()
    restored.restore(log.machine.snapshot())
    assert restored.snapshot() == log.machine.snapshot()
    for entry in entries[3:]:
        log.apply(entry)
        restored.apply_entry(log.index, log.data)
    assert restored.snapshot() == log.machine.snapshot()
    assert len(restored.state.tasks) == 40


def finish_all(log: Log, node_id: int = 1) -> None:
    state = log.machine.state
    if node_id not in state.nodes:
        log.apply(RegisterNode(node_id=node_id, capacity=10_000, lease_ms=10_000, now_ms=1))
    for task in state.in_state(TaskState.PENDING):
        log.apply(MarkReady(task_id=task.task_id, now_ms=20))
    for task in state.in_state(TaskState.READY):
        log.apply(Assign(task_id=task.task_id, node_id=node_id, now_ms=21))
        fence = log.index
        log.apply(Start(task_id=task.task_id, node_id=node_id, fence=fence, now_ms=22))
        log.apply(Finish(task_id=task.task_id, node_id=node_id, fence=fence, now_ms=23))


def test_a_finished_plan_over_the_kept_keys_is_compacted_to_its_outcome() -> None:
    log = Log()
    keys_per_task = 2_000
    tasks = FINISHED_KEYS_KEPT // keys_per_task + 5
    for entry in split_plan(big_plan("big", tasks=tasks, keys_per_task=keys_per_task)):
        log.apply(entry)
    live = len(log.machine.snapshot())
    finish_all(log)
    state = log.machine.state
    plan = state.plans["big"]
    assert plan.task_ids == () and plan.outcome == (("SUCCEEDED", tasks),)
    assert state.plan_finished_ms(plan) == 23  # the effect window still counts from here
    assert state.tasks == {} and state.plan_of == {} and "big" not in state.plan_keys
    document = plan_document(plan, state.tasks)
    assert document["tasks"] == tasks and document["tasks_by_state"] == {"SUCCEEDED": tasks}
    assert document["compacted"] is True
    snapshot = log.machine.snapshot()
    assert len(snapshot) < live // 100  # bounded by live work (none), not by history
    restored = StateMachine()
    restored.restore(snapshot)
    assert restored.snapshot() == snapshot and restored.state.plans["big"].outcome == plan.outcome
    assert restored.state.plan_finished_ms(restored.state.plans["big"]) == 23
    assert index_problems(restored.state) == [] and index_problems(state) == []


def test_small_finished_plans_keep_their_tasks_and_the_oldest_go_first() -> None:
    log = Log()
    keys_per_task = 1_000
    per_plan = FINISHED_KEYS_KEPT // keys_per_task // 2  # two plans fit, the third does not
    for number in range(3):
        for entry in split_plan(big_plan(f"p{number}", tasks=per_plan, keys_per_task=keys_per_task)):
            log.apply(entry)
        finish_all(log)
    plans = log.machine.state.plans
    assert plans["p0"].outcome == (("SUCCEEDED", per_plan),) and plans["p0"].task_ids == ()
    assert plans["p1"].outcome == () and len(plans["p1"].task_ids) == per_plan
    assert plans["p2"].outcome == () and len(plans["p2"].task_ids) == per_plan


def test_a_plan_stays_one_entry_exactly_while_it_fits() -> None:
    """One SubmitPlan while it encodes within the part size (4 bytes of slack for msgpack's
    array header), parts as soon as it does not."""
    for keys_per_task in range(3_000, 4_500, 150):
        plan = big_plan("p", tasks=2, keys_per_task=keys_per_task)
        size = len(encode_command(plan))
        if split_plan(plan) == (plan,):
            assert size <= PLAN_PART_BYTES
        else:
            assert size > PLAN_PART_BYTES - 4
