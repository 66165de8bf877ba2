"""The committed rule set as /rules shows it: version, files, each rule's triggers, the
next time each cron trigger fires and whether an operator switched it off; the kept
versions with what changed from the one before; and `explain` of a request typed into a form."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from warmd.errors import AdminError
from warmd.rules.compile import KnownNames, check_files
from warmd.rules.compiled import Trigger
from warmd.rules.cron import CronSpec
from warmd.rules.errors import render_all
from warmd.scheduler.plan_rules import DAY_MS, latest_cron_ms
from warmd.statemachine.ruleset import RuleVersion
from warmd.statemachine.state import MachineState
from warmd.web.console.readers import ConsoleReaders
from warmd.web.console.replies import actor_of

NEXT_FIRE_DAYS_MAX = 400
EXPLAIN_CHARS_MAX = 2000
DIFF_LINES_MAX = 400  # of one version's diff on the page (the API has the same cut)


@dataclass(frozen=True, slots=True)
class RuleRow:
    name: str
    path: str
    target: str
    triggers: tuple[str, ...]
    next_fire_ms: int | None
    enabled: bool = True
    switched: str = ""  # who disabled it and when: "by alice at index 42"
    disabled_ms: int = 0


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One kept version of the set; `diff` is a unified diff against the version before it
    (the whole text for the oldest kept), "" when either text was not kept."""

    version: str
    index: int
    set_ms: int
    actor: str
    files: tuple[str, ...]
    current: bool
    text_kept: bool
    diff: str


@dataclass(frozen=True, slots=True)
class RulesData:
    version: str
    index: int
    set_ms: int
    files: list[tuple[str, str]] = field(default_factory=list)
    rules: list[RuleRow] = field(default_factory=list)
    problems: str = ""  # why the committed set does not compile on this node
    history: list[VersionRow] = field(default_factory=list)  # newest first
    disabled_elsewhere: list[str] = field(default_factory=list)  # switched off, not in this set


def _joined(version: RuleVersion) -> list[str]:
    lines = []
    for name, text in zip(version.file_names, version.texts, strict=True):
        lines += [f"# --- {name}\n", *text.splitlines(keepends=True)]
    return lines


def version_diff(older: RuleVersion | None, newer: RuleVersion) -> str:
    """What `newer` changed from `older` as a unified diff (its text when there is no older),
    cut at DIFF_LINES_MAX lines; "" when a text is not kept."""
    if not newer.texts or (older is not None and not older.texts):
        return ""
    before = _joined(older) if older is not None else []
    lines = list(difflib.unified_diff(before, _joined(newer), fromfile=older.version[:12]
                                      if older else "(none)", tofile=newer.version[:12]))
    cut = [line if line.endswith("\n") else line + "\n" for line in lines[:DIFF_LINES_MAX]]
    if len(lines) > DIFF_LINES_MAX:
        cut.append(f"... {len(lines) - DIFF_LINES_MAX} more lines\n")
    return "".join(cut) or "(same text)\n"


def history_rows(history: list[RuleVersion], current: str) -> list[VersionRow]:
    """The kept versions, newest first, each with its diff from the one before."""
    rows = []
    for position, version in enumerate(history):
        older = history[position - 1] if position else None
        rows.append(VersionRow(version.version, version.index, version.set_ms, version.actor,
                               version.file_names, version.version == current and
                               position == len(history) - 1, bool(version.texts),
                               version_diff(older, version)))
    return rows[::-1]


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
    history = history_rows(state.rule_history, record.version)
    result = check_files(record.files, known)
    if result.ruleset is None:
        texts = dict(record.files)
        problems = "\n\n".join(render_all(name, texts[name], found)
                               for name, found in result.diagnostics.items() if found)
        return RulesData(record.version, record.index, record.set_ms, list(record.files),
                         problems=problems, history=history)
    ruleset = result.ruleset
    disabled = state.disabled_rules
    rows = []
    for rule in ruleset.rules:
        triggers = [expanded for trigger in rule.triggers for expanded in (
            ruleset.schedules.get(trigger.target, ()) if trigger.kind == "schedule" else (trigger,))]
        fires = [next_cron_ms(trigger.cron, now_ms) for trigger in triggers
                 if trigger.kind == "cron" and trigger.cron is not None]
        upcoming = [at for at in fires if at is not None]
        switch = disabled.get(rule.name)
        rows.append(RuleRow(rule.name, f"{rule.method or 'ANY'} {rule.path.text}",
                            rule.backend or "", tuple(describe(t) for t in triggers),
                            min(upcoming) if upcoming and switch is None else None,
                            enabled=switch is None,
                            switched=f"by {switch.actor or 'the cluster'} at index {switch.index}"
                            if switch else "", disabled_ms=switch.set_ms if switch else 0))
    names = {row.name for row in rows}
    return RulesData(record.version, record.index, record.set_ms, list(record.files), rows,
                     history=history,
                     disabled_elsewhere=sorted(name for name in disabled if name not in names))


def key_patterns(state: MachineState, known: KnownNames) -> dict[str, str]:
    """Each committed rule's `key` template by rule name (rules without one are left out)."""
    if state.rules is None:
        return {}
    ruleset = check_files(state.rules.files, known).ruleset
    if ruleset is None:
        return {}
    return {rule.name: rule.key_template for rule in ruleset.rules if rule.key_template}


async def explain(readers: ConsoleReaders, line: str, request: web.Request) -> dict[str, Any]:
    """The `explain` admin command's answer for `line`, or its error as {"error": ...}."""
    if len(line) > EXPLAIN_CHARS_MAX:
        return {"error": f"a request line has at most {EXPLAIN_CHARS_MAX} characters"}
    try:
        answer = await readers.invoke("explain", {"request": line}, actor_of(request))
    except AdminError as error:
        return {"error": error.message}
    return answer if isinstance(answer, dict) else {"answer": answer}
