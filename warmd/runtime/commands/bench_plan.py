"""`bench-plan`: commit one synthetic plan of many keys through the real plan path, for bench/.

bench/scale.py warms 10k to 1M keys through a real cluster; sending a million keys through
the admin socket would measure the socket. Here the leader builds the plan itself: `keys`
keys named `<key_prefix><n>` in `tasks` tasks of equal size, written into `target` by the
executors (tasks without a loader), proposed exactly as the planner's plans are
(`propose_entries`: one SubmitPlan, or a header and bounded parts).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from typing import Any

from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.errors import AdminError
from warmd.runtime.commands.errors import raft_errors
from warmd.runtime.node.driver import Driver
from warmd.runtime.node.plan_entries import propose_entries
from warmd.statemachine.commands import (
    KEYS_PER_TASK_MAX,
    TASKS_PER_PLAN_MAX,
    InvalidCommand,
    PlannedTask,
    SubmitPlan,
    TaskSpec,
)
from warmd.statemachine.plan_parts import split_plan
from warmd.statemachine.state import Applied

KEYS_MAX = 10_000_000


def _bounded(args: Mapping[str, Any], name: str, high: int) -> int:
    value = args.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
        raise AdminError(ErrorCode.BAD_REQUEST, f"{name} must be 1..{high}, got {value!r:.40}")
    return value


def key_ranges(keys: int, tasks: int) -> list[tuple[int, int]]:
    """The [start, end) key numbers of each of `tasks` tasks, as even as possible."""
    bounds = [keys * number // tasks for number in range(tasks + 1)]
    return list(itertools.pairwise(bounds))


def synthetic_plan(plan_id: str, target: str, key_prefix: str, keys: int, tasks: int,
                   now_ms: int) -> SubmitPlan:
    """`keys` keys in `tasks` tasks as even as possible, task n holding a contiguous range.

    Raises: InvalidCommand (a task over KEYS_PER_TASK_MAX keys, a bad id or target).
    """
    if tasks > keys:
        raise InvalidCommand(f"{tasks} tasks need at least as many keys, got {keys}")
    planned = tuple(
        PlannedTask(task_id=f"{plan_id}-{number:05d}", spec=TaskSpec(
            keys=tuple(f"{key_prefix}{n}" for n in range(start, end)),
            target=target, plan_id=plan_id))
        for number, (start, end) in enumerate(key_ranges(keys, tasks)))
    return SubmitPlan(plan_id=plan_id, trigger="manual", rules_version="", requests=keys,
                      tasks=planned, now_ms=now_ms, note="bench-plan")


def register_bench_plan(server: AdminServer, driver: Driver) -> None:
    """Add `bench-plan` to the admin socket (0600: only the operator can load the node)."""
    async def bench_plan(args: Mapping[str, Any]) -> dict[str, Any]:
        keys = _bounded(args, "keys", KEYS_MAX)
        tasks = _bounded(args, "tasks", TASKS_PER_PLAN_MAX)
        plan_id, target = args.get("plan_id"), args.get("target")
        if not isinstance(plan_id, str) or not isinstance(target, str):
            raise AdminError(ErrorCode.BAD_REQUEST, "plan_id and target must be strings")
        if -(-keys // tasks) > KEYS_PER_TASK_MAX:
            raise AdminError(ErrorCode.BAD_REQUEST, f"at most {KEYS_PER_TASK_MAX} keys a task")
        started = time.perf_counter()
        try:  # a million keys take seconds to build: not on the loop that sends heartbeats
            entries = await asyncio.to_thread(
                lambda: split_plan(synthetic_plan(
                    plan_id, target, str(args.get("key_prefix", f"{plan_id}:")), keys, tasks,
                    driver.clock.wall_ms())))
        except InvalidCommand as error:
            raise AdminError(ErrorCode.BAD_REQUEST, f"invalid plan: {error}") from None
        built_s = time.perf_counter() - started
        async with raft_errors():
            result = await propose_entries(driver, entries)
        if not isinstance(result, Applied):
            raise AdminError(ErrorCode.FAILED, f"refused: {result.reason}")
        return {"plan_id": plan_id, "entries": len(entries), "build_s": round(built_s, 3),
                "commit_s": round(time.perf_counter() - started - built_s, 3),
                "applied_index": driver.applier.applied_index}

    server.register("bench-plan", bench_plan,
                    summary="commit a synthetic plan of KEYS keys in TASKS tasks into TARGET")
