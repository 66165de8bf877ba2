"""`explain` and the planner agree on when a rule is planned: a rule with an event trigger of
its own is left out of a new-rules plan, and explain says it is planned only on its trigger
(it used to rank such a request with no word about it, while the new-rules plan omitted it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from warmd.analysis.summary import summarise
from warmd.cli.plans_view import format_explanation
from warmd.rules.compile import load
from warmd.rules.engine import rank
from warmd.scheduler.explain import ExplainSettings, explain_request, parse_request_line
from warmd.scheduler.plan_rules import event_rules
from warmd.scheduler.planner import PlanInputs, PlannerSettings, plan_warm_up
from warmd.testing.loggen import LogSpec, generate_records

AT_MS = 1_709_596_800_000
RULES = """backend reports memcached address="127.0.0.1:11211"
rule daily {
    match GET /reports/daily
    param region auto
    param date auto
    on cache-flush reports
    key "report:{date}:{region}"
    load fetch "http://origin.internal/reports/daily?region={region}&date={date}"
    backend reports
}
rule items {
    match GET /api/items/{item:int}
    backend reports
    key "item:{item}"
    load fetch "http://origin.internal/api/items/{item}"
}
"""


def test_explain_names_the_trigger_a_new_rules_plan_leaves_out() -> None:
    records = [r for r in generate_records(LogSpec(seed=5, days=1.0, requests_per_day=4_000))
               if r.time_s < AT_MS / 1000]
    summary = summarise(records)
    ruleset = load(RULES)
    only = event_rules(ruleset, "new-rules", "")
    assert only == ("items",)
    plan = plan_warm_up(PlanInputs(summary=summary, ruleset=ruleset, rules_version="v1",
                                   trigger="new-rules", plan_id="p-1", now_ms=AT_MS,
                                   only_rules=only),
                        PlannerSettings(default_target="site", budget=250, batch_requests=100))
    assert plan.tasks and {task.spec.rule for task in plan.tasks} == {"items"}
    settings = ExplainSettings(budget=250, horizon_s=6 * 3600)
    report = next(r for r in records if r.target.startswith("/reports/daily"))
    daily = explain_request(summary, ruleset, parse_request_line(f"GET {report.target}"),
                            settings, AT_MS / 1000)
    assert daily["rule"] == "daily" and daily["planned_on"] == ["cache-flush reports"]
    assert "planned   only on cache-flush reports" in format_explanation(daily)
    item = next(r for r in records if r.target.startswith("/api/items/"))
    items = explain_request(summary, ruleset, parse_request_line(f"GET {item.target}"),
                            settings, AT_MS / 1000)
    assert items["rule"] == "items" and items["planned_on"] == []


def test_zero_config_explain_shows_the_self_backtest_split() -> None:
    """With history enough to replay yesterday's window, explain shows the request's
    template's winning candidate, its replayed hits per key and budget share, and the
    per-template table; they are the planner's own split (the engine's `rank`)."""
    start = datetime.fromtimestamp(AT_MS / 1000, UTC) - timedelta(days=3)
    records = [r for r in generate_records(LogSpec(seed=6, start=start, days=3.0,
                                                   requests_per_day=6_000))
               if r.time_s < AT_MS / 1000]
    summary = summarise(records)
    settings = ExplainSettings(budget=200, horizon_s=6 * 3600)
    shares = rank(summary, AT_MS / 1000, settings.horizon_s, settings.budget)[1]
    assert shares
    item = next(r for r in records if r.target.startswith("/api/items/"))
    reply = explain_request(summary, None, parse_request_line(f"GET {item.target}"),
                            settings, AT_MS / 1000)
    own = next(s for s in shares if s.template == reply["template"])
    assert reply["template_share"]["winner"] == own.winner
    assert reply["template_share"]["keys"] == own.keys > 0
    assert reply["template_share"]["hits_per_key"] == round(own.hits_per_key, 4)
    assert reply["budget_in_shares"] == sum(s.keys for s in shares)
    assert {row["template"] for row in reply["self_backtest"]} == {s.template for s in shares}
    text = format_explanation(reply)
    assert f"backtest  winner {own.winner}: {own.keys:,} keys" in text
    assert "self-backtest on the same window yesterday (and before), per template" in text
    with_rules = explain_request(summary, load(RULES), parse_request_line(f"GET {item.target}"),
                                 settings, AT_MS / 1000)
    assert with_rules["self_backtest"] == [] and "backtest  " not in format_explanation(with_rules)
