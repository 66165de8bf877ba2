"""The rule unit-test runner (pure part): test files, selection checks, the engine hook."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from warmd.analysis.formats import Record
from warmd.rules.compile import load
from warmd.rules.compiled import CompiledRuleSet, Request
from warmd.rules.ruletest import RuleTestError, parse_spec, request_from_line, run, summary_line

RULES = load('rule item {\n    match GET /item/{id:int}\n    param ref drop\n    key "item:{id}"\n}\n')
LOG_LINE = '192.0.2.1 - - [27/Nov/2026:10:00:00 +0000] "GET /item/7?ref=x HTTP/1.1" 200 10 "-" "curl/8"'
SPEC = f'''
rule_files = ["item.rules"]
[[tests]]
name = "items"
log = """
{LOG_LINE}
"""
[[tests.selects]]
request = "/item/7?ref=mail"
rule = "item"
key = "item:7"
dropped = ["ref"]
[[tests.selects]]
request = "GET /other"
rule = ""
[tests.predict]
must = ["/item/7?ref=x"]
must_not = ["GET /item/8"]
'''


def replay_seen(ruleset: CompiledRuleSet, records: Sequence[Record], at_s: float,
                horizon_s: float) -> list[str]:
    """A predictor that predicts exactly the logged requests (recency only)."""
    return [f"{record.method} {record.target}" for record in records]


def test_request_lines_parse_with_default_method() -> None:
    """`/path?q` means GET; the query is split into ordered pairs."""
    assert request_from_line("/a?x=1&y=") == Request("GET", "/a", (("x", "1"), ("y", "")), 200)
    assert request_from_line("head /a").method == "HEAD"
    with pytest.raises(ValueError):
        request_from_line("GET /a extra")


def test_selection_checks_pass_and_engine_checks_stay_pending() -> None:
    """Without an engine, prediction checks are pending, never passed."""
    outcomes = run(parse_spec(SPEC), RULES)
    assert [o.status for o in outcomes] == ["pass", "pass", "pending", "pending"]
    assert summary_line(outcomes) == "2 passed, 0 failed, 2 pending"


def test_engine_hook_decides_prediction_checks() -> None:
    """With a predictor plugged in, must / must_not are judged on its output."""
    outcomes = run(parse_spec(SPEC), RULES, replay_seen)
    assert [o.status for o in outcomes] == ["pass", "pass", "pass", "pass"]
    failing = parse_spec(SPEC.replace('must_not = ["GET /item/8"]', 'must_not = ["GET /item/7?ref=x"]'))
    assert run(failing, RULES, replay_seen)[-1].detail == "predicted"


def test_mismatches_say_what_differed() -> None:
    """A failing selection check names the field, the wanted and the actual value."""
    spec = parse_spec(SPEC.replace('rule = ""', 'rule = "item"'))
    failed = [o for o in run(spec, RULES) if o.status == "fail"]
    assert [o.detail for o in failed] == ["rule: want item, got (none)"]


@pytest.mark.parametrize(("text", "message"), [
    ("rule_files = [", "invalid TOML"),
    ("tests = []", "rule_files must list"),
    ('rule_files = ["a"]', "no [[tests]]"),
    ('rule_files = ["a"]\n[[tests]]\n[[tests.selects]]\nrequest = "/a"\n', "needs rule ="),
    ('rule_files = ["a"]\n[[tests]]\n[[tests.selects]]\nrequest = "a b c"\nrule = ""\n', "must be"),
    ('rule_files = "a"', "must be a list of strings"),
])
def test_malformed_test_files_raise_the_documented_error(text: str, message: str) -> None:
    """Each malformed shape is a RuleTestError with a message saying what is wrong."""
    with pytest.raises(RuleTestError, match=message.replace("[", r"\[")):
        parse_spec(text)


def test_unparsable_sample_log_line_fails_the_file() -> None:
    """A sample line the log parser rejects is an error, not silently skipped."""
    spec = parse_spec(SPEC.replace(LOG_LINE, "this is not a log line"))
    with pytest.raises(RuleTestError, match="does not parse"):
        run(spec, RULES)
