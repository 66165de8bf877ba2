"""The committed rule set as /rules shows it: version, files, each rule's triggers and the
next time each cron trigger fires; and `explain` of a request typed into a form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from warmd.errors import AdminError
from warmd.rules.compile import KnownNames, check_files
from warmd.rules.compiled import Trigger
from warmd.rules.cron import CronSpec
from warmd.rules.errors import render_all
from warmd.scheduler.plan_rules import DAY_MS, latest_cron_ms
from warmd.statemachine.state import MachineState
from warmd.web.console.readers import ConsoleReaders
from warmd.web.console.replies import actor_of

NEXT_FIRE_DAYS_MAX = 400
EXPLAIN_CHARS_MAX = 2000


@dataclass(frozen=True, slots=True)
class RuleRow:
    name: str
    path: str
    target: str
    triggers: tuple[str, ...]
    next_fire_ms: int | None


@dataclass(frozen=True, slots=True)
class RulesData:
    version: str
    index: int
    set_ms: int
    files: list[tuple[str, str]] = field(default_factory=list)
    rules: list[RuleRow] = field(default_factory=list)
    problems: str = ""  # why the committed set does not compile on this node


def next_cron_ms(spec: CronSpec, after_ms: int) -> int | None:
    """The first time of `spec` (UTC, whole minutes) after `after_ms`, within a year or so."""
    first_day = after_ms // DAY_MS
    for day in range(first_day, first_day + NEXT_FIRE_DAYS_MAX):
        day_start = day * DAY_MS
        if latest_cron_ms(spec, max(after_ms, day_start - 1), day_start + DAY_MS - 1) is None:
            continue
        for hour in sorted(spec.hours):
            for minute in sorted(spec.minutes):
                at_ms = day_start + (hour * 60 + minute) * 60_000
                if at_ms > after_ms:
                    return at_ms
    return None


def describe(trigger: Trigger) -> str:
    if trigger.kind == "cron" and trigger.cron is not None:
        return f"cron {trigger.cron.expression}"
    if trigger.kind == "every":
        return f"every {trigger.interval_s:g} s"
    return trigger.kind + (f" of {trigger.target}" if trigger.target else "")


def rules_data(state: MachineState, known: KnownNames, now_ms: int) -> RulesData | None:
    """The committed set (None before any), compiled with this node's names for its rows."""
    record = state.rules
    if record is None:
        return None
    result = check_files(record.files, known)
    if result.ruleset is None:
        texts = dict(record.files)
        problems = "\n\n".join(render_all(name, texts[name], found)
                               for name, found in result.diagnostics.items() if found)
        return RulesData(record.version, record.index, record.set_ms, list(record.files),
                         problems=problems)
    ruleset = result.ruleset
    rows = []
    for rule in ruleset.rules:
        triggers = [expanded for trigger in rule.triggers for expanded in (
            ruleset.schedules.get(trigger.target, ()) if trigger.kind == "schedule" else (trigger,))]
        fires = [next_cron_ms(trigger.cron, now_ms) for trigger in triggers
                 if trigger.kind == "cron" and trigger.cron is not None]
        upcoming = [at for at in fires if at is not None]
        rows.append(RuleRow(rule.name, f"{rule.method or 'ANY'} {rule.path.text}",
                            rule.backend or "", tuple(describe(t) for t in triggers),
                            min(upcoming) if upcoming else None))
    return RulesData(record.version, record.index, record.set_ms, list(record.files), rows)


async def explain(readers: ConsoleReaders, line: str, request: web.Request) -> dict[str, Any]:
    """The `explain` admin command's answer for `line`, or its error as {"error": ...}."""
    if len(line) > EXPLAIN_CHARS_MAX:
        return {"error": f"a request line has at most {EXPLAIN_CHARS_MAX} characters"}
    try:
        answer = await readers.invoke("explain", {"request": line}, actor_of(request))
    except AdminError as error:
        return {"error": error.message}
    return answer if isinstance(answer, dict) else {"answer": answer}
