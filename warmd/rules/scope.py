"""What a rule file may refer to (`Scope`), and the readers shared by blocks and rules (pure).

Split from compile.py so that rulecheck.py can use them without an import cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from warmd.rules import ast
from warmd.rules.compiled import Limits, Trigger
from warmd.rules.cron import read_cron
from warmd.rules.values import (
    Reporter,
    read_duration_s,
    read_int,
    read_rate_per_s,
    read_scalar_text,
    read_string,
)

# The cache kinds of warmd.toml ([caches.NAME]).
BACKEND_KINDS = ("redis", "redis-cluster", "memcached", "http")
BACKEND_ARGS = ("address", "url", "prefix")
EVENTS = {"cache-flush": "backend", "cache-restart": "backend", "gate-ready": "gate",
          "new-rules": ""}
# Built-in readiness hooks (warmd/hooks/readiness.py): argument -> (type, required).
HOOKS: dict[str, dict[str, tuple[str, bool]]] = {
    "file": {"path": ("string", True)},
    "http": {"url": ("string", True), "timeout": ("duration", False)},
    "sql": {"url": ("string", True), "query": ("string", True)},
    "redis-key": {"address": ("string", True), "key": ("string", True)},
}
PERCENTILE = re.compile(r"p(\d{1,2}(\.\d+)?)")


@dataclass(frozen=True)
class KnownNames:
    """Names that come from outside the rule file (config, installed plugins, tz database).

    `backends` maps a cache name to its kind ("" when unknown). `timezones`, when
    given, is the set of valid zone names; otherwise only their shape is checked.
    `installed`, when given (the daemon checking a set it will run), makes a `plugin NAME`
    declaration an error unless NAME is installed: declaring does not install.
    """

    backends: Mapping[str, str] = field(default_factory=dict)
    hooks: frozenset[str] = frozenset()
    timezones: frozenset[str] | None = None
    installed: frozenset[str] | None = None


@dataclass
class Scope:
    """Every name a rule may refer to, collected before rules are compiled."""

    report: Reporter
    known: KnownNames
    backends: dict[str, tuple[str, tuple[tuple[str, str], ...]]]
    plugins: set[str]
    blocks: dict[str, set[str]]

    @classmethod
    def collect(cls, tree: ast.RuleFile, known: KnownNames, report: Reporter) -> Scope:
        """Gather declarations, reporting duplicates and bad backend declarations."""
        scope = cls(report, known, {n: (k, ()) for n, k in known.backends.items()}, set(known.hooks),
                    {kind: set() for kind in ("source", "gate", "limits", "schedule", "rule")})
        first_seen: dict[tuple[str, str], int] = {}
        for item in tree.items:
            kind = item.kind if isinstance(item, ast.Block) else (
                "backend" if isinstance(item, ast.BackendDecl) else "plugin")
            name = item.name
            if (kind, name.text) in first_seen:
                report.error(name.span, f"duplicate {kind} name '{name.text}'",
                             f"a name not used by another {kind}",
                             f"the first {kind} '{name.text}' is at line {first_seen[kind, name.text]}")
                continue
            first_seen[kind, name.text] = item.span.line
            if isinstance(item, ast.BackendDecl):
                scope.backends[name.text] = (_backend_kind(item, report), _backend_args(item, report))
            elif isinstance(item, ast.PluginDecl):
                scope.plugins.add(name.text)
                scope._require_installed(name)
            else:
                scope.blocks[kind].add(name.text)
        return scope

    def _require_installed(self, name: ast.Name) -> None:
        installed = self.known.installed
        if installed is not None and name.text not in installed:
            listed = ", ".join(sorted(installed)) or "none"
            self.report.error(name.span, f"plugin '{name.text}' is not installed on this node",
                              f"an installed plugin (installed: {listed})",
                              "pip install the package that provides it, then SIGHUP warmd")

    def hooks(self) -> set[str]:
        """Built-in hooks plus declared and installed plugins."""
        return set(HOOKS) | self.plugins

    def require(self, kind: str, name: ast.Name) -> bool:
        """Report `name` unless a `kind` (backend, gate, schedule, limits, source) has it."""
        names = set(self.backends) if kind == "backend" else self.blocks[kind]
        if name.text in names:
            return True
        how = ("a backend declared with `backend NAME KIND` or given by --backends/--config"
               if kind == "backend" else f"the name of a {kind} block in this file")
        self.report.unknown(kind, name, names, how)
        return False


def _backend_kind(item: ast.BackendDecl, report: Reporter) -> str:
    if item.kind.text not in BACKEND_KINDS:
        report.unknown("backend kind", item.kind, set(BACKEND_KINDS), ", ".join(BACKEND_KINDS))
    return item.kind.text


def _backend_args(item: ast.BackendDecl, report: Reporter) -> tuple[tuple[str, str], ...]:
    args = []
    for arg in item.args:
        if arg.name.text not in BACKEND_ARGS:
            report.unknown("backend argument", arg.name, set(BACKEND_ARGS), ", ".join(BACKEND_ARGS))
        elif (text := read_string(report, arg.value, arg.name.text)) is not None:
            args.append((arg.name.text, text))
    return tuple(args)


def read_args(args: tuple[ast.Arg, ...], spec: dict[str, tuple[str, bool]] | None, owner: str,
              report: Reporter, owner_span: ast.Span) -> tuple[tuple[str, str], ...] | None:
    """Check `name=value` arguments against a spec (None: a plugin, anything goes)."""
    out: list[tuple[str, str]] = []
    ok = True
    for arg in args:
        if any(name == arg.name.text for name, _ in out):
            report.error(arg.name.span, f"argument '{arg.name.text}' given twice", "each argument once")
            ok = False
            continue
        kind = (spec or {}).get(arg.name.text, ("any", False))[0]
        if spec is not None and arg.name.text not in spec:
            report.unknown(f"argument of {owner}", arg.name, set(spec), ", ".join(spec) or "none")
            ok = False
            continue
        text = _arg_value(arg, kind, report)
        ok = ok and text is not None
        out += [(arg.name.text, text)] if text is not None else []
    for name, (_, required) in (spec or {}).items():
        if required and not any(arg.name.text == name for arg in args):
            report.error(owner_span, f"{owner} needs the argument '{name}'", f"{name}=...")
            ok = False
    return tuple(out) if ok else None


def _arg_value(arg: ast.Arg, kind: str, report: Reporter) -> str | None:
    what = arg.name.text
    if kind == "string":
        return read_string(report, arg.value, what)
    if kind == "int":
        number = read_int(report, arg.value, what, 0, 10**9)
        return None if number is None else str(number)
    if kind == "duration":
        seconds = read_duration_s(report, arg.value, what)
        return None if seconds is None else f"{seconds:g}"
    return read_scalar_text(report, arg.value, what)


def read_limits(statements: tuple[ast.Statement, ...], report: Reporter,
                base: Limits | None = None) -> Limits:
    """Rate, concurrency and latency SLO statements over `base` (a named limits block)."""
    limits = base or Limits()
    for statement in statements:
        if isinstance(statement, ast.LimitSlo):
            limits = _slo(statement, report, limits)
        elif isinstance(statement, ast.Setting) and statement.keyword == "rate":
            rate = read_rate_per_s(report, statement.value, "rate")
            limits = Limits(rate or limits.rate_per_s, limits.concurrency,
                            limits.slo_percentile, limits.slo_latency_s)
        elif isinstance(statement, ast.Setting) and statement.keyword == "concurrency":
            number = read_int(report, statement.value, "concurrency", 1, 100_000)
            limits = Limits(limits.rate_per_s, number or limits.concurrency,
                            limits.slo_percentile, limits.slo_latency_s)
    return limits


def _slo(statement: ast.LimitSlo, report: Reporter, limits: Limits) -> Limits:
    found = PERCENTILE.fullmatch(statement.percentile.text)
    if not found or not 0 < float(found.group(1)) < 100:
        report.error(statement.percentile.span,
                     f"bad percentile '{statement.percentile.text}'", "p50, p90, p99 or p99.9")
        return limits
    latency_s = read_duration_s(report, statement.value, "slo latency")
    if latency_s is None or latency_s <= 0:
        return limits
    return Limits(limits.rate_per_s, limits.concurrency, float(found.group(1)), latency_s)


def read_trigger(statement: ast.Statement, scope: Scope) -> Trigger | None:
    """A cron, every or on statement as a `Trigger`; None if it is not one or is invalid."""
    report = scope.report
    if isinstance(statement, ast.TriggerOn):
        return _event(statement, scope)
    if not isinstance(statement, ast.Setting):
        return None
    if statement.keyword == "cron":
        spec = read_cron(report, statement.value)
        return Trigger("cron", cron=spec) if spec else None
    if statement.keyword == "every":
        interval_s = read_duration_s(report, statement.value, "every", minimum_s=1)
        return Trigger("every", interval_s=interval_s) if interval_s else None
    return None


def _event(statement: ast.TriggerOn, scope: Scope) -> Trigger | None:
    event, target = statement.event, statement.target
    if event.text not in EVENTS:
        scope.report.unknown("event", event, set(EVENTS), ", ".join(EVENTS))
        return None
    needs = EVENTS[event.text]
    if not needs and target is not None:
        scope.report.error(target.span, f"event '{event.text}' takes no target", "the end of the line")
        return None
    if needs and target is None:
        scope.report.error(event.span, f"event '{event.text}' needs a {needs} name",
                           f"on {event.text} <{needs} name>")
        return None
    if target is not None and not scope.require(needs, target):
        return None
    return Trigger(event.text, target=target.text if target else "")


def regex_problem(pattern: str) -> str:
    """Why `pattern` is not a valid regular expression, or "" when it is."""
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        return str(error)
    return ""
