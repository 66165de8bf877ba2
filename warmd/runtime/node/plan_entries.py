"""Propose a plan of any size: one SubmitPlan, or a header and bounded parts, in order.

The pure split is `warmd.statemachine.plan_parts.split_plan`; this is the shell half that
proposes the entries one after the other (the state machine takes parts only in order) and
stops at the first refusal. The leader's planner and the `bench-plan` admin command use it.
"""

from __future__ import annotations

from collections.abc import Sequence

from warmd.runtime.node.driver import Driver
from warmd.statemachine.commands import Command, SubmitPlan
from warmd.statemachine.plan_parts import PLAN_PART_BYTES, split_plan
from warmd.statemachine.state import Applied, ApplyResult


async def propose_plan(driver: Driver, plan: SubmitPlan,
                       part_bytes: int = PLAN_PART_BYTES) -> ApplyResult:
    """The result of the entry that commits the plan, or the first refusal.

    Raises:
        InvalidCommand: a single task is bigger than a part.
        RaftError: as Driver.propose (a plan cut off mid-way stays staged and never runs).
    """
    return await propose_entries(driver, split_plan(plan, part_bytes))


async def propose_entries(driver: Driver, entries: Sequence[Command]) -> ApplyResult:
    """Propose a split plan's entries in order; the last result, or the first refusal."""
    result: ApplyResult = Applied(None)
    for command in entries:
        result = await driver.propose(command)
        if not isinstance(result, Applied):
            return result
    return result
