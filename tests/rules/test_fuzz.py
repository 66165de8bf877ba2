"""Fuzzing: random edits of valid rule files yield diagnostics, never another exception.

The documented failure of `load()` is RuleError (RuleSyntaxError or RuleCompileError);
`check()` never raises. Hypothesis prints the failing example and its seed.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmd.rules.compile import check, load
from warmd.rules.compiled import Request
from warmd.rules.errors import RuleCompileError, RuleError, RuleSyntaxError, render_all

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [
    (ROOT / "tests/rules/testdata/valid_full.rules").read_text(encoding="utf-8"),
    *(p.read_text(encoding="utf-8") for p in sorted((ROOT / "conf/rules").glob("*.rules"))),
]
FRAGMENTS = [
    "{", "}", "\n", '"', "\\", "#", "=", ",", "[", "]", ";", "/", ":", "%", "..", "~", "!",
    " ", "\t", "\r", "rule", "match", "where", "param", "ttl", "jitter", "key", "load", "budget",
    "top", "of capacity", "backend", "gate", "schedule", "cron", "every", "on", "in", "not",
    "exists", "5m", "+1d", "10%", "100/s", "200..299", "{id:int}", "{x}", "é", "\x00", "9" * 30,
]
PROBES = [
    Request("GET", "/api/report/2026-11-28", (("region", "eu"), ("cb", "1")), 200, "Mozilla", "10.0.0.1"),
    Request("GET", "/blog/2024/hello", (("lang", "en"), ("page", "2")), 304, "", "::1"),
    Request("POST", "/search", (("q", "x"),), None, "bot", ""),
]
SETTINGS = settings(max_examples=250, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def edited(draw: st.DrawFn) -> str:
    """A valid file with one to four random deletions, insertions or line shuffles."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["delete", "insert", "duplicate_line", "truncate"]))
        if action == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 12)):]
        elif action == "insert":
            text = text[:position] + draw(st.sampled_from(FRAGMENTS)) + text[position:]
        elif action == "duplicate_line":
            lines = text.split("\n")
            line = draw(st.integers(0, len(lines) - 1))
            lines.insert(draw(st.integers(0, len(lines))), lines[line])
            text = "\n".join(lines)
        else:
            text = text[:position]
    return text


def _assert_well_formed(text: str) -> None:
    result = check(text)
    line_count = max(1, text.count("\n") + 1)
    for diagnostic in result.diagnostics:
        assert 1 <= diagnostic.line <= line_count + 1, diagnostic
        assert diagnostic.column >= 1 and diagnostic.message, diagnostic
    render_all("fuzz.rules", text, result.diagnostics)
    try:
        load(text, "fuzz.rules")
    except (RuleSyntaxError, RuleCompileError) as error:
        assert error.diagnostics
        assert "fuzz.rules:" in str(error)
    else:
        assert result.ok and result.ruleset is not None
        for request in PROBES:
            result.ruleset.select(request)


@SETTINGS
@given(edited())
def test_random_edits_only_produce_rule_errors(text: str) -> None:
    """Any edit of a valid file either still checks clean or yields located diagnostics."""
    _assert_well_formed(text)


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_random_token_soup_only_produces_rule_errors(text: str) -> None:
    """Text assembled from the language's own fragments never escapes as another exception."""
    _assert_well_formed(text)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_unicode_only_produces_rule_errors(text: str) -> None:
    """Arbitrary Unicode input, control characters included, is reported, not crashed on."""
    _assert_well_formed(text)


def test_documented_error_type_is_a_rule_error() -> None:
    """Both error kinds share the RuleError base and carry exit status 2."""
    assert issubclass(RuleSyntaxError, RuleError) and issubclass(RuleCompileError, RuleError)
    assert RuleError.exit_status == 2


def test_deeply_nested_brackets_are_reported() -> None:
    """A pathological nesting depth gives a diagnostic instead of a RecursionError."""
    text = "rule r {\n    match GET /x\n    nodes a=" + "[" * 5000 + "]" * 5000 + "\n}\n"
    result = check(text)
    assert [d.message for d in result.diagnostics] == ["the file nests too deeply to parse"]
