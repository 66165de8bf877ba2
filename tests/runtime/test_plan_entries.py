"""A big plan through a real one-node driver on disk: committed in bounded parts, whole,
with no entry over the cap in the log; and the bench-plan admin command that builds one."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from warmd.config import load
from warmd.errors import AdminError
from warmd.raft.errors import ProposalDropped
from warmd.runtime.commands.bench_plan import key_ranges, register_bench_plan, synthetic_plan
from warmd.runtime.leader import planning as planning_module
from warmd.runtime.leader.planning import PlanningLoop
from warmd.runtime.node.driver import Driver
from warmd.runtime.node.plan_entries import propose_entries
from warmd.statemachine.commands import InvalidCommand, Session, decode_command, encode_command
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.plan_parts import PLAN_PART_BYTES, split_plan
from warmd.statemachine.state import Applied
from warmd.testing.configs import ONE_NODE, write_config
from warmd.testing.index_check import index_problems


def test_key_ranges_cover_every_key_once() -> None:
    for keys, tasks in ((10, 3), (1_000_000, 1_000), (7, 7)):
        ranges = key_ranges(keys, tasks)
        assert len(ranges) == tasks and ranges[0][0] == 0 and ranges[-1][1] == keys
        assert all(end > start for start, end in ranges)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


def test_a_synthetic_plan_with_more_tasks_than_keys_is_refused() -> None:
    with pytest.raises(InvalidCommand, match="at least as many keys"):
        synthetic_plan("p", "redis://127.0.0.1:1", "p:", keys=3, tasks=4, now_ms=1)


async def test_a_big_plan_commits_whole_in_parts_none_over_the_cap(driver: Driver) -> None:
    plan = synthetic_plan("big", "redis://127.0.0.1:1", "big:" + "x" * 20, keys=60_000,
                          tasks=30, now_ms=driver.clock.wall_ms())
    assert len(encode_command(plan)) > 4 * PLAN_PART_BYTES  # would be one ~2 MB entry
    first = driver.applier.applied_index
    result = await propose_entries(driver, split_plan(plan))
    assert result == Applied("big")
    state = driver.state
    assert len(state.in_state(TaskState.PENDING)) == 30 and state.staged_plans == {}
    assert [state.tasks[planned.task_id].spec for planned in plan.tasks] == [
        planned.spec for planned in plan.tasks]
    assert index_problems(state) == []
    entries = list(driver.storage.entries(first + 1, driver.applier.applied_index + 1))
    commands = [decode_command(entry.data) for entry in entries if entry.data]
    assert sum(1 for command in commands if isinstance(command, Session)) >= 9
    assert max(len(entry.data) for entry in entries) <= PLAN_PART_BYTES


async def test_an_entry_over_the_cap_is_refused_with_a_clear_error(driver: Driver) -> None:
    with pytest.raises(ProposalDropped, match="larger than the configured cap"):
        await driver.propose_data(b"x" * ((1 << 20) + 1))


async def test_bench_plan_refuses_a_bad_request_and_commits_a_good_one(driver: Driver) -> None:
    registered: dict[str, object] = {}

    class Registry:
        """Stands in for the admin server's registration table (only the handler is tested)."""

        def register(self, name: str, handler: object, summary: str) -> None:
            registered[name] = handler

    register_bench_plan(Registry(), driver)  # type: ignore[arg-type]
    handler = registered["bench-plan"]
    with pytest.raises(AdminError, match="keys must be"):
        await handler({"keys": 0, "tasks": 1, "plan_id": "p", "target": "t"})  # type: ignore[operator]
    reply = await handler({"keys": 5_000, "tasks": 5, "plan_id": "p5",  # type: ignore[operator]
                           "target": "redis://127.0.0.1:1"})
    assert reply["entries"] == 1 and "p5" in driver.state.plans


async def test_the_planner_refuses_a_plan_whose_task_outgrows_a_part(
        driver: Driver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A planned task too big for one part refuses the plan with the reason (and counts it);
    the planning pass goes on, nothing is proposed, and a plan that fits commits in parts."""
    config = load(write_config(tmp_path, ONE_NODE))
    huge = synthetic_plan("huge", "redis://127.0.0.1:1", "k" * 40, keys=20_000, tasks=1,
                          now_ms=1)
    big = synthetic_plan("big", "redis://127.0.0.1:1", "k" * 40, keys=20_000, tasks=10,
                         now_ms=1)
    planned = [huge, big]
    monkeypatch.setattr(planning_module, "plan_warm_up",
                        lambda inputs, settings: replace(planned.pop(0), plan_id=inputs.plan_id))
    loop = PlanningLoop(driver, config, watcher=None)
    before = driver.applier.applied_index
    assert await loop.plan_now("manual") is None
    assert loop.counters.refused == 1 and driver.applier.applied_index - before <= 1  # a read
    committed = await loop.plan_now("manual")
    assert committed is not None and len(driver.state.plans[committed.plan_id].task_ids) == 10
