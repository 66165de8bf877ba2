"""Typed readings of rule values (durations, rates, cron, templates), with diagnostics.

Each `read_*` function returns the typed value, or None after reporting why the
value is wrong, so the compiler can keep going and report every problem at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from warmd.rules import ast
from warmd.rules.errors import Diagnostic
from warmd.rules.suggest import did_you_mean

DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
RATE_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0}
KIND_WORDS = {
    ast.ValueKind.STRING: "the string",
    ast.ValueKind.INTEGER: "the whole number",
    ast.ValueKind.DURATION: "the duration",
    ast.ValueKind.PERCENT: "the percentage",
    ast.ValueKind.RATE: "the rate",
    ast.ValueKind.RANGE: "the range",
    ast.ValueKind.WORD: "the name",
    ast.ValueKind.LIST: "a list",
}
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass
class Reporter:
    """Collects diagnostics while the compiler walks a file."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def error(self, span: ast.Span, message: str, expected: str = "", suggestion: str = "") -> None:
        """Record an error at `span`."""
        self.diagnostics.append(Diagnostic(
            max(1, span.line), max(1, span.column), message, expected, suggestion,
            max(1, span.width),
        ))

    def unknown(self, what: str, name: ast.Name, known: list[str] | set[str] | frozenset[str],
                expected: str) -> None:
        """Report an unknown name with the nearest known one as a suggestion."""
        self.error(name.span, f"unknown {what} '{name.text}'", expected,
                   did_you_mean(name.text, known))


def shown(value: ast.Value) -> str:
    """A value as an error message quotes it."""
    if value.kind is ast.ValueKind.LIST:
        return "a list"
    return f"{KIND_WORDS[value.kind]} '{value.text}'"


def mismatch(report: Reporter, value: ast.Value, what: str, needs: str, hint: str = "") -> None:
    """Report a value of the wrong kind: "type mismatch: ttl needs a duration ..."."""
    report.error(value.span, f"type mismatch: {what} needs {needs}, not {shown(value)}",
                 expected=needs, suggestion=hint)


def read_duration_s(report: Reporter, value: ast.Value, what: str, signed: bool = False,
                    minimum_s: float = 0.0) -> float | None:
    """Seconds of a duration like `90s`, `1h30m` or (when `signed`) `+1d`."""
    needs = "a duration like 30s, 5m, 1h or 2d" if not signed else "an offset like +1d or -2h"
    if value.kind is ast.ValueKind.INTEGER:
        mismatch(report, value, what, needs, f"add a unit: '{value.text}s'")
        return None
    if value.kind is not ast.ValueKind.DURATION:
        mismatch(report, value, what, needs)
        return None
    text = value.text
    sign = -1.0 if text.startswith("-") else 1.0
    if text[:1] in "+-" and not signed:
        report.error(value.span, f"a {what} cannot have a sign: '{text}'", needs)
        return None
    parts = re.findall(r"(\d+)([A-Za-z]+)", text)
    total = 0.0
    for number, unit in parts:
        if unit not in DURATION_UNITS_S:
            report.error(value.span, f"bad duration '{text}': unknown unit '{unit}'",
                         "a unit among ms, s, m, h, d, w", did_you_mean(unit, DURATION_UNITS_S))
            return None
        total += int(number) * DURATION_UNITS_S[unit]
    if total * sign < minimum_s and not signed:
        report.error(value.span, f"{what} must be at least {minimum_s:g}s, got '{text}'", needs)
        return None
    return sign * total


def read_int(report: Reporter, value: ast.Value, what: str, low: int, high: int) -> int | None:
    """A whole number within [low, high]."""
    needs = f"a whole number from {low} to {high}" if high < 10**6 else "a whole number"
    if value.kind is not ast.ValueKind.INTEGER:
        mismatch(report, value, what, needs)
        return None
    number = int(value.text)
    if not low <= number <= high:
        report.error(value.span, f"{what} {number} is out of range",
                     f"a whole number from {low} to {high}")
        return None
    return number


def read_fraction(report: Reporter, value: ast.Value, what: str) -> float | None:
    """A percentage `P%` with 0 < P <= 100, as a fraction."""
    needs = "a percentage like 10%"
    if value.kind is not ast.ValueKind.PERCENT:
        mismatch(report, value, what, needs)
        return None
    fraction = float(value.text[:-1]) / 100.0
    if not 0.0 < fraction <= 1.0:
        report.error(value.span, f"{what} {value.text} is out of range", "more than 0% and at most 100%")
        return None
    return fraction


def read_rate_per_s(report: Reporter, value: ast.Value, what: str) -> float | None:
    """Requests per second of a rate like `200/s`, `600/m`."""
    needs = "a rate like 100/s, 600/m or 5000/h"
    if value.kind is not ast.ValueKind.RATE:
        mismatch(report, value, what, needs)
        return None
    number, unit = value.text.split("/")
    if unit not in RATE_UNITS_S:
        report.error(value.span, f"bad rate '{value.text}': unknown unit '{unit}'",
                     "per second (/s), minute (/m) or hour (/h)", did_you_mean(unit, RATE_UNITS_S))
        return None
    if float(number) <= 0:
        report.error(value.span, f"{what} must be more than zero", needs)
        return None
    return float(number) / RATE_UNITS_S[unit]


def read_string(report: Reporter, value: ast.Value, what: str, needs: str = "") -> str | None:
    """The content of a string value."""
    if value.kind is not ast.ValueKind.STRING:
        hint = f'put it in quotes: "{value.text}"' if value.kind is not ast.ValueKind.LIST else ""
        mismatch(report, value, what, needs or 'a string in double quotes ("...")', hint)
        return None
    return value.text


def read_scalar_text(report: Reporter, value: ast.Value, what: str) -> str | None:
    """Any single value as text (strings, names and numbers alike); lists are refused."""
    if value.kind is ast.ValueKind.LIST:
        mismatch(report, value, what, "a single value")
        return None
    return value.text


def read_text_list(report: Reporter, value: ast.Value, what: str) -> tuple[str, ...] | None:
    """A list of single values as texts; a lone value counts as a list of one."""
    items = value.items if value.kind is ast.ValueKind.LIST else (value,)
    texts = [read_scalar_text(report, item, what) for item in items]
    if any(text is None for text in texts):
        return None
    return tuple(text for text in texts if text is not None)


def placeholders(report: Reporter, value: ast.Value, what: str) -> tuple[str, ...] | None:
    """The `{name}` placeholders of a template string, checking brace balance."""
    text = value.text
    stripped = PLACEHOLDER.sub("", text.replace("{{", "").replace("}}", ""))
    if "{" in stripped or "}" in stripped:
        column = value.span.column + 1 + max(text.find("{"), 0)
        report.error(ast.Span(value.span.line, column), f"unbalanced brace in {what}",
                     "placeholders written as {name}; write {{ or }} for a literal brace")
        return None
    names = PLACEHOLDER.findall(text.replace("{{", "").replace("}}", ""))
    return tuple(names)


def placeholder_span(value: ast.Value, name: str) -> ast.Span:
    """The span of `{name}` inside a one-line string value (for a caret under it)."""
    offset = value.text.find("{" + name + "}")
    if offset < 0 or "\\" in value.text or "\n" in value.text:
        return value.span
    return ast.Span(value.span.line, value.span.column + 1 + offset, len(name) + 2)
