"""Seeded simulation with plans in parts: the scheduler runs between the parts of a plan,
leaders die mid-plan, executors crash and pause, finished plans are compacted.

Afterwards: every task of a committed plan was created with exactly the plan's keys, each
key in one task, and settled once (its Finish accepted at most once, a compacted plan's
outcome counting every task); no task of an abandoned plan ever existed; and after every
step the state's indexes equal a full scan. A failing seed is in the test id.
"""

from __future__ import annotations

import pytest

from tests.scheduler.test_simulation import KEYS, Simulation, _settled
from warmd.statemachine import machine as machine_module
from warmd.statemachine.commands import AddPlanPart, OpenPlan, PlannedTask, SubmitPlan, TaskSpec
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.plan_parts import split_plan
from warmd.statemachine.state import Applied
from warmd.testing.index_check import index_problems

PLANS = 12
TASKS_PER_PLAN = 5
PART_BYTES = 1_900  # two tasks of 12 keys a part (1 KiB of it is envelope room): several parts
FINISHED_KEYS_KEPT = 2 * TASKS_PER_PLAN * KEYS  # two finished plans' tasks kept, then compacted


class PlanSimulation(Simulation):
    """The task simulation, fed plans one entry per step instead of tasks all at once."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.queue: list[object] = []
        self.plans: dict[str, SubmitPlan] = {}
        self.committed: set[str] = set()
        self.abandoned: set[str] = set()

    def submit_plan(self, number: int) -> None:
        plan_id = f"p{number}"
        tasks = tuple(PlannedTask(task_id=f"{plan_id}-t{n}", spec=TaskSpec(
            keys=tuple(f"{plan_id}-t{n}:{k}" for k in range(KEYS)), target="redis",
            rule=f"rule{n % 3}", max_attempts=3, plan_id=plan_id))
            for n in range(TASKS_PER_PLAN))
        plan = SubmitPlan(plan_id=plan_id, trigger="manual", rules_version="",
                          requests=TASKS_PER_PLAN * KEYS, tasks=tasks, now_ms=self.now_ms)
        entries = split_plan(plan, PART_BYTES)
        assert len(entries) > 2 and isinstance(entries[0], OpenPlan)
        self.plans[plan_id] = plan
        self.queue.extend(entries)

    def step(self, faults: bool) -> None:
        if self.queue:
            self._propose_next()
        super().step(faults)
        self.check()

    def _propose_next(self) -> None:
        entry = self.queue.pop(0)
        plan_id = entry.plan_id  # type: ignore[attr-defined]
        if isinstance(entry, AddPlanPart) and self.rng.random() < 0.04:  # the leader dies
            self.abandoned.add(plan_id)
            self.queue = [left for left in self.queue if left.plan_id != plan_id]  # type: ignore[attr-defined]
            return
        result = self._append(entry)
        if isinstance(entry, AddPlanPart) and result == Applied(plan_id):
            self._check_created(self.plans[plan_id])
            self.committed.add(plan_id)

    def _check_created(self, plan: SubmitPlan) -> None:
        """The committed tasks are the plan's, in order, with exactly its keys."""
        tasks = self.ledger.state.tasks
        created = [tasks[planned.task_id] for planned in plan.tasks]
        assert [task.spec for task in created] == [planned.spec for planned in plan.tasks]
        keys = [key for task in created for key in task.spec.keys]
        assert len(keys) == len(set(keys)) == TASKS_PER_PLAN * KEYS
        assert all(task.state == TaskState.PENDING for task in created)

    def check(self) -> None:
        state = self.ledger.state
        assert index_problems(state) == []
        for plan_id in self.abandoned | (set(self.plans) - self.committed):
            assert not any(task_id.startswith(f"{plan_id}-") for task_id in state.tasks)


def _run(seed: int) -> PlanSimulation:
    simulation = PlanSimulation(seed)
    for number in range(PLANS):
        simulation.submit_plan(number)
        for _ in range(4):
            simulation.step(faults=True)
    for _ in range(80):
        simulation.step(faults=True)
    for executor in simulation.executors.values():  # heal: everyone restarts
        executor.paused_until_ms = 0
        executor.up = True
    for _ in range(400):
        if not simulation.queue and _settled(simulation.ledger.state):
            break
        simulation.step(faults=False)
    return simulation


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_plans_in_parts_lose_and_double_nothing(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine_module, "FINISHED_KEYS_KEPT", FINISHED_KEYS_KEPT)
    simulation = _run(seed)
    state = simulation.ledger.state
    assert _settled(state), f"seed {seed}: unsettled {state.counts()}"
    assert simulation.committed and simulation.committed | simulation.abandoned == set(simulation.plans)
    finishes = simulation.audit.finishes
    assert all(count == 1 for count in finishes.values()), f"seed {seed}: a task finished twice"
    compacted = 0
    for plan_id in simulation.committed:
        record = state.plans[plan_id]
        task_ids = [planned.task_id for planned in simulation.plans[plan_id].tasks]
        succeeded = sum(1 for task_id in task_ids if task_id in finishes)
        if record.outcome:  # compacted: its outcome accounts for every task
            compacted += 1
            assert sum(count for _, count in record.outcome) == TASKS_PER_PLAN
            assert dict(record.outcome).get("SUCCEEDED", 0) == succeeded
            assert not any(task_id in state.tasks for task_id in task_ids)
        else:
            assert record.task_ids == tuple(task_ids)
            assert {task_id for task_id in task_ids
                    if state.tasks[task_id].state == TaskState.SUCCEEDED} == {
                task_id for task_id in task_ids if task_id in finishes}
    assert compacted > 0, f"seed {seed}: no plan was compacted"
    assert simulation.audit.faults > 0
