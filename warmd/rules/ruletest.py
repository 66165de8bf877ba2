"""Rule unit tests (`warmctl rules test`), the pure part: read a test file, run its checks.

A test file (TOML) lists sample log lines and what the rules must decide about
requests: which rule selects them, the cache key, dropped and never-warm parameters.
Engine predictions (`must` / `must_not`) go through an `EnginePredictor` the caller
supplies; without one they are reported as pending, never as passed.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from warmd.analysis.formats import LineParser, Record, format_from_spec
from warmd.errors import ConfigError, WarmdError
from warmd.rules.compiled import CompiledRuleSet, Request, Selection

# The integration fills this in with the prediction engine: given the rule set, the
# parsed sample log and the evaluation window, return the predicted request lines
# ("GET /path?query"), best first.
EnginePredictor = Callable[[CompiledRuleSet, Sequence[Record], float, float], Sequence[str]]


class RuleTestError(WarmdError):
    """A rule test file is malformed (exit status 2, like a bad rule file)."""

    exit_status = 2


@dataclass(frozen=True)
class SelectCheck:
    """Expectations about one request; None fields are not checked."""

    request: Request
    shown: str
    rule: str  # "" = no rule may select it
    key: str | None = None
    dropped: tuple[str, ...] | None = None
    never_warm: tuple[str, ...] | None = None


@dataclass(frozen=True)
class TestCase:
    """One named test: its sample log, selection checks and prediction expectations."""

    name: str
    log_lines: tuple[str, ...]
    selects: tuple[SelectCheck, ...]
    must: tuple[str, ...] = ()
    must_not: tuple[str, ...] = ()


@dataclass(frozen=True)
class TestSpec:
    """A whole test file."""

    rule_files: tuple[str, ...]
    backends: tuple[str, ...]
    log_format: str
    at_s: float | None  # None: the time of the last sample line of each test
    horizon_s: float
    cases: tuple[TestCase, ...]


@dataclass(frozen=True)
class Outcome:
    """The result of one check: passed, failed (with why) or pending (needs the engine)."""

    case: str
    check: str
    status: str  # "pass" | "fail" | "pending"
    detail: str = ""


def parse_spec(text: str) -> TestSpec:
    """Read a test file's TOML text.

    Raises:
        RuleTestError: the TOML is invalid or a field has the wrong shape.
    """
    try:
        document = tomllib.loads(text)
        return _spec(document)
    except tomllib.TOMLDecodeError as error:
        raise RuleTestError(f"invalid TOML: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise RuleTestError(f"malformed test file: {error}") from None


def _spec(document: dict[str, Any]) -> TestSpec:
    rule_files = _strings(document, "rule_files")
    if not rule_files:
        raise ValueError("rule_files must list at least one rule file")
    cases = tuple(_case(case, position) for position, case in enumerate(document.get("tests", []), 1))
    if not cases:
        raise ValueError("no [[tests]] found")
    at = document.get("at")
    if at is not None and not (isinstance(at, datetime) and at.tzinfo is not None):
        raise ValueError("at must be a TOML date-time with an offset, like 2026-11-28T00:00:00+01:00")
    horizon_s = float(document.get("horizon_s", 86400.0))
    if horizon_s <= 0:
        raise ValueError("horizon_s must be more than zero")
    return TestSpec(rule_files, _strings(document, "backends"), str(document.get("format", "combined")),
                    at.timestamp() if at is not None else None, horizon_s, cases)


def _case(table: dict[str, Any], position: int) -> TestCase:
    name = str(table.get("name", f"test {position}"))
    lines = tuple(line for line in str(table.get("log", "")).splitlines() if line.strip())
    selects = tuple(_select(entry, name) for entry in table.get("selects", []))
    predict = table.get("predict", {})
    return TestCase(name, lines, selects, _strings(predict, "must"), _strings(predict, "must_not"))


def _select(entry: dict[str, Any], case: str) -> SelectCheck:
    shown = str(entry["request"])
    request = request_from_line(shown, int(entry.get("status", 200)), str(entry.get("agent", "")),
                                str(entry.get("client", "")))
    if "rule" not in entry:
        raise ValueError(f"{case}: selects entry {shown!r} needs rule = \"NAME\" (\"\" for none)")
    return SelectCheck(
        request, shown, str(entry["rule"]), entry.get("key"),
        _optional_strings(entry, "dropped"), _optional_strings(entry, "never_warm"),
    )


def _strings(table: dict[str, Any], name: str) -> tuple[str, ...]:
    values = table.get(name, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{name} must be a list of strings")
    return tuple(values)


def _optional_strings(table: dict[str, Any], name: str) -> tuple[str, ...] | None:
    return tuple(sorted(_strings(table, name))) if name in table else None


def request_from_line(line: str, status: int = 200, agent: str = "", client: str = "") -> Request:
    """`"GET /path?a=1"` (method optional, GET by default) as a `Request`."""
    words = line.split()
    if not words or len(words) > 2:
        raise ValueError(f"request {line!r} must be 'METHOD /path?query' or '/path?query'")
    method, target = (words[0], words[1]) if len(words) == 2 else ("GET", words[0])
    return request_from_target(method, target, status, agent, client)


def request_from_target(method: str, target: str, status: int | None, agent: str,
                        client: str) -> Request:
    """A request from a method and a raw target (`/path?query`)."""
    parts = urlsplit(target)
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    return Request(method.upper(), parts.path or "/", query, status, agent, client)


def run(spec: TestSpec, ruleset: CompiledRuleSet,
        predictor: EnginePredictor | None = None) -> tuple[Outcome, ...]:
    """Run every check of every case; pure, deterministic."""
    outcomes: list[Outcome] = []
    for case in spec.cases:
        parse_log(case.log_lines, spec.log_format)  # a bad sample line fails the file early
        outcomes += [_check_select(case.name, check, ruleset.select(check.request))
                     for check in case.selects]
        outcomes += _check_predictions(case, spec, ruleset, predictor)
    return tuple(outcomes)


def _check_select(case: str, check: SelectCheck, selection: Selection | None) -> Outcome:
    label = f"selects {check.shown}"
    got_rule = selection.rule if selection else ""
    problems = []
    if got_rule != check.rule:
        problems.append(f"rule: want {check.rule or '(none)'}, got {got_rule or '(none)'}")
    if selection is not None and check.key is not None and selection.key != check.key:
        problems.append(f"key: want {check.key!r}, got {selection.key!r}")
    if selection is not None and check.dropped is not None and selection.dropped != check.dropped:
        problems.append(f"dropped: want {list(check.dropped)}, got {list(selection.dropped)}")
    if (selection is not None and check.never_warm is not None
            and selection.never_warm != check.never_warm):
        problems.append(f"never_warm: want {list(check.never_warm)}, got {list(selection.never_warm)}")
    return Outcome(case, label, "fail" if problems else "pass", "; ".join(problems))


def _check_predictions(case: TestCase, spec: TestSpec, ruleset: CompiledRuleSet,
                       predictor: EnginePredictor | None) -> list[Outcome]:
    wanted = [("must", line) for line in case.must] + [("must_not", line) for line in case.must_not]
    if not wanted:
        return []
    if predictor is None:
        return [Outcome(case.name, f"{kind} predict {line}", "pending",
                        "needs the prediction engine (not wired into `rules test` yet)")
                for kind, line in wanted]
    records = parse_log(case.log_lines, spec.log_format)
    at_s = spec.at_s if spec.at_s is not None else max((r.time_s for r in records), default=0.0)
    predicted = {_normal(line) for line in predictor(ruleset, records, at_s, spec.horizon_s)}
    outcomes = []
    for kind, line in wanted:
        hit = _normal(line) in predicted
        passed = hit if kind == "must" else not hit
        detail = "" if passed else ("not predicted" if kind == "must" else "predicted")
        outcomes.append(Outcome(case.name, f"{kind} predict {line}", "pass" if passed else "fail", detail))
    return outcomes


def _normal(line: str) -> str:
    words = line.split()
    return " ".join(words if len(words) == 2 else ["GET", *words])


def parse_log(lines: Sequence[str], log_format: str) -> list[Record]:
    """Parse sample log lines with the analysis parser (the same one the daemon uses).

    Raises:
        RuleTestError: the format is unknown or a line does not parse.
    """
    try:
        parser = LineParser(format_from_spec(log_format))
    except ConfigError as error:
        raise RuleTestError(str(error)) from None
    records = []
    for line in lines:
        record = parser.parse(line)
        if record is None:
            raise RuleTestError(f"sample log line does not parse as {log_format}: {line[:200]}")
        records.append(record)
    return records


def summary_line(outcomes: Sequence[Outcome]) -> str:
    """"N passed, M failed, K pending"."""
    counts = {status: sum(1 for o in outcomes if o.status == status)
              for status in ("pass", "fail", "pending")}
    return f"{counts['pass']} passed, {counts['fail']} failed, {counts['pending']} pending"
