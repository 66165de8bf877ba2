"""Cron expressions: the five standard fields, checked with a caret per bad field (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from warmd.rules import ast
from warmd.rules.values import Reporter

MACROS = {
    "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
          ("day of week", 0, 7))
NAMES = {
    3: {name: number for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)},
    4: {name: number for number, name in enumerate(
        ["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}


@dataclass(frozen=True)
class CronSpec:
    """A checked cron expression: the allowed values of each of the five fields."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday; 7 is folded onto 0


def read_cron(report: Reporter, value: ast.Value) -> CronSpec | None:
    """Check a cron string field by field; a bad field is reported with its own column."""
    if value.kind is not ast.ValueKind.STRING:
        report.error(value.span, "type mismatch: cron needs a string in double quotes",
                     'five fields like "30 5 * * *" or a macro like "@daily"')
        return None
    text = MACROS.get(value.text.strip(), value.text)
    fields = text.split()
    if len(fields) != 5:
        report.error(value.span, f"bad cron expression: {len(fields)} fields instead of 5",
                     "minute hour day-of-month month day-of-week, like \"30 5 * * *\"")
        return None
    sets: list[frozenset[int]] = []
    offset = 0
    for position, (field_text, (label, low, high)) in enumerate(zip(fields, FIELDS, strict=True)):
        offset = value.text.find(field_text, offset) if text is value.text else -1
        column = value.span.column + 1 + offset if offset >= 0 else value.span.column
        allowed = _field(field_text, low, high, NAMES.get(position, {}))
        if isinstance(allowed, str):
            report.error(ast.Span(value.span.line, column, len(field_text)),
                         f"bad cron {label} field '{field_text}': {allowed}",
                         f"*, */N, a number {low}-{high}, a range A-B[/N] or a comma list")
            return None
        sets.append(allowed)
        offset += len(field_text) if offset >= 0 else 0
    days_of_week = frozenset(day % 7 for day in sets[4])
    return CronSpec(value.text, sets[0], sets[1], sets[2], sets[3], days_of_week)


def _field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int] | str:
    """The values a field allows, or a sentence saying what is wrong."""
    values: set[int] = set()
    start: int | None
    stop: int | None
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, names) if step_text else 1
        if step is None or step < 1:
            return f"step '{step_text}' is not a positive number"
        if base == "*":
            start, stop = low, high
        else:
            first, _, last = base.partition("-")
            start, stop = _number(first, names), _number(last, names) if last else None
            if start is None:
                return f"'{first}' is not a number" + (" or a name" if names else "")
            stop = stop if last else (high if step_text else start)
            if stop is None:
                return f"'{last}' is not a number"
        if not (low <= start <= high and low <= stop <= high):
            return f"values must lie within {low}-{high}"
        if start > stop:
            return f"range {start}-{stop} runs backwards"
        values.update(range(start, stop + 1, step))
    return frozenset(values)


def _number(text: str, names: dict[str, int]) -> int | None:
    if text.isdigit():
        return int(text)
    return names.get(text.lower())
