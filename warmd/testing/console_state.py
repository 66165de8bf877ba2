"""A replicated state built by applying real commands to a StateMachine, for the console's
unit tests and bench/console_load.py: nodes, plans with tasks in every state, effects.

Everything goes through `StateMachine.apply`, so the rows the console shows are made
from the same records a cluster would hold. Times are given, never read from a clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from warmd.statemachine.commands import (
    Assign,
    Command,
    Fail,
    Finish,
    MarkReady,
    PlannedTask,
    RecordEffect,
    RegisterNode,
    Start,
    SubmitPlan,
    TaskSpec,
)
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import Applied, MachineState

LEASE_MS = 60_000


class StateBuilder:
    """Applies commands at increasing indexes; each helper moves tasks one way."""

    def __init__(self, now_ms: int = 1_800_000_000_000) -> None:
        self.machine = StateMachine()
        self.index = 0
        self.term = 1  # the term entries are applied in (a test may start a new one)
        self.now_ms = now_ms

    @property
    def state(self) -> MachineState:
        return self.machine.state

    def apply(self, command: Command) -> object:
        """Apply at the next index. Raises: AssertionError when the machine refuses it."""
        self.index += 1
        result = self.machine.apply(self.index, command, self.term)
        assert isinstance(result, Applied), f"{command!r} refused: {result}"
        return result.value

    def nodes(self, count: int, capacity: int = 4) -> None:
        for node_id in range(1, count + 1):
            self.apply(RegisterNode(node_id=node_id, capacity=capacity, lease_ms=LEASE_MS,
                                    now_ms=self.now_ms))

    def plan(self, plan_id: str, tasks: int, keys: int = 10, trigger: str = "manual",
             target: str = "redis", watch: str = "") -> list[str]:
        """Submit one plan of `tasks` PENDING tasks; returns their ids."""
        task_ids = [f"{plan_id}-{number:05d}" for number in range(tasks)]
        planned = tuple(PlannedTask(task_id=task_id, spec=TaskSpec(
            keys=tuple(f"{task_id}:k{key}" for key in range(keys)), target=target,
            rule=f"rule-{number % 3}", plan_id=plan_id))
            for number, task_id in enumerate(task_ids))
        self.apply(SubmitPlan(plan_id=plan_id, trigger=trigger, rules_version="",
                              requests=tasks * keys, tasks=planned, now_ms=self.now_ms,
                              watch=watch))
        return task_ids

    def run(self, task_ids: Sequence[str], node_id: int, outcome: str = "succeed",
            step_ms: int = 1_000) -> None:
        """Make each task ready, assign it to `node_id`, start it and end it."""
        for task_id in task_ids:
            self.apply(MarkReady(task_id=task_id, now_ms=self.now_ms))
            self.apply(Assign(task_id=task_id, node_id=node_id, now_ms=self.now_ms))
            fence = self.index
            self.now_ms += step_ms
            self.apply(Start(task_id=task_id, node_id=node_id, fence=fence, now_ms=self.now_ms))
            if outcome == "start":
                continue
            self.now_ms += step_ms
            if outcome == "succeed":
                self.apply(Finish(task_id=task_id, node_id=node_id, fence=fence,
                                  now_ms=self.now_ms, result='{"keys_ok": 10}'))
            else:
                self.apply(Fail(task_id=task_id, node_id=node_id, fence=fence,
                                now_ms=self.now_ms, error="origin refused", retryable=False))

    def effect(self, plan_id: str, cache: str, before: tuple[int, int],
               after: tuple[int, int], window_ms: int = 60_000) -> None:
        self.now_ms += window_ms
        self.apply(RecordEffect(plan_id=plan_id, cache=cache, before_hits=before[0],
                                before_misses=before[1], after_hits=after[0],
                                after_misses=after[1], window_ms=window_ms, now_ms=self.now_ms))
