"""Parsed rule file -> `CompiledRuleSet`, with every static check (pure).

Checks: unknown backends, hooks, gates, schedules, limits and sources (with
did-you-mean), duplicate names, bad durations, rates and cron fields, type
mismatches, and template placeholders that name no capture or parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from warmd.rules import ast
from warmd.rules.compiled import Backend, CompiledRuleSet, Gate, GateCheck, Source, Trigger
from warmd.rules.errors import Diagnostic, RuleCompileError, RuleSyntaxError
from warmd.rules.parser import parse_recovering
from warmd.rules.rulecheck import compile_rule
from warmd.rules.scope import (
    HOOKS,
    KnownNames,
    Scope,
    read_args,
    read_limits,
    read_trigger,
    regex_problem,
)
from warmd.rules.values import Reporter, read_duration_s, read_string
from warmd.statemachine.ruleset import rules_digest

__all__ = ["HOOKS", "CheckResult", "KnownNames", "RuleSetResult", "check", "check_files",
           "compile_tree", "digest", "load", "merge"]

# The log formats of warmd.toml ([sources.NAME]).
SOURCE_FORMATS = ("combined", "common", "nginx", "json", "regex")
SQL_URL_PREFIXES = ("sqlite:///", "dbapi:")
TIMEZONE_SHAPE = re.compile(r"UTC|[A-Za-z_]+(/[A-Za-z0-9_+\-]+)+|[+-]\d{2}:\d{2}")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one file: the rule set when valid, and every diagnostic."""

    ruleset: CompiledRuleSet | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        """True when the file has no errors."""
        return not self.diagnostics


def check(text: str, known: KnownNames | None = None) -> CheckResult:
    """Parse and compile `text`, collecting all syntax and semantic diagnostics; never raises."""
    parsed = parse_recovering(text)
    ruleset, semantic = compile_tree(parsed.tree, known or KnownNames(), parsed.damaged)
    diagnostics = tuple(sorted(set(parsed.diagnostics) | set(semantic)))
    return CheckResult(None if diagnostics else ruleset, diagnostics)


def load(text: str, filename: str = "<rules>", known: KnownNames | None = None) -> CompiledRuleSet:
    """Parse and compile `text` into a rule set.

    Raises:
        RuleSyntaxError: the text does not follow the grammar (all errors listed).
        RuleCompileError: it parses but fails a static check (all errors listed).
    """
    parsed = parse_recovering(text)
    ruleset, semantic = compile_tree(parsed.tree, known or KnownNames(), parsed.damaged)
    if parsed.diagnostics:
        raise RuleSyntaxError(filename, text, (*parsed.diagnostics, *semantic))
    if semantic:
        raise RuleCompileError(filename, text, semantic)
    return ruleset


@dataclass(frozen=True)
class RuleSetResult:
    """Several files checked as one rule set.

    `ruleset` is the merged set when every file is valid. `diagnostics` maps each
    file name to its problems, in the order given. `digest` (sha256 of names and
    texts) identifies the version that Raft replicates and the planner records.
    """

    ruleset: CompiledRuleSet | None
    diagnostics: Mapping[str, tuple[Diagnostic, ...]]
    digest: str


def check_files(files: Sequence[tuple[str, str]], known: KnownNames | None = None) -> RuleSetResult:
    """Check `(name, text)` files as one rule set; rule names must be unique across files.

    Each file must be valid on its own (declare or get from config what it uses);
    rules keep the order of the files, so the first matching rule still wins.
    """
    known = known or KnownNames()
    results: dict[str, tuple[Diagnostic, ...]] = {}
    rulesets: list[CompiledRuleSet] = []
    first_file: dict[str, str] = {}
    for name, text in files:
        parsed = parse_recovering(text)
        ruleset, semantic = compile_tree(parsed.tree, known, parsed.damaged)
        clashes = _clashes(parsed.tree, name, first_file)
        results[name] = tuple(sorted(set(parsed.diagnostics) | set(semantic) | set(clashes)))
        rulesets.append(ruleset)
    valid = not any(results.values())
    return RuleSetResult(merge(rulesets) if valid else None, results, digest(files))


def _clashes(tree: ast.RuleFile, name: str, first_file: dict[str, str]) -> list[Diagnostic]:
    """Rules named like a rule of an earlier file (recorded in `first_file`)."""
    clashes = []
    for block in tree.blocks("rule"):
        rule = block.name
        if first_file.setdefault(rule.text, name) != name:
            clashes.append(Diagnostic(rule.span.line, rule.span.column,
                                      f"duplicate rule name '{rule.text}'",
                                      "a name not used by another rule of the rule set",
                                      f"the first rule '{rule.text}' is in {first_file[rule.text]}",
                                      rule.span.width))
    return clashes


def merge(rulesets: Sequence[CompiledRuleSet]) -> CompiledRuleSet:
    """Several compiled files as one set, rules in file order."""
    merged = CompiledRuleSet()
    for ruleset in rulesets:
        merged = CompiledRuleSet(
            merged.rules + ruleset.rules, merged.backends + ruleset.backends,
            merged.plugins + ruleset.plugins, merged.sources + ruleset.sources,
            merged.gates + ruleset.gates, {**merged.limits, **ruleset.limits},
            {**merged.schedules, **ruleset.schedules},
        )
    return merged


def digest(files: Sequence[tuple[str, str]]) -> str:
    """The rule set's version: sha256 over each file's name and text, in order (the same
    function the replicated `SetRules` command checks its version with)."""
    return rules_digest(files)


def compile_tree(tree: ast.RuleFile, known: KnownNames,
                 damaged: frozenset[int] = frozenset()) -> tuple[CompiledRuleSet, tuple[Diagnostic, ...]]:
    """Compile a parsed file; blocks listed in `damaged` skip "missing statement" checks."""
    scope = Scope.collect(tree, known, Reporter())
    report = scope.report
    sources = tuple(_source(b, scope, i in damaged) for i, b in _blocks(tree, "source"))
    gates = tuple(_gate(b, scope, i in damaged) for i, b in _blocks(tree, "gate"))
    limits = {b.name.text: read_limits(b.statements, report) for _, b in _blocks(tree, "limits")}
    schedules = {b.name.text: _schedule(b, scope, i in damaged) for i, b in _blocks(tree, "schedule")}
    rules = tuple(compile_rule(b, scope, limits, i in damaged) for i, b in _blocks(tree, "rule"))
    backends = tuple(Backend(name, kind, args) for name, (kind, args) in scope.backends.items())
    ruleset = CompiledRuleSet(rules, backends, tuple(sorted(scope.plugins)), sources, gates,
                              limits, schedules)
    return ruleset, tuple(sorted(set(report.diagnostics)))


def _blocks(tree: ast.RuleFile, kind: str) -> list[tuple[int, ast.Block]]:
    return [(i, item) for i, item in enumerate(tree.items)
            if isinstance(item, ast.Block) and item.kind == kind]


def _source(block: ast.Block, scope: Scope, damaged: bool) -> Source:
    report = scope.report
    paths: list[str] = []
    fmt, pattern, timezone = "combined", "", "UTC"
    for statement in block.statements:
        if isinstance(statement, ast.SourceFormat):
            fmt, pattern = _source_format(statement, report)
        elif not isinstance(statement, ast.Setting):
            continue  # the parser lets only settings and a format into a source
        elif statement.keyword == "path":
            paths += [p for p in [read_string(report, statement.value, "path")] if p]
        else:
            timezone = _timezone(statement.value, scope) or timezone
    if not paths and not damaged:
        report.error(block.name.span, f"source '{block.name.text}' has no path",
                     'at least one `path "/var/log/nginx/access.log*"`')
    return Source(block.name.text, tuple(paths), fmt, pattern, timezone)


def _source_format(statement: ast.SourceFormat, report: Reporter) -> tuple[str, str]:
    name = statement.format
    if name.text not in SOURCE_FORMATS:
        report.unknown("log format", name, set(SOURCE_FORMATS), ", ".join(SOURCE_FORMATS))
        return name.text, ""
    if name.text != "regex":
        if statement.pattern is not None:
            report.error(statement.pattern.span, f"format {name.text} takes no pattern",
                         "a pattern only after `format regex`")
        return name.text, ""
    if statement.pattern is None:
        report.error(name.span, "format regex needs a pattern",
                     'a regular expression in quotes with (?P<time>...) and (?P<target>...) groups')
        return name.text, ""
    pattern = read_string(report, statement.pattern, "a regex log format") or ""
    if pattern and (problem := regex_problem(pattern)):
        report.error(statement.pattern.span, f"invalid regular expression: {problem}",
                     "a Python regular expression")
    elif pattern and not _has_log_groups(pattern):
        report.error(statement.pattern.span, "the log pattern lacks a required named group",
                     "(?P<time>...) and (?P<target>...) or (?P<request>...); optional: "
                     "method, status, agent, client")
    return name.text, pattern


def _has_log_groups(pattern: str) -> bool:
    groups = set(re.compile(pattern).groupindex)
    return "time" in groups and bool({"target", "request"} & groups)


def _timezone(value: ast.Value, scope: Scope) -> str | None:
    text = read_string(scope.report, value, "timezone", 'a zone name like "Europe/Berlin" or "UTC"')
    if text is None:
        return None
    zones = scope.known.timezones
    valid = text in zones if zones is not None else bool(TIMEZONE_SHAPE.fullmatch(text))
    if not valid:
        scope.report.unknown("timezone", ast.Name(text, value.span), zones or set(),
                             'an IANA zone like "Europe/Berlin", "UTC" or an offset like "+02:00"')
        return None
    return text


def _gate(block: ast.Block, scope: Scope, damaged: bool) -> Gate:
    report = scope.report
    checks: list[GateCheck] = []
    timeout_s, poll_s = 600.0, 5.0
    for statement in block.statements:
        if isinstance(statement, ast.GateCheck):
            checks += [c for c in [_gate_check(statement, scope)] if c]
        elif not isinstance(statement, ast.Setting):
            continue  # the parser lets only settings and checks into a gate
        elif statement.keyword == "timeout":
            timeout_s = read_duration_s(report, statement.value, "timeout", minimum_s=1) or timeout_s
        else:
            poll_s = read_duration_s(report, statement.value, "poll", minimum_s=0.1) or poll_s
    has_check = any(isinstance(s, ast.GateCheck) for s in block.statements)
    if not has_check and not damaged:
        report.error(block.name.span, f"gate '{block.name.text}' has no check",
                     'at least one `check HOOK arg=value`, like check http url="http://..."')
    return Gate(block.name.text, tuple(checks), timeout_s, poll_s)


def _gate_check(statement: ast.GateCheck, scope: Scope) -> GateCheck | None:
    hook = statement.hook
    if hook.text not in scope.hooks():
        scope.report.unknown("hook", hook, scope.hooks(),
                             f"a built-in hook ({', '.join(HOOKS)}) or a declared `plugin NAME`")
        return None
    spec = HOOKS.get(hook.text)
    args = read_args(statement.args, spec, f"hook '{hook.text}'", scope.report, statement.hook.span)
    if hook.text == "sql" and args is not None:
        url = dict(args).get("url", "")
        if not url.startswith(SQL_URL_PREFIXES):
            value = next(arg.value for arg in statement.args if arg.name.text == "url")
            scope.report.error(value.span, "the sql hook's url must start with sqlite:/// or dbapi:",
                               '"sqlite:///var/lib/app/app.db" or "dbapi:psycopg" (any DB-API module)')
            return None
    return GateCheck(hook.text, args) if args is not None else None


def _schedule(block: ast.Block, scope: Scope, damaged: bool) -> tuple[Trigger, ...]:
    triggers = tuple(t for t in (read_trigger(s, scope) for s in block.statements) if t)
    if not block.statements and not damaged:
        scope.report.error(block.name.span, f"schedule '{block.name.text}' has no trigger",
                           "cron \"...\", every DURATION or on EVENT [TARGET]")
    return triggers
