"""Where-filters and parameter overrides of a rule, type-checked (pure)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from warmd.rules import ast
from warmd.rules.compiled import Filter, OverrideKind, ParamOverride
from warmd.rules.scope import regex_problem
from warmd.rules.values import (
    Reporter,
    mismatch,
    read_duration_s,
    read_int,
    read_scalar_text,
    read_string,
    read_text_list,
)

# Request fields a filter can test, by type.
FIELD_TYPES = {"status": "number", "agent": "text", "client": "address", "method": "text",
               "path": "text"}
OPERATORS = {
    "number": ("=", "!=", "<", "<=", ">", ">=", "in", "not in"),
    "text": ("=", "!=", "~", "!~", "in", "not in"),
    "address": ("=", "!=", "in", "not in"),
    "param": ("=", "!=", "~", "!~", "<", "<=", ">", ">=", "in", "not in", "exists", "missing"),
}
# Parameter class -> (override kind, argument -> reader name).
CLASSES: dict[str, tuple[OverrideKind | None, dict[str, str]]] = {
    "constant": (OverrideKind.CONSTANT, {"value": "scalar"}),
    "enum": (OverrideKind.ENUM, {"values": "list"}),
    "date-relative": (OverrideKind.DATE_RELATIVE, {"offset": "offset", "format": "format"}),
    "sequence": (OverrideKind.SEQUENCE, {"step": "count", "ahead": "count"}),
    "page": (OverrideKind.PAGE, {"max": "count"}),
    "hot-id": (OverrideKind.HOT_ID, {"top": "count"}),
    "nonce": (OverrideKind.NONCE, {}),
    "user-scoped": (OverrideKind.USER_SCOPED, {}),
    "secret": (OverrideKind.SECRET, {}),
    "drop": (OverrideKind.DROP, {}),
    "never-warm": (OverrideKind.NEVER_WARM, {}),
    "auto": (None, {}),
}
REQUIRED_ARGS = {"date-relative": "offset_s"}
# Which capture types each class may describe ("*": any).
CAPTURE_COMPATIBLE = {"date-relative": ("date", "str"), "sequence": ("int",), "page": ("int",)}
DATE_DIRECTIVES = set("YmdHMSyjbBaAp%")


def read_filter(statement: ast.Where, captures: dict[str, str], report: Reporter) -> Filter | None:
    """Check a where-filter's subject, operator and operand types."""
    subject = statement.subject
    name = subject.name.text
    if subject.is_param:
        kind = "param"
    elif name in captures:
        kind = "number" if captures[name] == "int" else "text"
    elif name in FIELD_TYPES:
        kind = FIELD_TYPES[name]
    else:
        report.unknown("filter subject", subject.name, set(FIELD_TYPES) | set(captures),
                       f"{', '.join(FIELD_TYPES)}, a capture, or `param NAME`")
        return None
    label = f"param {name}" if subject.is_param else name
    if statement.operator not in OPERATORS[kind]:
        needs = "a parameter (`where param NAME exists`)" if statement.operator in (
            "exists", "missing") else f"one of {', '.join(OPERATORS[kind])}"
        report.error(subject.name.span, f"type mismatch: '{statement.operator}' cannot test "
                     f"{label} (a {kind if kind != 'param' else 'parameter'})", needs)
        return None
    return _operands(statement, kind, label, report)


def _operands(statement: ast.Where, kind: str, label: str, report: Reporter) -> Filter | None:
    subject, operator, value = statement.subject, statement.operator, statement.value
    build = Filter(subject.name.text, subject.is_param, operator)
    if value is None:
        return build
    if operator in ("~", "!~"):
        pattern = read_string(report, value, f"'{operator}'", "a regular expression in quotes")
        if pattern is None:
            return None
        problem = regex_problem(pattern)
        if problem:
            report.error(value.span, f"invalid regular expression: {problem}", "a Python regex")
            return None
        return Filter(build.subject, build.is_param, operator, (pattern,))
    if value.kind is ast.ValueKind.RANGE and kind not in ("number", "param"):
        mismatch(report, value, label, "text, a list of texts, or a regex after ~")
        return None
    if value.kind is ast.ValueKind.RANGE:
        low, high = (int(part) for part in value.text.split(".."))
        if operator not in ("in", "not in") or low > high:
            report.error(value.span, f"bad range '{value.text}' for {label}",
                         "`in LOW..HIGH` with LOW <= HIGH")
            return None
        return Filter(build.subject, build.is_param, operator, (), low, high)
    return _plain_operands(build, value, kind, label, report)


def _plain_operands(build: Filter, value: ast.Value, kind: str, label: str,
                    report: Reporter) -> Filter | None:
    operator = build.operator
    if operator in ("<", "<=", ">", ">="):
        number = read_int(report, value, f"'{operator}' on {label}", 0, 10**18)
        return None if number is None else Filter(build.subject, build.is_param, operator, (str(number),))
    texts = read_text_list(report, value, label) if operator in ("in", "not in") else (
        [read_scalar_text(report, value, label)] if value.kind is not ast.ValueKind.LIST else None)
    if texts is None or None in texts:
        if operator not in ("in", "not in") and value.kind is ast.ValueKind.LIST:
            mismatch(report, value, f"'{operator}'", "a single value", "use `in [ ... ]` for a list")
        return None
    texts = tuple(text for text in texts if text is not None)  # none is, after the check above
    if kind == "number" and not all(text.isdigit() for text in texts):
        mismatch(report, value, label, "a whole number, a list of them or a range like 200..299")
        return None
    if kind == "address" and not all(_network(text) for text in texts):
        mismatch(report, value, label, 'an address or network in quotes, like "10.0.0.0/8"')
        return None
    return Filter(build.subject, build.is_param, operator, tuple(texts))


def _network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def read_override(statement: ast.Param, captures: dict[str, str], report: Reporter) -> ParamOverride | None:
    """Check a `param NAME CLASS args` statement; None for `auto` (declaration only) or errors."""
    class_name = statement.kind.text
    if class_name not in CLASSES:
        report.unknown("parameter class", statement.kind, set(CLASSES), ", ".join(CLASSES))
        return None
    kind, spec = CLASSES[class_name]
    name = statement.name.text
    capture_type = captures.get(name)
    allowed = CAPTURE_COMPATIBLE.get(class_name)
    if capture_type and allowed and capture_type not in allowed:
        report.error(statement.kind.span, f"type mismatch: capture '{name}' is {capture_type}, "
                     f"but {class_name} needs a {' or '.join(allowed)} capture or a query parameter",
                     f"change the capture to {{{name}:{allowed[0]}}} or pick another class")
        return None
    fields = _override_args(statement, spec, report)
    if fields is None:
        return None
    if class_name in REQUIRED_ARGS and REQUIRED_ARGS[class_name] not in fields:
        report.error(statement.kind.span, f"{class_name} needs offset=...",
                     "offset=+1d (tomorrow), offset=+0d (today) or offset=-1h")
        return None
    return ParamOverride(name, kind, **fields) if kind else None


def _override_args(statement: ast.Param, spec: dict[str, str],
                   report: Reporter) -> dict[str, Any] | None:
    fields: dict[str, Any] = {}
    ok = True
    for arg in statement.args:
        reader = spec.get(arg.name.text)
        if reader is None:
            report.unknown(f"argument of {statement.kind.text}", arg.name, set(spec),
                           ", ".join(spec) or "no arguments")
            ok = False
            continue
        value = _read(reader, arg, report)
        if value is None:
            ok = False
            continue
        field_name = {"offset": "offset_s", "format": "date_format", "max": "page_max"}.get(
            arg.name.text, arg.name.text)
        fields[field_name] = value
    return fields if ok else None


def _read(reader: str, arg: ast.Arg, report: Reporter) -> object | None:
    what = arg.name.text
    if reader == "scalar":
        return read_scalar_text(report, arg.value, what)
    if reader == "list":
        return read_text_list(report, arg.value, what)
    if reader == "offset":
        return read_duration_s(report, arg.value, what, signed=True)
    if reader == "count":
        return read_int(report, arg.value, what, 1, 1_000_000)
    text = read_string(report, arg.value, what, 'a strftime format in quotes, like "%Y-%m-%d"')
    if text is None:
        return None
    directives = re.findall(r"%(.)", text)
    bad = [d for d in directives if d not in DATE_DIRECTIVES]
    if not directives or bad:
        report.error(arg.value.span, f"bad date format '{text}'" + (
            f": unknown directive %{bad[0]}" if bad else ": no % directive"),
            "a strftime format using %Y %m %d %H %M %S %y %j %b %B %a %A %p")
        return None
    return text
