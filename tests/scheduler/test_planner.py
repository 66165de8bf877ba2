"""The leader's pure planner: summaries + rules -> one SubmitPlan, and when triggers fire."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary
from warmd.errors import ConfigError
from warmd.rules.compile import load
from warmd.rules.compiled import CompiledRuleSet
from warmd.rules.engine import predict
from warmd.scheduler.plan_rules import latest_cron_ms, selection_of, template_owners
from warmd.scheduler.planner import (
    PlanInputs,
    PlannerSettings,
    event_rules,
    plan_warm_up,
    triggers_due,
)
from warmd.statemachine.commands import SubmitPlan, decode_command, encode_command
from warmd.testing.loggen import LogSpec, generate_records

AT_MS = 1_709_596_800_000  # 2024-03-05T00:00:00Z: the end of the generated day of log
HOUR_MS = 3_600_000
SETTINGS = PlannerSettings(default_target="site", budget=250, batch_requests=100)
BACKENDS = 'backend reports memcached address="127.0.0.1:11211"\n'


@pytest.fixture(scope="module")
def records() -> list[Record]:
    generated = generate_records(LogSpec(seed=5, days=1.0, requests_per_day=4_000))
    return [record for record in generated if record.time_s < AT_MS / 1000]


@pytest.fixture(scope="module")
def summary(records: list[Record]) -> Summary:
    built = Summary()
    built.add_records(records)
    return built


def inputs(summary: Summary | None, ruleset: CompiledRuleSet | None = None,
           **changes: object) -> PlanInputs:
    fields: dict = dict(summary=summary, ruleset=ruleset,
                        rules_version="v1" if ruleset else "", trigger="schedule",
                        plan_id="p-1", now_ms=AT_MS)
    fields.update(changes)
    return PlanInputs(**fields)


def all_keys(plan: SubmitPlan) -> list[str]:
    return [key for task in plan.tasks for key in task.spec.keys]


def keys_of(plan: SubmitPlan, rule: str) -> list[str]:
    return [key for task in plan.tasks if task.spec.rule == rule for key in task.spec.keys]


# ---- zero-config ------------------------------------------------------------------------------


def test_zero_config_warms_tomorrows_dates_never_seen(records: list[Record],
                                                      summary: Summary) -> None:
    """Zero-config plans reports for 2024-03-06, a date no logged request carries."""
    keys = all_keys(plan_warm_up(inputs(summary), SETTINGS))
    assert not any("2024-03-06" in record.target for record in records)
    assert any("/reports/daily?" in key and "date=2024-03-06" in key for key in keys)


def test_zero_config_drops_nonces_and_user_scoped_requests(summary: Summary) -> None:
    """The cache-buster leaves the key (app.js is warmed bare) and per-user tokens are never warmed."""
    keys = all_keys(plan_warm_up(inputs(summary), SETTINGS))
    assert "/static/app.js" in keys
    assert not any("_=" in key or "token=" in key for key in keys)


def test_zero_config_batches_follow_the_ranking(summary: Summary) -> None:
    """A budget of 250 in batches of 100 makes tasks of 100, 100 and 50 keys, best first."""
    plan = plan_warm_up(inputs(summary), SETTINGS)
    assert [len(task.spec.keys) for task in plan.tasks] == [100, 100, 50]
    assert plan.requests == 250
    ranked = predict(summary, AT_MS / 1000, SETTINGS.horizon_s, SETTINGS.budget)
    assert all_keys(plan) == [prediction.target for prediction in ranked]


def test_zero_config_task_fields(summary: Summary) -> None:
    """Every task carries the plan id, its own id, the default target/loader, priority and deadline."""
    settings = PlannerSettings(default_target="site", budget=30, batch_requests=10,
                               task_deadline_s=1800.0, priority=60)
    plan = plan_warm_up(inputs(summary, plan_id="p-7-schedule", watch="site"), settings)
    assert (plan.plan_id, plan.trigger, plan.rules_version, plan.watch, plan.note) == (
        "p-7-schedule", "schedule", "", "site", "")
    assert [task.task_id for task in plan.tasks] == [f"p-7-schedule-{n}" for n in (1, 2, 3)]
    for task in plan.tasks:
        spec = task.spec
        assert (spec.target, spec.loader, spec.rule, spec.priority) == ("site", "replay", "", 60)
        assert (spec.plan_id, spec.rules_version) == ("p-7-schedule", "")
        assert (spec.not_before_ms, spec.deadline_ms) == (AT_MS, AT_MS + 1_800_000)
        assert spec.cache_keys == ()


def test_no_summary_gives_an_empty_plan_with_a_note() -> None:
    """Before any log is analysed the plan is empty and says why."""
    plan = plan_warm_up(inputs(None), SETTINGS)
    assert plan.tasks == () and plan.requests == 0
    assert "no summary" in plan.note


def test_no_default_target_gives_an_empty_plan_with_a_note(summary: Summary) -> None:
    """Zero-config without a default target cache plans nothing and names the setting."""
    plan = plan_warm_up(inputs(summary), PlannerSettings(budget=50))
    assert plan.tasks == () and "default_target" in plan.note


def test_plan_survives_the_wire(summary: Summary) -> None:
    """The plan is a valid command: it encodes and decodes to an equal SubmitPlan."""
    plan = plan_warm_up(inputs(summary), SETTINGS)
    assert decode_command(encode_command(plan)) == plan


def test_same_inputs_give_an_equal_plan(records: list[Record], summary: Summary) -> None:
    """Planning twice, and from a summary rebuilt from the same records, yields equal plans."""
    rebuilt = Summary()
    rebuilt.add_records(records)
    ruleset = load(BACKENDS + report_rule("") + ITEMS_RULE.format(extra=""))
    for rules in (None, ruleset):
        first = plan_warm_up(inputs(summary, rules), SETTINGS)
        assert first.tasks
        assert plan_warm_up(inputs(summary, rules), SETTINGS) == first
        assert plan_warm_up(inputs(rebuilt, rules), SETTINGS) == first


def test_merged_summary_plans_like_a_single_one(records: list[Record]) -> None:
    """A leader's merge of two nodes' summaries still predicts tomorrow's reports."""
    halves = [Summary(), Summary()]
    for number, record in enumerate(records):
        halves[number % 2].add_records([record])
    halves[0].merge(halves[1])
    keys = all_keys(plan_warm_up(inputs(halves[0]), SETTINGS))
    assert len(keys) == SETTINGS.budget
    assert any("date=2024-03-06" in key for key in keys)


# ---- with rules -------------------------------------------------------------------------------

REPORT_RULE = """
rule daily {{
    match GET /reports/daily
    param region auto
    param date {date_param}
{extra}    key "report:{{date}}:{{region}}"
    load fetch "http://origin.internal/reports/daily?region={{region}}&date={{date}}"
    backend reports
}}
"""


def report_rule(extra: str = "", date_param: str = "auto") -> str:
    """The daily-report rule with `extra` statements and the date parameter's class."""
    return REPORT_RULE.format(extra=extra, date_param=date_param)


ITEMS_RULE = """
rule items {{
    match GET /api/items/{{item:int}}
{extra}}}
"""
SEARCH_RULE = """
rule search {{
    match GET /search
{extra}}}
"""


def test_rule_policy_lands_on_every_task(summary: Summary) -> None:
    """Backend, fetch loader, key template, ttl, priority, deadline, labels, gate and limits reach the spec."""
    extra = ('    ttl 26h\n    priority 80\n    deadline 45m\n    nodes zone=eu-west\n'
             '    gate db\n    rate 2.5/s\n    concurrency 4\n    slo p99.5 250ms\n')
    text = (BACKENDS + 'gate db {\n    check file path="/run/ready"\n    timeout 2h\n}\n'
            + report_rule(extra))
    ruleset = load(text)
    plan = plan_warm_up(inputs(summary, ruleset), SETTINGS)
    assert plan.tasks and plan.rules_version == "v1"
    for task in plan.tasks:
        spec = task.spec
        assert (spec.rule, spec.target, spec.loader) == ("daily", "reports", "fetch")
        assert spec.loader_url == ""  # the URLs are rendered per request, into the keys
        assert (spec.ttl_s, spec.priority, spec.deadline_ms) == (93_600, 80, AT_MS + 2_700_000)
        assert spec.required_labels == (("zone", "eu-west"),)
        assert (spec.gate, spec.gate_timeout_ms) == ("db", 7_200_000)
        assert (spec.rate_per_s, spec.concurrency) == (2, 4)
        assert (spec.slo_latency_ms, spec.slo_permille) == (250, 995)
        assert spec.rules_version == "v1" and spec.plan_id == "p-1"
        for url, cache_key in zip(spec.keys, spec.cache_keys, strict=True):
            assert url.startswith("http://origin.internal/reports/daily?region=")
            selection = selection_of(ruleset, url.removeprefix("http://origin.internal"))
            assert selection is not None
            params = selection.params
            assert cache_key == f"report:{params['date']}:{params['region']}"
            assert url.endswith(f"region={params['region']}&date={params['date']}")


def test_date_override_moves_the_planned_day(summary: Summary) -> None:
    """`param date date-relative offset=+2d` plans the day after tomorrow for every report."""
    forced_date = 'date-relative offset=+2d format="%Y-%m-%d"'
    measured = keys_of(plan_warm_up(inputs(summary, load(BACKENDS + report_rule())), SETTINGS),
                       "daily")
    forced = keys_of(plan_warm_up(inputs(summary, load(
        BACKENDS + report_rule(date_param=forced_date))), SETTINGS), "daily")
    assert any("date=2024-03-06" in key for key in measured)
    assert forced and all("date=2024-03-07" in key for key in forced)


def test_where_on_a_param_drops_unselected_predictions(summary: Summary) -> None:
    """A `where param region in [...]` keeps only those regions, even if the template's example has another."""
    wanted = ("region01", "region02", "region03")
    where = f"    where param region in [{', '.join(wanted)}]\n"
    ruleset = load(BACKENDS + report_rule(where))
    everything = keys_of(plan_warm_up(inputs(summary, load(BACKENDS + report_rule(""))), SETTINGS), "daily")
    filtered = keys_of(plan_warm_up(inputs(summary, ruleset), SETTINGS), "daily")
    def regions(keys: list[str]) -> set[str]:
        return {key.partition("region=")[2].partition("&")[0] for key in keys}

    assert regions(filtered) == set(wanted)
    assert len(regions(everything)) > len(wanted)


def test_never_warm_params_are_never_planned(summary: Summary) -> None:
    """`param q never-warm` keeps every search request out while other rules still plan."""
    text = SEARCH_RULE.format(extra="    param q never-warm\n") + ITEMS_RULE.format(extra="")
    plan = plan_warm_up(inputs(summary, load(text)), SETTINGS)
    assert keys_of(plan, "items")
    assert not any(key.startswith("/search") for key in all_keys(plan))


def test_unselected_templates_are_not_warmed(summary: Summary) -> None:
    """With rules, only requests a rule selects are planned: warm-up is opt-in."""
    plan = plan_warm_up(inputs(summary, load(ITEMS_RULE.format(extra=""))), SETTINGS)
    assert plan.tasks and all(key.startswith("/api/items/") for key in all_keys(plan))


def test_per_rule_budget_caps_a_rule_and_others_fill(summary: Summary) -> None:
    """`budget top 5` stops items at five requests while search fills the plan's budget."""
    settings = PlannerSettings(default_target="site", budget=40, batch_requests=25)
    text = ITEMS_RULE.format(extra="    budget top 5\n") + SEARCH_RULE.format(extra="")
    plan = plan_warm_up(inputs(summary, load(text)), settings)
    assert len(keys_of(plan, "items")) == 5
    assert plan.requests == 40 and len(keys_of(plan, "search")) == 35


def test_tasks_never_mix_rules(summary: Summary) -> None:
    """Every key of a task is selected by the rule the task names, and batches respect the size."""
    text = BACKENDS + report_rule("") + ITEMS_RULE.format(extra="") + \
        SEARCH_RULE.format(extra="")
    ruleset = load(text)
    plan = plan_warm_up(inputs(summary, ruleset), PlannerSettings(default_target="site",
                                                                  budget=200, batch_requests=40))
    assert {task.spec.rule for task in plan.tasks} == {"daily", "items", "search"}
    for task in plan.tasks:
        assert 1 <= len(task.spec.keys) <= 40
        rules = {selection_of(ruleset, key).rule for key in task.spec.keys}  # type: ignore[union-attr]
        assert rules == {task.spec.rule}


def test_only_rules_restricts_the_plan(summary: Summary) -> None:
    """A rule's own trigger plans that rule alone."""
    ruleset = load(ITEMS_RULE.format(extra="") + SEARCH_RULE.format(extra=""))
    plan = plan_warm_up(inputs(summary, ruleset, trigger="every:search",
                               only_rules=("search",)), SETTINGS)
    assert plan.tasks and {task.spec.rule for task in plan.tasks} == {"search"}


def test_a_disabled_rule_plans_nothing_and_its_requests_go_to_no_other_rule(
        summary: Summary) -> None:
    """Disabling `search` leaves its tasks out (noted) and every other rule's tasks as they were;
    its requests are not handed to a later rule."""
    ruleset = load(ITEMS_RULE.format(extra="") + SEARCH_RULE.format(extra=""))
    everything = plan_warm_up(inputs(summary, ruleset), SETTINGS)
    assert {task.spec.rule for task in everything.tasks} == {"items", "search"}
    plan = plan_warm_up(inputs(summary, ruleset, disabled_rules=frozenset({"search"})), SETTINGS)
    assert {task.spec.rule for task in plan.tasks} == {"items"}
    assert [task.spec.keys for task in plan.tasks] == [
        task.spec.keys for task in everything.tasks if task.spec.rule == "items"]
    assert "rule search is disabled" in plan.note


def test_rule_without_any_target_is_left_out_with_a_note(summary: Summary) -> None:
    """A rule with no backend warms the default target; with no default either it is noted, not planned."""
    ruleset = load(ITEMS_RULE.format(extra=""))
    assert {t.spec.target for t in plan_warm_up(inputs(summary, ruleset), SETTINGS).tasks} == {
        "site"}
    plan = plan_warm_up(inputs(summary, ruleset), PlannerSettings(budget=50))
    assert plan.tasks == () and "rule items: no backend" in plan.note


def test_example_outside_a_where_still_finds_the_owner(summary: Summary) -> None:
    """A template whose first-seen request fails the rule's `where` is owned through its other requests."""
    stats = summary.templates["/reports/daily?date={}&region={}"]
    example_region = dict(zip(stats.decomposed_example.template.slot_names,
                              stats.decomposed_example.values, strict=True))["region"]
    other = "region00" if example_region != "region00" else "region01"
    ruleset = load(BACKENDS + report_rule(f"    where param region in [{other}]\n"))
    assert template_owners(ruleset, summary) == {"/reports/daily?date={}&region={}": "daily"}


# ---- triggers ---------------------------------------------------------------------------------


def epoch_ms(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp() * 1000)


TRIGGER_RULES = """
backend pages memcached address="127.0.0.1:11211"
gate db {
    check file path="/run/db-ready"
}
schedule nightly {
    cron "0 2 * * *"
    on cache-flush pages
}
rule weekday {
    match GET /a
    cron "30 5 * * mon-fri"
    every 6h
    on gate-ready db
}
rule night {
    match GET /b
    schedule nightly
}
rule plain {
    match GET /c
}
"""


def test_cron_latest_time_in_a_window() -> None:
    """"30 5 * * mon-fri" fired at 05:30 on Monday 2024-03-04 and not on the weekend before."""
    spec = load(TRIGGER_RULES).rule("weekday").triggers[0].cron  # type: ignore[union-attr]
    assert spec is not None
    monday = epoch_ms(2024, 3, 4, 5, 30)
    assert latest_cron_ms(spec, monday - 1, monday) == monday
    assert latest_cron_ms(spec, monday, monday + HOUR_MS) is None
    assert latest_cron_ms(spec, epoch_ms(2024, 3, 1, 6), monday - 1) is None  # Fri 06:00 .. Mon
    assert latest_cron_ms(spec, epoch_ms(2024, 2, 26), monday + 1) == monday


def test_cron_day_of_month_or_day_of_week() -> None:
    """With both day fields restricted, cron fires on either (the 13th, and every Friday)."""
    spec = load('rule r {\n    match GET /r\n    cron "0 0 13 * fri"\n}\n').rule(
        "r").triggers[0].cron  # type: ignore[union-attr]
    assert spec is not None
    wednesday_13th = epoch_ms(2024, 3, 13)
    friday_8th = epoch_ms(2024, 3, 8)
    assert latest_cron_ms(spec, wednesday_13th - 1, wednesday_13th) == wednesday_13th
    assert latest_cron_ms(spec, friday_8th - 1, friday_8th) == friday_8th
    assert latest_cron_ms(spec, epoch_ms(2024, 3, 9), epoch_ms(2024, 3, 12, 23)) is None


def test_triggers_due_for_cron_every_and_schedules() -> None:
    """Cron (inline or via a schedule) is due once its time passes since the last plan; every after its interval."""
    ruleset = load(TRIGGER_RULES)
    monday_0530 = epoch_ms(2024, 3, 4, 5, 30)
    last = {"every:weekday": monday_0530 - HOUR_MS, "cron:weekday": monday_0530 - HOUR_MS,
            "cron:night": monday_0530 - HOUR_MS}
    assert triggers_due(ruleset, last, monday_0530) == [("cron:weekday", ("weekday",))]
    later = monday_0530 + 5 * HOUR_MS
    last["cron:weekday"] = monday_0530
    assert triggers_due(ruleset, last, later) == [("every:weekday", ("weekday",))]
    next_night = epoch_ms(2024, 3, 5, 2)
    last["every:weekday"] = next_night
    assert triggers_due(ruleset, last, next_night) == [("cron:night", ("night",))]


def test_never_planned_triggers() -> None:
    """A never-run `every` is due at once; a never-run cron counts only from `since_ms` (default: the last minute)."""
    ruleset = load(TRIGGER_RULES)
    noon = epoch_ms(2024, 3, 4, 12)
    assert triggers_due(ruleset, {}, noon) == [("every:weekday", ("weekday",))]
    due = triggers_due(ruleset, {}, noon, since_ms=epoch_ms(2024, 3, 4))
    assert due == [("every:weekday", ("weekday",)), ("cron:weekday", ("weekday",)),
                   ("cron:night", ("night",))]
    assert triggers_due(None, {}, noon) == []


def test_event_rules_pick_the_rules_that_name_the_event() -> None:
    """An event plans the rules naming it plus the untriggered ones; () means all, None means none."""
    ruleset = load(TRIGGER_RULES)
    assert event_rules(ruleset, "cache-flush", "pages") == ("night", "plain")
    assert event_rules(ruleset, "gate-ready", "db") == ("weekday", "plain")
    assert event_rules(ruleset, "cache-flush", "other") == ("plain",)
    no_plain = load(TRIGGER_RULES.replace("rule plain {\n    match GET /c\n}\n", ""))
    assert event_rules(no_plain, "cache-restart", "pages") is None
    assert event_rules(None, "cache-flush", "pages") == ()
    no_events = load(ITEMS_RULE.format(extra="    every 1h\n"))
    assert event_rules(no_events, "new-rules") == ()
    with pytest.raises(ValueError, match="unknown event"):
        event_rules(ruleset, "cache-melt", "pages")


# ---- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, field", [
    ({"budget": -1}, "budget"), ({"batch_requests": 0}, "batch_requests"),
    ({"budget": 10_000_000, "batch_requests": 1}, "batch_requests"),
    ({"horizon_s": 0.0}, "horizon_s"), ({"task_deadline_s": float("inf")}, "task_deadline_s"),
    ({"priority": 101}, "priority"), ({"default_loader": "fetch"}, "default_loader"),
    ({"default_loader": "plugin:"}, "default_loader"),
])
def test_bad_settings_are_refused_by_name(changes: dict, field: str) -> None:
    """A bad setting raises ConfigError naming the field."""
    with pytest.raises(ConfigError, match=field):
        PlannerSettings(**changes)


@pytest.mark.parametrize("changes", [
    {"plan_id": ""}, {"trigger": ""}, {"now_ms": -5}, {"plan_id": "p" * 300},
    {"only_rules": ["items"]}, {"only_rules": ("",)},
])
def test_bad_inputs_are_refused(changes: dict) -> None:
    """Malformed plan inputs raise ValueError before any planning."""
    with pytest.raises(ValueError):
        inputs(None, **changes)


def test_budget_zero_plans_nothing(summary: Summary) -> None:
    """A zero budget is a legal setting that plans an empty, explained plan."""
    plan = plan_warm_up(inputs(summary), PlannerSettings(default_target="site", budget=0))
    assert plan.tasks == () and "budget" in plan.note


def test_rule_set_without_rules_plans_zero_config(summary: Summary) -> None:
    """A rule set that only declares backends keeps zero-config planning but records its version."""
    plan = plan_warm_up(inputs(summary, load(BACKENDS)), SETTINGS)
    assert plan.rules_version == "v1" and all(t.spec.rules_version == "v1" for t in plan.tasks)
    assert all_keys(plan) == all_keys(plan_warm_up(inputs(summary), SETTINGS))


def test_unknown_only_rule_is_noted(summary: Summary) -> None:
    """A trigger naming a rule the set no longer has plans nothing and says which rule."""
    plan = plan_warm_up(inputs(summary, load(ITEMS_RULE.format(extra="")),
                               only_rules=("gone",)), SETTINGS)
    assert plan.tasks == () and "gone" in plan.note


@settings(max_examples=25, deadline=None)
@given(budget=st.integers(0, 400), batch=st.integers(1, 150))
def test_plan_shape_for_any_budget_and_batch(summary: Summary, budget: int, batch: int) -> None:
    """For any budget and batch size: at most `budget` keys, full batches but the last, unique ids."""
    planner = PlannerSettings(default_target="site", budget=budget, batch_requests=batch)
    plan = plan_warm_up(inputs(summary), planner)
    sizes = [len(task.spec.keys) for task in plan.tasks]
    assert plan.requests == sum(sizes) <= budget
    assert all(size == batch for size in sizes[:-1]) and all(0 < s <= batch for s in sizes)
    assert len({task.task_id for task in plan.tasks}) == len(plan.tasks)
    assert bool(plan.tasks) != bool(plan.note)


@pytest.mark.parametrize(("ttl", "permille"), [
    ("ttl 26h\n", 100), ("ttl 20h jitter 2h\n", 100), ("ttl 1h jitter 25%\n", 250),
    ("ttl 10m jitter 1s\n", 2)])
def test_the_rules_ttl_jitter_reaches_the_tasks(summary: Summary, ttl: str, permille: int) -> None:
    """`ttl ... jitter` (a share or a duration) becomes thousandths of the TTL on every task;
    without a jitter the executor's 10 % applies."""
    plan = plan_warm_up(inputs(summary, load(BACKENDS + report_rule("    " + ttl))), SETTINGS)
    assert plan.tasks
    assert {task.spec.ttl_jitter_permille for task in plan.tasks} == {permille}
