"""A rule restricted with `source NAME` plans from that source's summary only (issue 14).

Two sources ship their own summaries through a real one-node driver (ReportSummary commands,
wire-encoded): `shop`'s items are ids below 100,000, `blog`'s the same traffic shifted past
it. The rules come from a rule file on disk, committed with SetRules as `warmctl rules push`
does; the planner and `explain` read the same replicated state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary
from warmd.analysis.wire import encode_summary
from warmd.cli.plans_view import format_explanation
from warmd.config import load
from warmd.rules.compile import check_files
from warmd.runtime.commands.analysis import AnalysisCommands
from warmd.runtime.node.driver import Driver
from warmd.scheduler.merge import merged_summary, source_summaries
from warmd.scheduler.plan_sources import source_sets
from warmd.scheduler.planner import PlanInputs, PlannerSettings, plan_warm_up
from warmd.statemachine.ruleset import SetRules
from warmd.statemachine.state import Applied
from warmd.statemachine.summaries import ReportSummary
from warmd.testing.configs import ONE_NODE, write_config
from warmd.testing.loggen import LogSpec, generate_records

NOW_S = 1_764_300_000.0
BUDGET = 40
BLOG_SHIFT = 100_000
CONFIG = ONE_NODE + """
[caches.web]
kind = "http"
url = "http://127.0.0.1:8000"

[planner]
budget = 40
horizon_ms = 21600000
target = "web"
"""
RULES = """\
source shop {
    path "/var/log/shop/*.log"
}
rule shop-items {
    source shop
    match GET /api/items/{item:int}
    budget top 20
}
rule static {
    match GET /static/app.js
}
"""


def _traffic(seed: int) -> list[Record]:
    start = datetime.fromtimestamp(NOW_S, tz=UTC) - timedelta(days=1)
    return generate_records(LogSpec(seed=seed, start=start, days=1.0, requests_per_day=8_000))


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return _traffic(seed=4)


@pytest.fixture(scope="module")
def blog() -> list[Record]:
    """Another site's traffic (as hot as the shop's) whose item ids are all past BLOG_SHIFT."""
    out = []
    for record in _traffic(seed=5):
        head, _, tail = record.target.partition("/api/items/")
        if tail.isdigit():
            record = record._replace(target=f"{head}/api/items/{int(tail) + BLOG_SHIFT}")
        out.append(record)
    return out


def _item_id(target: str) -> int:
    return int(target.rpartition("/")[2])


async def _apply(driver: Driver, command: Any) -> Any:
    result = await driver.propose(command)
    assert isinstance(result, Applied), result
    return result.value


async def _ship(driver: Driver, node_id: int, source: str, records: Sequence[Record]) -> None:
    summary = Summary()
    summary.add_records(records)
    await _apply(driver, ReportSummary(
        node_id=node_id, source=source, sequence=1, lines=len(records), malformed=0,
        data=encode_summary(summary), now_ms=int(NOW_S * 1000) - 5_000))


async def _commit_rules(driver: Driver, tmp_path: Path, text: str) -> Any:
    """Write the rule file, check it as `warmctl rules push` does, and commit it."""
    path = tmp_path / "site.rules"
    path.write_text(text)
    files = [(path.name, path.read_text())]
    checked = check_files(files)
    assert checked.ruleset is not None, checked
    await _apply(driver, SetRules.of(files, int(NOW_S * 1000)))
    return checked.ruleset


def _plan(driver: Driver, ruleset: Any) -> tuple[set[str], str]:
    """The leader's plan from the replicated state, with each source set's summary."""
    records = driver.applier.machine.state.summaries
    ordered = [records[key] for key in sorted(records)]
    summary, problems = merged_summary(ordered)
    assert summary is not None and not problems
    plan = plan_warm_up(PlanInputs(summary, ruleset, "v", "manual", "p-test",
                                   int(NOW_S * 1000),
                                   by_source=source_summaries(ordered, source_sets(ruleset))),
                        PlannerSettings(budget=BUDGET, horizon_s=6 * 3600.0,
                                        default_target="web"))
    return {key for task in plan.tasks for key in task.spec.keys}, plan.note


async def test_a_source_rule_plans_from_its_source_only(driver: Driver, tmp_path: Path,
                                                        records: list[Record],
                                                        blog: list[Record]) -> None:
    """shop-items warms shop's items only, though blog's traffic is as hot; a rule without
    `source` still plans from every source; explain agrees with the plan on both sources."""
    await _ship(driver, 1, "shop", records)
    await _ship(driver, 2, "blog", blog)
    ruleset = await _commit_rules(driver, tmp_path, RULES)
    planned, _ = _plan(driver, ruleset)
    items = [key for key in planned if key.startswith("/api/items/")]
    assert items and all(_item_id(key) < BLOG_SHIFT for key in items)
    assert "/static/app.js" in {key.partition("?")[0] for key in planned}
    commands = AnalysisCommands(driver, load(write_config(tmp_path, CONFIG)),
                                wall_s=lambda: NOW_S)
    for key in items[:5]:
        reply = await commands.explain({"request": key})
        assert reply["would_warm"] and reply["rule"] == "shop-items", reply["why_not"]
        assert 1 <= reply["rank"] <= BUDGET
    blog_item = f"/api/items/{_item_id(items[0]) + BLOG_SHIFT}"
    reply = await commands.explain({"request": blog_item})
    assert not reply["would_warm"] and reply["rule"] == "shop-items"
    assert "not predicted" in reply["why_not"][0] or "below the budget" in reply["why_not"][0]


async def test_a_source_no_node_reports_is_named(driver: Driver, tmp_path: Path,
                                                 blog: list[Record]) -> None:
    """A rule restricted to a source nobody ships plans nothing, and the plan's note and
    explain name the source and where sources are configured."""
    await _ship(driver, 1, "blog", blog)
    ruleset = await _commit_rules(driver, tmp_path, RULES)
    planned, note = _plan(driver, ruleset)
    assert not any(key.startswith("/api/items/") for key in planned)
    assert "rules shop-items: no node reports source shop" in note
    commands = AnalysisCommands(driver, load(write_config(tmp_path, CONFIG)),
                                wall_s=lambda: NOW_S)
    reply = await commands.explain({"request": "/api/items/3"})
    assert not reply["would_warm"]
    assert reply["why_not"] == ["rule shop-items learns from source shop only, and no node "
                                "reports a summary of it (warmd.toml [sources.NAME])"]
    assert "NOT warmed: rule shop-items learns from source shop only" in format_explanation(reply)
