"""The `explain`, `plans` and `summaries` admin handlers and the status warm-up block, on a real
one-node driver whose state is filled by proposing real commands (ReportSummary with summaries
encoded by the wire format, SetRules, SubmitPlan, Cancel, RecordEffect)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from warmd.admin.protocol import ErrorCode
from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary
from warmd.analysis.wire import encode_summary
from warmd.cli.plans_view import (
    format_explanation,
    format_plans,
    format_summaries,
    format_warm_up,
)
from warmd.config import Config, load
from warmd.errors import AdminError
from warmd.rules.compile import load as load_rules
from warmd.runtime.commands.analysis import AnalysisCommands
from warmd.runtime.commands.cluster import ClusterCommands
from warmd.runtime.ingest.pipeline import LogPipeline
from warmd.runtime.node.driver import Driver
from warmd.scheduler.explain import parse_request_line
from warmd.scheduler.merge import merged_summary
from warmd.scheduler.planner import PlanInputs, PlannerSettings, plan_warm_up
from warmd.statemachine.commands import (
    Cancel,
    Command,
    PlannedTask,
    RecordEffect,
    SubmitPlan,
    TaskSpec,
)
from warmd.statemachine.ruleset import SetRules
from warmd.statemachine.state import Applied
from warmd.statemachine.summaries import ReportSummary
from warmd.testing.configs import ONE_NODE, write_config
from warmd.testing.loggen import LogSpec, generate_lines, generate_records

BUDGET = 60
NOW_S = 1_764_300_000.0  # the moment every test explains and plans at
CONFIG = ONE_NODE + """
[caches.web]
kind = "http"
url = "http://127.0.0.1:8000"

[planner]
budget = 60
horizon_ms = 21600000
target = "web"
"""
RULES = """\
rule items {
    match GET /api/items/{item:int}
    budget top 3
}
rule search {
    match GET /search
    param q never-warm
}
rule static {
    match GET /static/app.js
}
"""


def _config(directory: Path, extra: str = "", base: str = CONFIG) -> Config:
    return load(write_config(directory, base + extra))


@pytest.fixture(scope="module")
def records() -> list[Record]:
    """A day of generated traffic ending at NOW_S (dates, pages, hot ids, nonces, tokens)."""
    start = datetime.fromtimestamp(NOW_S, tz=UTC) - timedelta(days=1)
    return generate_records(LogSpec(seed=3, start=start, days=1.0, requests_per_day=12_000))


def _commands(driver: Driver, tmp_path: Path) -> AnalysisCommands:
    return AnalysisCommands(driver, _config(tmp_path), wall_s=lambda: NOW_S)


async def _apply(driver: Driver, command: Command) -> Any:
    result = await driver.propose(command)
    assert isinstance(result, Applied), result
    return result.value


def _summary(records: Sequence[Record]) -> Summary:
    summary = Summary()
    summary.add_records(records)
    return summary


async def _report(driver: Driver, node_id: int, source: str, records: Sequence[Record],
                  sequence: int = 1, data: bytes | None = None) -> None:
    await _apply(driver, ReportSummary(
        node_id=node_id, source=source, sequence=sequence, lines=len(records), malformed=2,
        data=encode_summary(_summary(records)) if data is None else data,
        now_ms=int(NOW_S * 1000) - 5_000))


async def _ship_halves(driver: Driver, records: list[Record]) -> None:
    """Two nodes each ship the summary of half the traffic (as two hosts would)."""
    await _report(driver, 1, "nginx", records[0::2])
    await _report(driver, 2, "nginx", records[1::2])


def _planned_keys(driver: Driver, ruleset: Any, version: str = "") -> set[str]:
    """What the leader's planner would warm now, from the same replicated state."""
    summary, problems = merged_summary(driver.applier.machine.state.summaries.values())
    assert summary is not None and not problems
    plan = plan_warm_up(PlanInputs(summary, ruleset, version, "manual", "p-test",
                                   int(NOW_S * 1000)),
                        PlannerSettings(budget=BUDGET, horizon_s=6 * 3600.0, default_target="web"))
    return {key for task in plan.tasks for key in task.spec.keys}


async def test_explain_without_summaries_is_a_clear_failure(driver: Driver, tmp_path: Path) -> None:
    """Before any node shipped a summary, explain fails with a message naming [sources]."""
    with pytest.raises(AdminError) as caught:
        await _commands(driver, tmp_path).explain({"request": "GET /api/items/1"})
    assert caught.value.code == ErrorCode.FAILED
    assert "no node has shipped a summary yet; is [sources] configured?" in str(caught.value)


@pytest.mark.parametrize("request_line", ["", "GET", "FETCH /x", "GET a b c", "GET api/items"])
async def test_explain_refuses_a_malformed_request_line(driver: Driver, tmp_path: Path,
                                                        request_line: str) -> None:
    """A malformed request line is a bad_request (exit 64) that says what was expected."""
    with pytest.raises(AdminError) as caught:
        await _commands(driver, tmp_path).explain({"request": request_line})
    assert caught.value.code == ErrorCode.BAD_REQUEST and "'GET /path?query'" in str(caught.value)


def test_request_line_forms_are_understood() -> None:
    """A bare path, a lowercase method, an HTTP version and a full URL all parse."""
    assert parse_request_line("/a?b=1").text == "GET /a?b=1"
    assert parse_request_line("head /a HTTP/1.1").text == "HEAD /a"
    assert parse_request_line("GET http://shop.example/a/b?c=2").text == "GET /a/b?c=2"


async def test_zero_config_explain_agrees_with_the_planner(driver: Driver, tmp_path: Path,
                                                          records: list[Record]) -> None:
    """For planned and unplanned requests alike, explain's verdict is the planner's choice."""
    await _ship_halves(driver, records)
    commands = _commands(driver, tmp_path)
    planned = _planned_keys(driver, None)
    assert len(planned) == BUDGET
    seen = sorted({record.target for record in records if record.method == "GET"})
    checked = sorted(planned)[:15] + random.Random(5).sample(seen, 25)
    below = []
    for target in checked:
        reply = await commands.explain({"request": target})
        assert reply["zero_config"] and reply["rule"] is None
        assert reply["would_warm"] == (reply["canonical"] in planned), (target, reply["why_not"])
        if reply["would_warm"]:
            assert 1 <= reply["rank"] <= BUDGET and reply["expected_hits"] > 0
        else:
            assert reply["why_not"]
        if reply["why_not"][:1] == [f"below the budget: rank {reply['rank']}, "
                                    f"the plan keeps the best {BUDGET}"]:
            below.append(reply["rank"])
    assert below and min(below) > BUDGET


async def test_zero_config_explain_names_its_reasons(driver: Driver, tmp_path: Path,
                                                     records: list[Record]) -> None:
    """A secret token is never-warm, a nonce is dropped from the key (and the key form is
    explained as its template), an unseen path is unknown, a POST is never warmed; each slot
    carries its evidence."""
    await _ship_halves(driver, records)
    commands = _commands(driver, tmp_path)
    token = await commands.explain({"request": "GET /account/settings?token=tok00001x000000001"})
    assert not token["would_warm"] and token["why_not"] == ["never-warm: slot token is secret"]
    static = await commands.explain({"request": "/static/app.js?_=12345"})
    assert static["canonical"] == "/static/app.js"
    assert [slot["class"] for slot in static["slots"]] == ["nonce"]
    assert static["slots"][0]["drop_from_key"] and static["slots"][0]["evidence"]
    as_key = await commands.explain({"request": "/static/app.js"})  # a plan's key form
    assert as_key["key_form"] and as_key["template"] == "/static/app.js?_={}"
    assert as_key["canonical"] == "/static/app.js" and as_key["rank"] == static["rank"] >= 1
    unknown = await commands.explain({"request": "GET /never/seen"})
    assert not unknown["known_template"]
    assert unknown["why_not"] == ["template never seen in the analysed logs"]
    post = await commands.explain({"request": "POST /static/app.js?_=1"})
    assert post["why_not"] == ["method POST is never warmed"]
    assert token["summaries"]["nodes"] == 2 and token["summaries"]["lines"] == len(records)


async def test_explain_with_rules_owner_never_warm_caps_and_unselected(
        driver: Driver, tmp_path: Path, records: list[Record]) -> None:
    """Under committed rules: the owning rule is named, a rule's never-warm param, its
    `budget top` cap and a template no rule selects each give their reason, and every verdict
    matches the planner's plan from the same rules."""
    await _ship_halves(driver, records)
    version = await _apply(driver, SetRules.of([("site.rules", RULES)], int(NOW_S * 1000)))
    commands = _commands(driver, tmp_path)
    planned = _planned_keys(driver, load_rules(RULES), version)
    assert sum(key.startswith("/api/items/") for key in planned) == 3
    search = await commands.explain({"request": "/search?page=1&q=shoes"})
    assert search["rule"] == "search" and not search["would_warm"]
    assert any("never-warm" in reason and "q" in reason for reason in search["why_not"])
    reports = await commands.explain({"request": "/reports/daily?region=region01&date=2025-11-28"})
    assert reports["rule"] is None and reports["why_not"][0].startswith("not selected by any rule")
    seen_items = sorted({record.target for record in records
                         if record.target.startswith("/api/items/")})
    items = sorted(key for key in planned if key.startswith("/api/items/")) + seen_items[:30]
    verdicts = [await commands.explain({"request": target}) for target in items]
    assert all(reply["would_warm"] for reply in verdicts[:3])
    capped = [reply for reply in verdicts if reply["why_not"][:1] == [
        "below the budget of rule items: its share is full of better requests"]]
    assert capped and all(reply["rule"] == "items" for reply in verdicts)
    for reply in verdicts:
        assert reply["would_warm"] == (reply["canonical"] in planned)
    assert verdicts[0]["rules_version"] == version[:12]


async def test_explain_sees_a_newer_report(driver: Driver, tmp_path: Path,
                                           records: list[Record]) -> None:
    """The merged summary is remade when a node ships a newer report (counts grow)."""
    await _report(driver, 1, "nginx", records[: len(records) // 2])
    commands = _commands(driver, tmp_path)
    first = await commands.explain({"request": "/api/items/0"})
    await _report(driver, 1, "nginx", records, sequence=2)
    second = await commands.explain({"request": "/api/items/0"})
    assert second["template_count"] > first["template_count"]
    assert second["summaries"]["lines"] == len(records)


async def test_summaries_list_reports_and_name_a_corrupt_one(driver: Driver, tmp_path: Path,
                                                             records: list[Record]) -> None:
    """Each (node, source) shows lines, malformed, age and size; an undecodable report is
    named in summaries and skipped (and named) by explain."""
    await _ship_halves(driver, records)
    await _report(driver, 3, "app", records[:10], data=b"WSM\x01 not a summary")
    commands = _commands(driver, tmp_path)
    reply = await commands.summaries({})
    rows = reply["summaries"]
    assert [(row["node_id"], row["source"]) for row in rows] == [(1, "nginx"), (2, "nginx"), (3, "app")]
    assert rows[0]["lines"] == len(records[0::2]) and rows[0]["malformed"] == 2
    assert rows[0]["age_s"] == 5.0 and rows[0]["bytes"] > 1000 and rows[0]["problem"] == ""
    assert rows[2]["problem"] and rows[2]["bytes"] == len(b"WSM\x01 not a summary")
    assert reply["total"]["nodes"] == 3 and reply["total"]["sources"] == 2
    text = format_summaries(reply)
    assert "nginx" in text and "3 nodes, 2 sources" in text
    explained = await commands.explain({"request": "/api/items/0"})
    assert len(explained["problems"]) == 1 and "node 3" in explained["problems"][0]


def _plan(plan_id: str, task_count: int, watch: str = "") -> SubmitPlan:
    tasks = tuple(PlannedTask(task_id=f"{plan_id}-{number}", spec=TaskSpec(
        keys=(f"/k{number}",), target="web", plan_id=plan_id)) for number in range(task_count))
    return SubmitPlan(plan_id=plan_id, trigger="cache-flush:redis", rules_version="ab" * 32,
                      requests=task_count, tasks=tasks, now_ms=int(NOW_S * 1000), watch=watch)


async def test_plans_newest_first_with_task_states_and_effect(driver: Driver, tmp_path: Path) -> None:
    """Plans come newest first with tasks counted by state, the effect's hit rates once
    recorded, "measuring" while a watched plan has none, and the limit respected."""
    await _apply(driver, _plan("p-1", 2, watch="redis"))
    await _apply(driver, _plan("p-2", 1, watch="redis"))
    await _apply(driver, Cancel(task_id="p-1-0", now_ms=int(NOW_S * 1000), reason="test"))
    await _apply(driver, RecordEffect(plan_id="p-1", cache="redis", before_hits=20,
                                      before_misses=80, after_hits=90, after_misses=10,
                                      window_ms=60_000, now_ms=int(NOW_S * 1000)))
    commands = _commands(driver, tmp_path)
    reply = await commands.plans({"limit": 20})
    newest, oldest = reply["plans"]
    assert (newest["plan_id"], oldest["plan_id"]) == ("p-2", "p-1")
    assert oldest["tasks_by_state"] == {"CANCELLED": 1, "PENDING": 1}
    assert oldest["effect"]["before_hit_rate"] == 0.2 and oldest["effect"]["after_hit_rate"] == 0.9
    assert newest["effect"] is None and newest["effect_status"] == "measuring"
    assert oldest["rules_version_short"] == "ab" * 6
    assert "20.0% -> 90.0%" in format_plans(reply) and "measuring" in format_plans(reply)
    assert [plan["plan_id"] for plan in (await commands.plans({"limit": 1}))["plans"]] == ["p-2"]
    with pytest.raises(AdminError) as caught:
        await commands.plans({"limit": 0})
    assert caught.value.code == ErrorCode.BAD_REQUEST


async def test_status_has_a_warm_up_block(driver: Driver, records: list[Record]) -> None:
    """`status` carries the last plan (id, trigger, tasks by state, effect) and summary totals."""
    status = ClusterCommands(driver).status({})
    assert status["warm_up"]["last_plan"] is None
    assert format_warm_up(status["warm_up"], int(NOW_S * 1000))[0] == "warm-up: no plan yet"
    await _apply(driver, _plan("p-9", 2))
    await _report(driver, 1, "nginx", records[:100])
    block = ClusterCommands(driver).status({})["warm_up"]
    assert block["last_plan"]["plan_id"] == "p-9"
    assert block["last_plan"]["tasks_by_state"] == {"PENDING": 2}
    assert block["last_plan"]["effect_status"] == "not watched"
    assert block["summaries"]["lines"] == 100 and block["summaries"]["nodes"] == 1
    lines = format_warm_up(block, int(NOW_S * 1000))
    assert "p-9 (cache-flush:redis)" in lines[0] and "PENDING 2" in lines[0]
    assert lines[1].startswith("summaries: 1 nodes, 1 sources, 100 lines")


async def test_explanation_text_shows_verdict_rule_and_evidence(
        driver: Driver, tmp_path: Path, records: list[Record]) -> None:
    """The human form leads with the verdict and lists each slot with its decisive test."""
    await _ship_halves(driver, records)
    reply = await _commands(driver, tmp_path).explain({"request": "/search?page=1&q=shoes"})
    text = format_explanation(reply)
    assert text.splitlines()[0] == "GET /search?page=1&q=shoes"
    assert "verdict" in text and "template  /search?page={}&q={}" in text
    assert "=> " in text and "page" in text and "zero-config" in text


async def test_this_nodes_sources_show_in_summaries_and_explain(
        driver: Driver, tmp_path: Path, records: list[Record]) -> None:
    """With the node's real log pipeline attached, a source that cannot be read is named in
    explain's no-summary error, and summaries list this node's sources beside the reports."""
    (tmp_path / "web.log").write_text("\n".join(
        generate_lines(LogSpec(seed=3, days=0.05, requests_per_day=20_000))) + "\n")
    (tmp_path / "app.log").write_text("not a log line\n" * 50)
    config = _config(tmp_path, f"""
[sources.web]
paths = ["{tmp_path / 'web.log'}"]
format = "combined"

[sources.app]
paths = ["{tmp_path / 'app.log'}"]
format = "auto"
""")
    pipeline = LogPipeline(1, config.sources, config.analysis, driver.propose)
    commands = AnalysisCommands(driver, config, wall_s=lambda: NOW_S)
    commands.attach_pipeline(pipeline.status)
    try:
        await pipeline.poll_once()
        await pipeline.poll_once()  # `auto` waits one more poll before it gives up detecting
        with pytest.raises(AdminError) as caught:
            await commands.explain({"request": "/api/items/0"})
        assert "this node's source app:" in str(caught.value)
        assert await pipeline.ship_once() == 1
        reply = await commands.summaries({})
        assert [row["source"] for row in reply["summaries"]] == ["web"]
        local = {source["source"]: source for source in reply["local"]}
        assert local["web"]["lines_read"] == local["web"]["lines"] > 0
        assert local["app"]["last_error"] and local["web"]["last_error"] is None
        text = format_summaries(reply)
        assert "this node: web: 1 files" in text and "this node: app:" in text
        assert (await commands.explain({"request": "/api/items/0"}))["known_template"]
    finally:
        await asyncio.to_thread(pipeline.close)


async def test_a_committed_set_that_does_not_compile_here_is_a_clear_failure(
        driver: Driver, tmp_path: Path, records: list[Record]) -> None:
    """A committed rule naming a cache this node does not configure fails explain with the
    file, line and problem instead of explaining without the rules."""
    await _ship_halves(driver, records)
    text = "rule items {\n    match GET /api/items/{item:int}\n    backend nosuch\n}\n"
    await _apply(driver, SetRules.of([("bad.rules", text)], int(NOW_S * 1000)))
    with pytest.raises(AdminError) as caught:
        await _commands(driver, tmp_path).explain({"request": "/api/items/0"})
    assert caught.value.code == ErrorCode.FAILED
    assert "does not compile on this node: bad.rules:3:" in str(caught.value)


async def test_without_a_target_cache_nothing_is_warmed_and_explain_says_why(
        driver: Driver, tmp_path: Path, records: list[Record]) -> None:
    """With no [planner] target and no http cache, zero-config plans have nowhere to warm
    into, and explain says so even for the best request."""
    await _ship_halves(driver, records)
    no_cache = CONFIG.split("[caches.web]")[0] + "[planner]\nbudget = 60\n"
    commands = AnalysisCommands(driver, _config(tmp_path, base=no_cache), wall_s=lambda: NOW_S)
    reply = await commands.explain({"request": "/api/items/0"})
    assert reply["rank"] <= 3 and not reply["would_warm"]
    assert reply["why_not"][0].startswith("no target cache: zero-config plans warm [planner]")
