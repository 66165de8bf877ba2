"""The diagnostic tree classifies every kind of parameter, with its evidence."""

from __future__ import annotations

import pytest

from warmd.analysis.summary import Summary, summarise
from warmd.rules.engine import diagnose_all
from warmd.rules.tree import (
    Diagnosis,
    ParamClass,
    ParamOverride,
    SlotFacts,
    TemplateDiagnosis,
    evaluate,
)
from warmd.testing.loggen import LogSpec, generate_records


@pytest.fixture(scope="module")
def diagnoses() -> dict[str, TemplateDiagnosis]:
    return diagnose_all(_summary())


def _summary() -> Summary:
    return summarise(generate_records(LogSpec(seed=5, days=1.0, requests_per_day=8_000)))


@pytest.mark.parametrize(("template", "slot", "expected"), [
    ("/reports/daily?date={}&region={}", "date", ParamClass.DATE_RELATIVE),
    ("/api/series/sensor00?index={}", "index", ParamClass.SEQUENCE),
    ("/api/hourly?slot={}", "slot", ParamClass.SEQUENCE),
    ("/search?page={}&q={}", "page", ParamClass.PAGE),
    ("/search?page={}&q={}", "q", ParamClass.ENUM),
    ("/api/items/{int}", "path[3]", ParamClass.HOT_ID),
    ("/static/app.js?_={}", "_", ParamClass.NONCE),
    ("/account/settings?token={}", "token", ParamClass.SECRET),
])
def test_synthetic_parameters_are_classified(diagnoses: dict[str, TemplateDiagnosis],
                                             template: str, slot: str,
                                             expected: ParamClass) -> None:
    """Each generated parameter gets the class it was generated with."""
    assert diagnoses[template].slots[slot].param_class is expected


def test_date_relative_carries_offset_and_format(diagnoses: dict[str, TemplateDiagnosis]) -> None:
    """A report date one day after the request is DATE_RELATIVE with offset +1 and format."""
    found = diagnoses["/reports/daily?date={}&region={}"].slots["date"]
    assert (found.date_offset_days, found.date_format) == (1, "%Y-%m-%d")


def test_evidence_names_test_statistic_and_threshold(
        diagnoses: dict[str, TemplateDiagnosis]) -> None:
    """The deciding evidence says which test, which statistic and which threshold held."""
    found = diagnoses["/static/app.js?_={}"].slots["_"]
    decisive = found.evidence[-1]
    assert decisive.test == "every value new (before sequence)" and decisive.held
    assert decisive.value <= decisive.threshold == 1.25
    assert found.drop_from_key and not found.never_warm
    assert "requests / distinct values" in str(decisive)


def _facts(**changes: object) -> SlotFacts:
    base = dict(name="v", count=500, distinct=100.0, clients=50.0, value_client_pairs=500.0,
                sampled_distinct=100.0, sampled_rows=400,
                type_shares={"word": 1.0}, top_values=(("a", 30),), top_offset=None,
                top_offset_share=0.0, increases=0, decreases=0)
    base.update(changes)
    return SlotFacts(**base)  # type: ignore[arg-type]


def test_values_tied_to_one_client_are_user_scoped() -> None:
    """Values reused, each by a single client, are USER_SCOPED and never warmed."""
    found = evaluate(_facts(value_client_pairs=105.0))
    assert found.param_class is ParamClass.USER_SCOPED and found.never_warm
    assert evaluate(_facts()).param_class is ParamClass.HOT_ID


def test_single_value_is_constant_and_emails_are_secret() -> None:
    """One distinct value is CONSTANT; e-mail values are SECRET whatever the name."""
    assert evaluate(_facts(distinct=1.0)).param_class is ParamClass.CONSTANT
    emails = evaluate(_facts(type_shares={"email": 0.9, "word": 0.1}))
    assert emails.param_class is ParamClass.SECRET


def test_too_few_samples_stay_enum() -> None:
    """With fewer requests than the minimum, the tree does not guess beyond ENUM."""
    found = evaluate(_facts(count=3, distinct=3.0))
    assert found.param_class is ParamClass.ENUM
    assert found.evidence[-1].test == "enough samples" and not found.evidence[-1].held


def test_overrides_from_rules_replace_the_class() -> None:
    """A rule override given as plain data wins over the statistics and is marked."""
    summary = _summary()
    template = "/api/items/{int}"
    overrides = {(template, "path[3]"): ParamOverride(never_warm=True),
                 ("/search?page={}&q={}", "q"): ParamOverride(param_class=ParamClass.NONCE)}
    found = diagnose_all(summary, overrides)
    items: Diagnosis = found[template].slots["path[3]"]
    assert items.overridden and items.never_warm and items.param_class is ParamClass.HOT_ID
    query = found["/search?page={}&q={}"].slots["q"]
    assert query.param_class is ParamClass.NONCE and query.drop_from_key


def test_per_user_values_under_an_innocent_name_are_user_scoped() -> None:
    """Over three days, a feed value that always comes back with its own client is found
    USER_SCOPED from statistics alone, while shared hot ids are not."""
    summary = summarise(generate_records(LogSpec(seed=5, days=3.0, requests_per_day=8_000)))
    found = diagnose_all(summary)
    viewer = found["/api/feed?viewer={}"].slots["viewer"]
    assert viewer.param_class is ParamClass.USER_SCOPED and viewer.never_warm
    assert viewer.evidence[-1].test == "value tied to one client"
    assert found["/api/items/{int}"].slots["path[3]"].param_class is ParamClass.HOT_ID
