"""Plans of any size in bounded entries (pure): a plan's header, then its tasks in parts.

A plan that fits in `part_bytes` goes as ONE SubmitPlan, as before. A bigger one (a million
keys is ~30 MB) would be one entry kept by every member in its log and every snapshot, so
`split_plan` sends it as an OpenPlan header and AddPlanPart entries of at most `part_bytes`
each. Replicas stage the parts and create every task of the plan when the last part
applies, so a plan is still applied whole or not at all: a leader that dies between two
parts leaves a staged plan that never runs, and at most STAGED_PLANS_MAX staged plans are
kept (the oldest is dropped when another opens).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import msgpack

from warmd.statemachine.commands import (
    AddPlanPart,
    Command,
    InvalidCommand,
    OpenPlan,
    PlannedTask,
    SubmitPlan,
    encode_command,
)
from warmd.statemachine.schema import to_wire

PLAN_PART_BYTES = 256 * 1024
PART_OVERHEAD_BYTES = 1024  # the AddPlanPart and Session envelope around the tasks
ARRAY_HEADER_BYTES = 5  # msgpack's header of the tasks array, at most
STAGED_PLANS_MAX = 4


@dataclass(slots=True)
class StagedPlan:
    """An opened plan whose parts are still arriving; no task of it exists yet."""

    header: OpenPlan
    index: int  # log index of the OpenPlan
    tasks: list[PlannedTask] = field(default_factory=list)
    parts: int = 0  # parts received so far


def split_plan(plan: SubmitPlan, part_bytes: int = PLAN_PART_BYTES) -> tuple[Command, ...]:
    """The entries that carry `plan`: itself when it fits in `part_bytes`, else an OpenPlan
    and AddPlanParts of at most `part_bytes` each, tasks in order.

    Raises:
        InvalidCommand: one task alone is bigger than a part (give it fewer keys).
    """
    sizes = [len(msgpack.packb(to_wire(task), use_bin_type=True)) for task in plan.tasks]
    bare = len(encode_command(dataclasses.replace(plan, tasks=())))
    if bare + sum(sizes) + ARRAY_HEADER_BYTES <= part_bytes:  # each task encoded once only
        return (plan,)
    groups = _groups(plan.tasks, sizes, part_bytes - PART_OVERHEAD_BYTES)
    header = OpenPlan(plan_id=plan.plan_id, trigger=plan.trigger,
                      rules_version=plan.rules_version, requests=plan.requests,
                      parts=len(groups), tasks=len(plan.tasks), now_ms=plan.now_ms,
                      watch=plan.watch, note=plan.note)
    parts = (AddPlanPart(plan_id=plan.plan_id, part=number, tasks=group, now_ms=plan.now_ms)
             for number, group in enumerate(groups))
    return (header, *parts)


def _groups(tasks: tuple[PlannedTask, ...], sizes: list[int],
            budget: int) -> list[tuple[PlannedTask, ...]]:
    """Consecutive tasks (of these encoded sizes) packed greedily into groups of at most
    `budget` bytes."""
    groups: list[tuple[PlannedTask, ...]] = []
    current: list[PlannedTask] = []
    used = 0
    for task, size in zip(tasks, sizes, strict=True):
        if size > budget:
            raise InvalidCommand(f"plan task {task.task_id} alone takes {size} bytes, more than "
                                 f"a plan part carries ({budget}); give it fewer keys")
        if used + size > budget:
            groups.append(tuple(current))
            current, used = [], 0
        current.append(task)
        used += size
    if current:
        groups.append(tuple(current))
    return groups


def check_part(staged: StagedPlan | None, command: AddPlanPart) -> str:
    """Why the part cannot be staged ("" when it can): an unknown plan or a part out of order."""
    if staged is None:
        return f"plan {command.plan_id} is not open (never opened, or dropped)"
    if command.part != staged.parts:
        return f"plan {command.plan_id}: part {command.part} arrived, part {staged.parts} expected"
    if command.part >= staged.header.parts:
        return f"plan {command.plan_id} has only {staged.header.parts} parts"
    return ""


def check_complete(staged: StagedPlan) -> str:
    """Why the last part cannot commit the plan ("" when it can): a task count that differs
    from the header's, or a task id given twice."""
    if len(staged.tasks) != staged.header.tasks:
        return (f"plan {staged.header.plan_id}: {len(staged.tasks)} tasks arrived, the header "
                f"announced {staged.header.tasks}")
    ids = {task.task_id for task in staged.tasks}
    if len(ids) != len(staged.tasks):
        return f"plan {staged.header.plan_id}: two tasks have the same id"
    return ""
