"""Committed rules applied to the merged summary, and when rule triggers fire (pure).

The leader has no raw records, only the merged summary, so a template belongs to the rule
that selects its example request, and every predicted request is checked against the rules
again (a `where` on a value the template's example did not show still filters it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from warmd.analysis.summary import EPOCH_ORDINAL, Summary
from warmd.rules.apply import rule_caps, rule_overrides
from warmd.rules.compiled import CompiledRule, CompiledRuleSet, Selection, Trigger
from warmd.rules.cron import CronSpec
from warmd.rules.engine import Prediction, predict
from warmd.rules.ruletest import request_from_target
from warmd.rules.tree import ParamOverride

VOTING_KEYS_PER_TEMPLATE = 256  # top requests tried when a template's example is not selected
ASK_FACTOR_MAX = 64  # stop asking the engine for more candidates past budget x this
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
CRON_LOOKBACK_DAYS = 1_470  # about four years: a Feb 29 that must fall on a given weekday
ALL_DAYS_OF_MONTH = frozenset(range(1, 32))
ALL_DAYS_OF_WEEK = frozenset(range(7))
RULE_EVENTS = ("cache-flush", "cache-restart", "gate-ready", "new-rules")


@dataclass(frozen=True, slots=True)
class RuledPrediction:
    """A predicted request with the rule selection that owns it (its key, its rule)."""

    prediction: Prediction
    selection: Selection


def selection_of(ruleset: CompiledRuleSet, target: str) -> Selection | None:
    """The rules' verdict on `target` asked as a successful GET (what a warm-up replays)."""
    return ruleset.select(request_from_target("GET", target, 200, "", ""))


def template_owners(ruleset: CompiledRuleSet, summary: Summary,
                    only_rules: tuple[str, ...] = ()) -> dict[str, str]:
    """Template pattern -> the rule that owns it; templates no rule selects are absent.

    The example request decides (first matching rule wins). When the example is not
    selected, the template's most requested keys vote, so a `where` that the first-seen
    value happened to fail does not lose the whole template.
    """
    owners: dict[str, str] = {}
    unresolved: set[str] = set()
    for pattern in sorted(summary.templates):
        example = summary.templates[pattern].decomposed_example
        selection = selection_of(ruleset, example.template.compose(example.values))
        if selection is None:
            unresolved.add(pattern)
        else:
            owners[pattern] = selection.rule
    if unresolved:
        owners.update(_owners_by_vote(ruleset, summary, unresolved))
    if only_rules:
        owners = {pattern: rule for pattern, rule in owners.items() if rule in only_rules}
    return owners


def _owners_by_vote(ruleset: CompiledRuleSet, summary: Summary,
                    patterns: set[str]) -> dict[str, str]:
    """Owners of `patterns` by the rules that select their top requests, weighted by count."""
    keys: dict[str, list[tuple[int, str]]] = {}
    for key, entry in summary.requests:
        parts, _ = summary.split(str(key))
        if parts.template.pattern in patterns:
            keys.setdefault(parts.template.pattern, []).append((entry.count, str(key)))
    owners: dict[str, str] = {}
    for pattern in sorted(keys):
        votes: Counter[str] = Counter()
        top = sorted(keys[pattern], key=lambda pair: (-pair[0], pair[1]))
        for count, key in top[:VOTING_KEYS_PER_TEMPLATE]:
            selection = selection_of(ruleset, key)
            if selection is not None:
                votes[selection.rule] += count
        if votes:
            owners[pattern] = min(votes.items(), key=lambda item: (-item[1], item[0]))[0]
    return owners


def plan_overrides(ruleset: CompiledRuleSet, summary: Summary,
                   owners: Mapping[str, str]) -> dict[tuple[str, str], ParamOverride]:
    """The owning rules' overrides, plus never-warm on every slot of unowned templates, so
    the engine spends no candidates on requests the rules would throw away."""
    overrides = rule_overrides(ruleset, summary, owners)
    for pattern, stats in summary.templates.items():
        if pattern not in owners:
            for slot in stats.decomposed_example.template.slot_names:
                overrides[(pattern, slot)] = ParamOverride(never_warm=True)
    return overrides


def predict_ruled(summary: Summary, ruleset: CompiledRuleSet, only_rules: tuple[str, ...],
                  at_s: float, horizon_s: float, budget: int) -> list[RuledPrediction]:
    """The best `budget` requests that a rule selects (not never-warm), within per-rule caps.

    Like apply.predict_with_rules, but the owner of each request is the rule that selects
    the predicted request itself; a rule over its cap gives way to the next best request,
    asking the engine for more candidates (doubling, bounded) until the budget fills.
    """
    if budget <= 0:
        return []
    owners = template_owners(ruleset, summary, only_rules)
    if not owners:
        return []
    overrides = plan_overrides(ruleset, summary, owners)
    caps = rule_caps(ruleset, budget)
    verdicts: dict[str, Selection | None] = {}
    asked = budget
    while True:
        ranked = predict(summary, at_s, horizon_s, asked, overrides,
                         self_backtest=False)  # the rules plan their templates
        kept = _keep_selected(ranked, ruleset, owners, only_rules, caps, budget, verdicts)
        if len(kept) == budget or len(ranked) < asked or asked >= budget * ASK_FACTOR_MAX:
            return kept
        asked *= 2


def _keep_selected(ranked: list[Prediction], ruleset: CompiledRuleSet,
                   owners: Mapping[str, str], only_rules: tuple[str, ...],
                   caps: Mapping[str, int], budget: int,
                   verdicts: dict[str, Selection | None]) -> list[RuledPrediction]:
    """Walk the ranking best first, keeping what the rules select, up to caps and budget."""
    kept: list[RuledPrediction] = []
    used: Counter[str] = Counter()
    for prediction in ranked:
        if prediction.template not in owners:
            continue
        if prediction.target not in verdicts:
            verdicts[prediction.target] = selection_of(ruleset, prediction.target)
        selection = verdicts[prediction.target]
        if selection is None or selection.never_warm:
            continue
        if only_rules and selection.rule not in only_rules:
            continue
        if used[selection.rule] >= caps.get(selection.rule, budget):
            continue
        used[selection.rule] += 1
        kept.append(RuledPrediction(prediction, selection))
        if len(kept) == budget:
            break
    return kept


# ---- triggers -------------------------------------------------------------------------------


def rule_triggers(ruleset: CompiledRuleSet, rule: CompiledRule) -> tuple[Trigger, ...]:
    """A rule's triggers with its `schedule NAME` references replaced by the schedules'."""
    expanded: list[Trigger] = []
    for trigger in rule.triggers:
        if trigger.kind == "schedule":
            expanded.extend(ruleset.schedules.get(trigger.target, ()))
        else:
            expanded.append(trigger)
    return tuple(expanded)


def triggers_due(ruleset: CompiledRuleSet | None, last_plan_ms: Mapping[str, int], now_ms: int,
                 *, since_ms: int | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """The rules' `every` and `cron` triggers due now, as (trigger name, (rule,)) pairs.

    Trigger names are "every:<rule>" and "cron:<rule>"; `last_plan_ms` maps a name to the
    leader's time of its last plan. A rule's shortest `every` governs; one that never
    planned is due at once (a new rule warms now). A `cron` trigger is due when one of its times (UTC minutes)
    falls after its last plan and at or before `now_ms`; one that never planned counts
    from `since_ms` (e.g. when the rule set was committed), by default the last minute,
    so a leader that just started does not replay a whole day of cron times.
    """
    if ruleset is None:
        return []
    start_ms = now_ms - MINUTE_MS if since_ms is None else since_ms
    due: list[tuple[str, tuple[str, ...]]] = []
    for rule in ruleset.rules:
        triggers = rule_triggers(ruleset, rule)
        intervals = [t.interval_s for t in triggers if t.kind == "every" and t.interval_s > 0]
        every_name = f"every:{rule.name}"
        if intervals and _every_due(min(intervals), last_plan_ms.get(every_name), now_ms):
            due.append((every_name, (rule.name,)))
        cron_name = f"cron:{rule.name}"
        after_ms = last_plan_ms.get(cron_name, start_ms)
        if any(latest_cron_ms(t.cron, after_ms, now_ms) is not None
               for t in triggers if t.kind == "cron" and t.cron is not None):
            due.append((cron_name, (rule.name,)))
    return due


def _every_due(interval_s: float, last_ms: int | None, now_ms: int) -> bool:
    return last_ms is None or now_ms - last_ms >= math.ceil(interval_s * 1000)


def latest_cron_ms(spec: CronSpec, after_ms: int, until_ms: int) -> int | None:
    """The latest time of `spec` (UTC, whole minutes) in (after_ms, until_ms], or None."""
    if until_ms <= after_ms:
        return None
    last_day = until_ms // DAY_MS
    first_day = max(after_ms // DAY_MS, last_day - CRON_LOOKBACK_DAYS)
    hours = sorted(spec.hours, reverse=True)
    minutes = sorted(spec.minutes, reverse=True)
    for day in range(last_day, first_day - 1, -1):
        if not _day_matches(spec, day):
            continue
        for hour in hours:
            for minute in minutes:
                at_ms = day * DAY_MS + hour * HOUR_MS + minute * MINUTE_MS
                if at_ms <= until_ms:
                    return at_ms if at_ms > after_ms else None
    return None


def _day_matches(spec: CronSpec, epoch_day: int) -> bool:
    """Cron's day rule: with both day fields restricted, either may match (Vixie cron)."""
    day = date.fromordinal(epoch_day + EPOCH_ORDINAL)
    if day.month not in spec.months:
        return False
    month_day = day.day in spec.days_of_month
    week_day = day.isoweekday() % 7 in spec.days_of_week
    if spec.days_of_month != ALL_DAYS_OF_MONTH and spec.days_of_week != ALL_DAYS_OF_WEEK:
        return month_day or week_day
    return month_day and week_day


def event_rules(ruleset: CompiledRuleSet | None, event_kind: str,
                target: str = "") -> tuple[str, ...] | None:
    """Which rules an event plans: () for every rule, None for none, else their names.

    With no rule set, or no rule naming any event, every event plans everything (the
    zero-config habit). Otherwise the event plans the rules whose triggers name it
    (cache-flush/cache-restart with that cache, gate-ready with that gate, new-rules),
    plus the rules without any trigger, which follow the default plan.

    Raises:
        ValueError: an unknown event kind.
    """
    if event_kind not in RULE_EVENTS:
        raise ValueError(f"unknown event {event_kind!r}: expected one of {', '.join(RULE_EVENTS)}")
    if ruleset is None:
        return ()
    triggers = {rule.name: rule_triggers(ruleset, rule) for rule in ruleset.rules}
    if not any(t.kind in RULE_EVENTS for found in triggers.values() for t in found):
        return ()
    chosen = tuple(name for name, found in triggers.items()
                   if not found or any(_names_event(t, event_kind, target) for t in found))
    if len(chosen) == len(ruleset.rules):
        return ()
    return chosen or None


def _names_event(trigger: Trigger, event_kind: str, target: str) -> bool:
    return trigger.kind == event_kind and (event_kind == "new-rules" or trigger.target == target)
