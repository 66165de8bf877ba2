"""Rules applied to prediction: selection, overrides, drop, never-warm and per-rule budgets."""

from __future__ import annotations

import pytest

from warmd.analysis.formats import LineParser, Record, format_from_spec
from warmd.rules.apply import predict_records, rule_caps, select_records, tree_override
from warmd.rules.compile import load
from warmd.rules.compiled import OverrideKind, ParamOverride
from warmd.rules.tree import ParamClass
from warmd.testing.loggen import LogSpec, generate_lines

AT_S = 1_709_596_800.0  # 2024-03-05T00:00:00Z, one day into the generated log
HORIZON_S = 6 * 3600.0


@pytest.fixture(scope="module")
def history() -> list[Record]:
    parser = LineParser(format_from_spec("combined"))
    records = [parser.parse(line) for line in generate_lines(LogSpec(seed=5, days=1.0,
                                                                     requests_per_day=4_000))]
    return [r for r in records if r is not None and r.time_s < AT_S]


def targets(ruleset_text: str, history: list[Record], budget: int = 200) -> list[str]:
    predictions, _ = predict_records(load(ruleset_text), history, AT_S, HORIZON_S, budget)
    return [p.target for p in predictions]


def test_only_selected_requests_are_predicted(history: list[Record]) -> None:
    """With one rule for items, every prediction is an item and other requests count as unmatched."""
    text = "rule items {\n    match GET /api/items/{item:int}\n}\n"
    predicted = targets(text, history)
    assert predicted and all(t.startswith("/api/items/") for t in predicted)
    selected = select_records(load(text), history)
    assert selected.unmatched > 0 and len(selected.records) + selected.unmatched == len(history)
    assert set(selected.rule_names) == {"items"}


def test_budget_top_caps_a_rule_and_others_fill_the_budget(history: list[Record]) -> None:
    """`budget top 3` leaves items at 3 predictions while search fills the rest of the budget."""
    body = ("rule items {{\n    match GET /api/items/{{item:int}}\n{cap}}}\n"
            "rule search {{\n    match GET /search\n}}\n")
    free = targets(body.format(cap=""), history, budget=40)
    capped = targets(body.format(cap="    budget top 3\n"), history, budget=40)
    assert sum(t.startswith("/api/items/") for t in free) > 3
    assert sum(t.startswith("/api/items/") for t in capped) == 3
    assert len(capped) == 40


def test_budget_share_is_a_fraction_of_the_budget() -> None:
    """`budget 10% of capacity` with a budget of 50 allows 5 requests."""
    ruleset = load("rule a {\n    match GET /a\n    budget 10% of capacity\n}\n")
    assert rule_caps(ruleset, 50) == {"a": 5}


def test_never_warm_parameter_removes_its_requests(history: list[Record]) -> None:
    """`param q never-warm` on search removes every search prediction."""
    body = "rule search {{\n    match GET /search\n{param}}}\n"
    assert targets(body.format(param=""), history)
    assert targets(body.format(param="    param q never-warm\n"), history) == []


def test_drop_removes_the_parameter_from_predicted_keys(history: list[Record]) -> None:
    """`param q drop` predicts search pages without the q parameter."""
    body = "rule search {{\n    match GET /search\n{param}}}\n"
    assert any("q=" in t for t in targets(body.format(param=""), history))
    dropped = targets(body.format(param="    param q drop\n"), history)
    assert dropped and not any("q=" in t for t in dropped)


def test_class_override_changes_what_is_predicted(history: list[Record]) -> None:
    """Forcing the date of daily reports to `enum` predicts the seen dates instead of re-anchored ones."""
    body = "rule reports {{\n    match GET /reports/daily\n{param}}}\n"
    anchored = targets(body.format(param=""), history)
    assert anchored and all("date=2024-03-04" not in t for t in anchored)
    as_enum = targets(body.format(param="    param date enum\n"), history)
    assert any("date=2024-03-04" in t for t in as_enum)


def test_path_capture_override_lands_on_its_segment(history: list[Record]) -> None:
    """`param item never-warm` on a path capture stops warming that path."""
    text = "rule items {\n    match GET /api/items/{item:int}\n    param item never-warm\n}\n"
    assert targets(text, history) == []


def test_tree_override_maps_every_kind() -> None:
    """Each `param` kind becomes the tree override that means the same thing."""
    assert tree_override(ParamOverride("x", OverrideKind.DROP)).drop_from_key
    assert tree_override(ParamOverride("x", OverrideKind.NEVER_WARM)).never_warm
    date = tree_override(ParamOverride("x", OverrideKind.DATE_RELATIVE, offset_s=86_400.0,
                                       date_format="%Y%m%d"))
    assert (date.param_class, date.date_offset_days, date.date_format) == (
        ParamClass.DATE_RELATIVE, 1, "%Y%m%d")
    assert tree_override(ParamOverride("x", OverrideKind.PAGE)).param_class is ParamClass.PAGE


def test_date_relative_offset_of_a_rule_moves_the_predicted_day(history: list[Record]) -> None:
    """`offset=+2d` predicts the day after tomorrow's reports where the log alone gives tomorrow's."""
    body = "rule reports {{\n    match GET /reports/daily\n{param}}}\n"
    measured = targets(body.format(param=""), history)
    assert any("date=2024-03-06" in t for t in measured)
    assert not any("date=2024-03-07" in t for t in measured)
    forced = targets(body.format(param="    param date date-relative offset=+2d\n"), history)
    assert forced and all("date=2024-03-07" in t for t in forced)
