"""Compile one `rule` block: match, filters, overrides, key, loader and the rest (pure).

Split from compile.py, which owns the file-level scope; this module owns what a
single rule may say and the checks that tie its statements together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from warmd.rules import ast
from warmd.rules.compiled import (
    DROPPED_KINDS,
    NEVER_WARM_KINDS,
    Capture,
    CompiledRule,
    Filter,
    Limits,
    Loader,
    ParamOverride,
    PathTemplate,
    Trigger,
)
from warmd.rules.params import read_filter, read_override
from warmd.rules.scope import Scope, read_args, read_limits, read_trigger
from warmd.rules.suggest import did_you_mean
from warmd.rules.values import (
    Reporter,
    placeholder_span,
    placeholders,
    read_duration_s,
    read_fraction,
    read_int,
    read_scalar_text,
    read_string,
)

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CAPTURE_PATTERNS = {
    "int": r"\d+", "str": r"[^/]+", "hex": r"[0-9a-fA-F]+", "path": r".+",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "date": "",  # derived from the date format (default %Y-%m-%d)
}
DATE_DIRECTIVES = {"Y": r"\d{4}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}", "M": r"\d{2}",
                   "S": r"\d{2}", "y": r"\d{2}", "j": r"\d{3}", "b": r"[A-Za-z]{3}", "%": "%"}
BUILTIN_VARIABLES = ("method", "path", "query", "target")
SINGLE_STATEMENTS = ("match", "key", "load", "backend", "budget", "ttl", "priority", "deadline",
                     "limits")
MEMCACHED_TTL_MAX_S = 30 * 86400  # beyond this memcached reads the TTL as a Unix time
MEMCACHED_KEY_MAX_BYTES = 250
CAPTURE = re.compile(r"\{([^{}]*)\}")


@dataclass
class _Rule:
    """The rule being built; turned into a frozen CompiledRule at the end."""

    name: str
    method: str | None = None
    path_text: str = ""
    captures: dict[str, str] = field(default_factory=dict)
    params: set[str] = field(default_factory=set)
    values: dict[str, Any] = field(default_factory=dict)
    overrides: list[ParamOverride] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    gates: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    labels: list[tuple[str, str]] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    first_line: dict[str, int] = field(default_factory=dict)
    value_spans: dict[str, ast.Span] = field(default_factory=dict)
    key_value: ast.Value | None = None


def compile_rule(block: ast.Block, scope: Scope, limits: dict[str, Limits],
                 damaged: bool) -> CompiledRule:
    """Check and compile one rule block; problems go to `scope.report`."""
    report = scope.report
    rule = _Rule(block.name.text)
    for statement in block.statements:
        _note_single(statement, rule, report)
        if isinstance(statement, ast.Match):
            _match(statement, rule, report)
        elif isinstance(statement, ast.Param):
            rule.params.add(statement.name.text)
        elif isinstance(statement, ast.Where) and statement.subject.is_param:
            rule.params.add(statement.subject.name.text)
    if "match" not in rule.first_line and not damaged:
        report.error(block.name.span, f"rule '{rule.name}' has no match statement",
                     "match METHOD /path/{capture:type}, like match GET /api/item/{id:int}")
    for statement in block.statements:
        _statement(statement, rule, scope, limits)
    rule.limits = read_limits(block.statements, report, rule.limits)
    _cross_checks(block, rule, scope)
    return _freeze(rule)


def _note_single(statement: ast.Statement, rule: _Rule, report: Reporter) -> None:
    """Report the second `ttl` (etc.) of a rule; the last one would silently win otherwise."""
    word = _keyword(statement)
    if word not in SINGLE_STATEMENTS:
        return
    if word in rule.first_line:
        span = ast.Span(statement.span.line, statement.span.column, len(word))
        report.error(span, f"duplicate '{word}' in rule '{rule.name}'",
                     f"one '{word}' per rule", f"the first '{word}' is at line {rule.first_line[word]}")
        return
    rule.first_line[word] = statement.span.line
    value = getattr(statement, "value", None)
    if isinstance(value, ast.Value):
        rule.value_spans[word] = value.span


def _keyword(statement: ast.Statement) -> str:
    if isinstance(statement, ast.Setting | ast.Reference):
        return statement.keyword
    return type(statement).__name__.lower()


def _match(statement: ast.Match, rule: _Rule, report: Reporter) -> None:
    if statement.method is not None:
        method = statement.method.text
        if method.upper() not in (*METHODS, "ANY"):
            report.unknown("HTTP method", statement.method, set(METHODS), ", ".join(METHODS) + " or ANY")
        elif method.upper() != "ANY":
            rule.method = method.upper()
    path = statement.path
    rule.path_text = path.text
    if path.text.endswith(";"):
        end = ast.Span(path.span.line, path.span.column + len(path.text) - 1)
        report.error(end, "unexpected ';' at the end of the path", "the end of the line",
                     "statements end at the end of the line: remove the ';'")
    for found in CAPTURE.finditer(path.text):
        _capture(found, path, rule, report)
    if CAPTURE.sub("", path.text).count("{") or CAPTURE.sub("", path.text).count("}"):
        report.error(path.span, "unbalanced brace in the path template",
                     "captures written as {name} or {name:type}")


def _capture(found: re.Match[str], path: ast.Name, rule: _Rule, report: Reporter) -> None:
    name, _, kind = found.group(1).partition(":")
    kind = kind or "str"
    span = ast.Span(path.span.line, path.span.column + found.start(), len(found.group(0)))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        report.error(span, f"bad capture name '{name}'", "letters, digits and _, like {id:int}")
    elif kind not in CAPTURE_PATTERNS:
        report.unknown("capture type", ast.Name(kind, span), set(CAPTURE_PATTERNS),
                       ", ".join(CAPTURE_PATTERNS))
    elif name in rule.captures:
        report.error(span, f"capture '{name}' appears twice in the path", "distinct capture names")
    else:
        rule.captures[name] = kind


def _statement(statement: ast.Statement, rule: _Rule, scope: Scope, limits: dict[str, Limits]) -> None:
    report = scope.report
    if isinstance(statement, ast.Where):
        rule.filters += [f for f in [read_filter(statement, rule.captures, report)] if f]
    elif isinstance(statement, ast.Param):
        rule.overrides += [o for o in [read_override(statement, rule.captures, report)] if o]
    elif isinstance(statement, ast.Load):
        rule.values["loader"] = _loader(statement, rule, scope)
    elif isinstance(statement, ast.Budget):
        _budget(statement, rule, report)
    elif isinstance(statement, ast.Ttl):
        _ttl(statement, rule, report)
    elif isinstance(statement, ast.Nodes):
        _labels(statement, rule, report)
    elif isinstance(statement, ast.Reference):
        _reference(statement, rule, scope, limits)
    elif isinstance(statement, ast.Setting):
        _setting(statement, rule, scope)
    elif isinstance(statement, ast.TriggerOn):
        rule.triggers += [t for t in [read_trigger(statement, scope)] if t]


def _setting(statement: ast.Setting, rule: _Rule, scope: Scope) -> None:
    report, value = scope.report, statement.value
    if statement.keyword == "key":
        key = read_string(report, value, "key", 'a key template in quotes, like "item:{id}"')
        if key is not None and _check_template(value, rule, report, "the key"):
            rule.values["key"] = key
            rule.key_value = value
    elif statement.keyword == "priority":
        rule.values["priority"] = read_int(report, value, "priority", 0, 100)
    elif statement.keyword == "deadline":
        rule.values["deadline_s"] = read_duration_s(report, value, "deadline", minimum_s=1)
    elif statement.keyword in ("cron", "every"):
        rule.triggers += [t for t in [read_trigger(statement, scope)] if t]


def _check_template(value: ast.Value, rule: _Rule, report: Reporter, what: str) -> bool:
    """Every placeholder must be a capture, a declared parameter or a built-in variable."""
    names = placeholders(report, value, what)
    if names is None:
        return False
    known = set(rule.captures) | rule.params | set(BUILTIN_VARIABLES)
    ok = True
    for name in names:
        if name not in known:
            report.error(placeholder_span(value, name),
                         f"'{{{name}}}' in {what} is not defined",
                         "a capture of the match path, a parameter named by `param` or "
                         f"`where param`, or one of {', '.join(BUILTIN_VARIABLES)}",
                         did_you_mean(name, known))
            ok = False
    return ok


def _loader(statement: ast.Load, rule: _Rule, scope: Scope) -> Loader | None:
    report, kind, target = scope.report, statement.kind, statement.target
    if kind.text not in ("replay", "fetch", "plugin"):
        report.unknown("loader", kind, {"replay", "fetch", "plugin"}, "replay, fetch or plugin")
        return None
    if kind.text == "plugin":
        return _plugin_loader(statement, scope)
    if target is None:
        if kind.text == "fetch":
            report.error(kind.span, "load fetch needs a URL template",
                         'load fetch "http://origin.internal/api/item/{id}"')
            return None
        url = ""
    else:
        url = read_string(report, target, f"load {kind.text}", 'a URL template in quotes') or ""
        if url and not re.match(r"(https?://|\{)", url):
            report.error(target.span, f"the {kind.text} URL must start with http:// or https://",
                         '"http://host:port{target}"')
        if url and not _check_template(target, rule, report, "the URL"):
            url = ""
    args = read_args(statement.args, {"header": ("string", False)},
                     f"load {kind.text}", report, kind.span)
    return Loader(kind.text, url, "", args or ())


def _plugin_loader(statement: ast.Load, scope: Scope) -> Loader | None:
    report, target = scope.report, statement.target
    if target is None or target.kind is not ast.ValueKind.WORD:
        report.error((target or statement).span, "load plugin needs the plugin's name",
                     "load plugin NAME arg=value ..., NAME declared with `plugin NAME`")
        return None
    if target.text not in scope.plugins:
        report.unknown("plugin", ast.Name(target.text, target.span), scope.plugins,
                       "a plugin declared with `plugin NAME` or installed (--plugins)")
        return None
    args = read_args(statement.args, None, f"plugin '{target.text}'", report, target.span)
    return Loader("plugin", "", target.text, args or ())


def _budget(statement: ast.Budget, rule: _Rule, report: Reporter) -> None:
    if statement.mode == "top":
        rule.values["budget_top"] = read_int(report, statement.value, "budget top", 1, 100_000_000)
    else:
        rule.values["budget_share"] = read_fraction(report, statement.value, "budget share")


def _ttl(statement: ast.Ttl, rule: _Rule, report: Reporter) -> None:
    ttl_s = read_duration_s(report, statement.value, "ttl", minimum_s=1)
    rule.values["ttl_s"] = ttl_s
    jitter = statement.jitter
    if jitter is None or ttl_s is None:
        return
    if jitter.kind is ast.ValueKind.PERCENT:
        rule.values["ttl_jitter_fraction"] = read_fraction(report, jitter, "ttl jitter")
        return
    jitter_s = read_duration_s(report, jitter, "ttl jitter")
    if jitter_s is not None and jitter_s >= ttl_s:
        report.error(jitter.span, "the ttl jitter must be shorter than the ttl",
                     f"a percentage like 10% or a duration under {statement.value.text}")
        return
    rule.values["ttl_jitter_s"] = jitter_s


def _labels(statement: ast.Nodes, rule: _Rule, report: Reporter) -> None:
    for arg in statement.labels:
        text = read_scalar_text(report, arg.value, f"node label '{arg.name.text}'")
        if any(name == arg.name.text for name, _ in rule.labels):
            report.error(arg.name.span, f"node label '{arg.name.text}' given twice", "each label once")
        elif text is not None:
            rule.labels.append((arg.name.text, text))


def _reference(statement: ast.Reference, rule: _Rule, scope: Scope, limits: dict[str, Limits]) -> None:
    kind = statement.keyword
    for name in statement.names:
        if not scope.require(kind, name):
            continue
        if kind == "backend":
            rule.values["backend"] = name.text
        elif kind == "limits":
            rule.limits = limits.get(name.text, Limits())
        elif kind == "gate":
            rule.gates.append(name.text)
        elif kind == "source":
            rule.sources.append(name.text)
        else:
            rule.triggers.append(Trigger("schedule", target=name.text))


def _cross_checks(block: ast.Block, rule: _Rule, scope: Scope) -> None:
    """Checks that tie statements together: direct fills, dropped params in keys, memcached."""
    report, loader = scope.report, rule.values.get("loader")
    backend = rule.values.get("backend")
    if loader is not None and loader.kind in ("fetch", "plugin"):
        if "key" not in rule.values and "key" not in rule.first_line:
            report.error(block.name.span, f"rule '{rule.name}' fills the cache directly "
                         f"(load {loader.kind}) but has no key", 'key "prefix:{capture}"')
        if backend is None and "backend" not in rule.first_line:
            report.error(block.name.span, f"rule '{rule.name}' fills the cache directly "
                         f"(load {loader.kind}) but names no backend", "backend NAME")
    key = rule.values.get("key")
    for override in rule.overrides:
        if key and override.kind in DROPPED_KINDS | NEVER_WARM_KINDS and "{" + override.name + "}" in key:
            span = placeholder_span(rule.key_value, override.name) if rule.key_value else block.name.span
            report.error(span, f"the key uses '{override.name}', which the rule "
                         f"marks {override.kind.value.lower().replace('_', '-')}",
                         "a key built only from parameters that are kept")
    kind = scope.backends.get(backend, ("", ()))[0] if backend else ""
    if kind == "memcached":
        _memcached_checks(block, rule, report)


def _memcached_checks(block: ast.Block, rule: _Rule, report: Reporter) -> None:
    key, ttl_s = rule.values.get("key"), rule.values.get("ttl_s")
    key_span = rule.value_spans.get("key", block.name.span)
    space = re.search(r"\s", key or "")
    if key and space and rule.key_value and "\\" not in rule.key_value.text:
        key_span = ast.Span(key_span.line, key_span.column + 1 + space.start())
    if key and re.search(r"\s", CAPTURE.sub("", key)):
        report.error(key_span, "memcached keys cannot contain spaces or control characters",
                     "a key template without whitespace")
    if key and len(CAPTURE.sub("", key).encode()) > MEMCACHED_KEY_MAX_BYTES:
        report.error(key_span, "the key is longer than memcached's 250 bytes",
                     "a shorter key template")
    if ttl_s and ttl_s > MEMCACHED_TTL_MAX_S:
        report.error(rule.value_spans.get("ttl", block.name.span),
                     "memcached reads a ttl over 30d as a Unix time", "a ttl of at most 30d")


def _freeze(rule: _Rule) -> CompiledRule:
    values = {k: v for k, v in rule.values.items() if v is not None}
    formats = {o.name: o.date_format for o in rule.overrides}
    regex = _path_regex(rule.path_text, rule.captures, formats)
    captures = tuple(Capture(n, t, CAPTURE_PATTERNS.get(t, "")) for n, t in rule.captures.items())
    return CompiledRule(
        name=rule.name, method=rule.method, path=PathTemplate(rule.path_text, captures, regex),
        filters=tuple(rule.filters), overrides=tuple(rule.overrides),
        declared_params=tuple(sorted(rule.params)), key_template=values.get("key"),
        loader=values.get("loader") or Loader("replay"), backend=values.get("backend"),
        budget_top=values.get("budget_top", 0), budget_share=values.get("budget_share", 0.0),
        ttl_s=values.get("ttl_s"), ttl_jitter_s=values.get("ttl_jitter_s", 0.0),
        ttl_jitter_fraction=values.get("ttl_jitter_fraction", 0.0),
        priority=values.get("priority", 50), deadline_s=values.get("deadline_s"),
        node_labels=tuple(rule.labels), triggers=tuple(rule.triggers), gates=tuple(rule.gates),
        limits=rule.limits, sources=tuple(rule.sources),
    )


def _path_regex(text: str, captures: dict[str, str], formats: dict[str, str]) -> str:
    """An anchored regex for the path template; a bad or repeated capture matches nothing."""
    parts, position, seen = [], 0, set()
    for found in CAPTURE.finditer(text):
        parts.append(re.escape(text[position:found.start()]))
        name, _, kind = found.group(1).partition(":")
        kind = kind or "str"
        if captures.get(name) != kind or name in seen:
            return r"(?!)"
        seen.add(name)
        pattern = CAPTURE_PATTERNS[kind] or date_regex(formats.get(name, "%Y-%m-%d"))
        parts.append(f"(?P<{name}>{pattern})")
        position = found.end()
    parts.append(re.escape(text[position:]))
    return "".join(parts)


def date_regex(date_format: str) -> str:
    """A regex for dates written in a strftime format (directives in DATE_DIRECTIVES)."""
    out, position = [], 0
    while position < len(date_format):
        if date_format[position] == "%" and position + 1 < len(date_format):
            out.append(DATE_DIRECTIVES.get(date_format[position + 1], ".+?"))
            position += 2
        else:
            out.append(re.escape(date_format[position]))
            position += 1
    return "".join(out)

