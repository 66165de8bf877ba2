"""The compiler: static checks with suggestions, typed output, and what rules alone select."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.rules.compile import KnownNames, check, load
from warmd.rules.compiled import OverrideKind, Request
from warmd.rules.errors import RuleCompileError, RuleSyntaxError


def _messages(text: str, known: KnownNames | None = None) -> list[str]:
    return [d.message for d in check(text, known).diagnostics]


def _only(text: str, known: KnownNames | None = None):
    (diagnostic,) = check(text, known).diagnostics
    return diagnostic


def test_unknown_backend_suggests_the_nearest_known_one() -> None:
    """A misspelt backend from the config is reported with a did-you-mean."""
    text = "rule r {\n    match /a\n    backend redis-mian\n}\n"
    diagnostic = _only(text, KnownNames({"redis-main": "redis", "pages": ""}))
    assert (diagnostic.line, diagnostic.column, diagnostic.width) == (3, 13, 10)
    assert diagnostic.message == "unknown backend 'redis-mian'"
    assert diagnostic.suggestion == "did you mean 'redis-main'?"
    assert check(text.replace("mian", "main"), KnownNames({"redis-main": "redis"})).ok


def test_plugins_and_timezones_come_from_known_names() -> None:
    """Installed plugins and the tz database widen what a file may name."""
    text = 'source s {\n    path "/x"\n    timezone "Mars/Olympus"\n}\ngate g {\n    check probe a=1\n}\n'
    assert _messages(text) == ["unknown hook 'probe'"]  # the timezone has a valid shape
    known = KnownNames(hooks=frozenset({"probe"}), timezones=frozenset({"UTC", "Europe/Berlin"}))
    assert _messages(text, known) == ["unknown timezone 'Mars/Olympus'"]


def test_duplicate_rule_names_point_at_the_first() -> None:
    """The second rule of a name is an error that says where the first one is."""
    diagnostic = _only("rule a {\n    match /a\n}\nrule a {\n    match /b\n}\n")
    assert diagnostic.line == 4 and diagnostic.suggestion == "the first rule 'a' is at line 1"


def test_cron_errors_point_into_the_string() -> None:
    """A bad cron field is reported with a caret under that field, not the whole string."""
    diagnostic = _only('rule r {\n    match /a\n    cron "0 25 * * *"\n}\n')
    assert diagnostic.message == "bad cron hour field '25': values must lie within 0-23"
    assert (diagnostic.column, diagnostic.width) == (13, 2)


def test_cron_fields_compile_to_value_sets() -> None:
    """Steps, ranges, names and Sunday-as-7 all compile to the expected sets."""
    ruleset = load('rule r {\n    match /a\n    cron "*/20 6-8 1,15 jan-mar sat-7"\n}\n')
    cron = ruleset.rules[0].triggers[0].cron
    assert cron.minutes == {0, 20, 40} and cron.hours == {6, 7, 8}
    assert cron.days_of_month == {1, 15} and cron.months == {1, 2, 3}
    assert cron.days_of_week == {6, 0}


def test_undefined_placeholder_is_located_and_suggested() -> None:
    """A key placeholder that names no capture or parameter is caught with a suggestion."""
    diagnostic = _only('rule r {\n    match /a/{item:int}\n    key "a:{itme}"\n}\n')
    assert diagnostic.message == "'{itme}' in the key is not defined"
    assert (diagnostic.column, diagnostic.suggestion) == (12, "did you mean 'item'?")


def test_type_mismatches_are_named() -> None:
    """A value of the wrong kind is a type mismatch with a hint how to write it."""
    diagnostic = _only("rule r {\n    match /a\n    ttl 3600\n}\n")
    assert diagnostic.message.startswith("type mismatch: ttl needs a duration")
    assert diagnostic.suggestion == "add a unit: '3600s'"
    assert _messages("rule r {\n    match /a/{n:int}\n    param n date-relative offset=+1d\n}\n") == [
        "type mismatch: capture 'n' is int, but date-relative needs a date or str capture "
        "or a query parameter"]


def test_memcached_specific_checks_use_the_backend_kind() -> None:
    """Memcached keys may not hold spaces and its TTLs stop at 30 days."""
    text = 'rule r {\n    match /a/{id}\n    key "a {id}"\n    backend mc\n    ttl 31d\n    load fetch "http://o/{id}"\n}\n'
    assert _messages(text, KnownNames({"mc": "memcached"})) == [
        "memcached keys cannot contain spaces or control characters",
        "memcached reads a ttl over 30d as a Unix time"]
    assert check(text, KnownNames({"mc": "redis"})).ok


def test_key_cannot_use_a_dropped_parameter() -> None:
    """A parameter left out of the key cannot also be part of it."""
    text = 'rule r {\n    match /a\n    param cb drop\n    key "a:{cb}"\n}\n'
    assert _messages(text) == ["the key uses 'cb', which the rule marks drop"]


def test_syntax_damage_does_not_cascade_into_missing_statements() -> None:
    """A rule whose match line is broken is not also reported as having no match."""
    assert _messages("rule r {\n    match GET\n}\n") == ["the statement ends too early"]


def test_load_raises_the_documented_errors() -> None:
    """load() raises RuleCompileError for semantic and RuleSyntaxError for syntax problems."""
    with pytest.raises(RuleCompileError):
        load("rule r {\n    match /a\n    priority 500\n}\n")
    with pytest.raises(RuleSyntaxError):
        load("rule r {\n    match /a\n    priority\n}\n")


RULES = '''
backend mc memcached
limits base {
    rate 10/s
    concurrency 4
}
rule report {
    match GET /report/{day:date}
    where status in 200..299
    where agent !~ "(?i)bot"
    where param region in [eu, us]
    param day date-relative offset=+1d format="%Y%m%d"
    param cb nonce
    param sid user-scoped
    key "r:{day}:{region}"
    load fetch "http://o{target}"
    backend mc
    ttl 1h jitter 10%
    budget top 50
    limits base
    rate 2/s
    on new-rules
}
rule everything {
    match ANY /{rest:path}
    where client in "10.0.0.0/8"
}
'''


def test_compiled_rule_carries_typed_values() -> None:
    """Durations become seconds, percentages fractions, and inline limits override named ones."""
    rule = load(RULES).rule("report")
    assert (rule.ttl_s, rule.ttl_jitter_fraction, rule.budget_top) == (3600.0, 0.1, 50)
    assert (rule.limits.rate_per_s, rule.limits.concurrency) == (2.0, 4)
    assert rule.override("day").kind is OverrideKind.DATE_RELATIVE and rule.override("day").offset_s == 86400
    assert [t.kind for t in rule.triggers] == ["new-rules"]


def test_selection_maps_requests_to_rules_and_keys() -> None:
    """Captures use the parameter's date format; dropped parameters leave the key; first match wins."""
    ruleset = load(RULES)
    chosen = ruleset.select(Request("GET", "/report/20261127", (("region", "eu"), ("cb", "9")), 200, "Mozilla", "1.2.3.4"))
    assert (chosen.rule, chosen.key, chosen.dropped, chosen.never_warm) == (
        "report", "r:20261127:eu", ("cb",), ())
    assert ruleset.select(Request("GET", "/report/2026-11-27", (("region", "eu"),), 200)) is None


@pytest.mark.parametrize(("request_", "expected"), [
    (Request("GET", "/report/20261127", (("region", "eu"),), 404, "", "10.0.0.1"), "everything"),
    (Request("GET", "/report/20261127", (("region", "eu"),), 200, "Googlebot", "8.8.8.8"), None),
    (Request("GET", "/report/20261127", (("region", "fr"),), 200, "", "8.8.8.8"), None),
    (Request("DELETE", "/x/y", (), 200, "", "10.9.9.9"), "everything"),
    (Request("GET", "/x/y", (), 200, "", "not-an-address"), None),
])
def test_where_filters_decide_selection(request_: Request, expected: str | None) -> None:
    """Status ranges, agent regexes, parameter lists and client networks all filter."""
    chosen = load(RULES).select(request_)
    assert (chosen.rule if chosen else None) == expected


def test_never_warm_parameter_suppresses_the_key() -> None:
    """A request carrying a user-scoped parameter is selected but gets no key to warm."""
    chosen = load(RULES).select(Request("GET", "/report/20261127", (("region", "us"), ("sid", "1")), 200))
    assert chosen.never_warm == ("sid",) and chosen.key is None


def test_rule_set_digest_identifies_the_version() -> None:
    """The digest changes with any file's name or text and not otherwise."""
    from warmd.rules.compile import check_files, digest

    files = [("a.rules", "rule a {\n    match /a\n}\n"), ("b.rules", "rule b {\n    match /b\n}\n")]
    result = check_files(files)
    assert [rule.name for rule in result.ruleset.rules] == ["a", "b"]
    assert result.digest == digest(list(files)) != digest(files[::-1])
    assert digest([("a.rules", "x")]) != digest([("a.rule", "sx")])


@settings(max_examples=200, deadline=None)
@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31)),
       st.sampled_from(["%Y-%m-%d", "%Y%m%d", "%d.%m.%Y", "%Y/%j", "%d-%b-%Y", "%y%m%d%H"]))
def test_date_captures_match_dates_in_their_format(day: date, date_format: str) -> None:
    """A date capture matches any date written in the parameter's format, and nothing else."""
    ruleset = load('rule r {\n    match GET /d/{day:date}/x\n'
                   f'    param day date-relative offset=+1d format="{date_format}"\n}}\n')
    written = day.strftime(date_format)
    chosen = ruleset.select(Request("GET", f"/d/{written}/x"))
    assert chosen is not None and chosen.captures == {"day": written}
    assert ruleset.select(Request("GET", f"/d/{written}x/x")) is None


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**12), st.text(min_size=1, max_size=8).filter(
    lambda t: "/" not in t and not t.isdigit()))
def test_int_captures_take_digits_only(number: int, other: str) -> None:
    """`{id:int}` selects every decimal number and rejects any segment with a non-digit."""
    ruleset = load('rule r {\n    match GET /i/{id:int}\n    key "i:{id}"\n}\n')
    assert ruleset.select(Request("GET", f"/i/{number}")).key == f"i:{number}"
    assert ruleset.select(Request("GET", f"/i/{other}")) is None
