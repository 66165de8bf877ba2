"""A compiled rule set applied to the prediction engine (pure).

Rules decide three things the statistics cannot: which logged requests are warm-up
material at all (selection), what a parameter is (overrides of the diagnosis, drop,
never-warm), and how much of the budget each rule may take (`budget top N`,
`budget P% of capacity`). Requests that no rule selects are left out of the history
the engine learns from, so they are never predicted: with rules, warm-up is opt-in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary
from warmd.rules import compiled
from warmd.rules.compiled import CompiledRule, CompiledRuleSet, OverrideKind
from warmd.rules.engine import EngineConfig, Prediction, predict
from warmd.rules.ruletest import request_from_target
from warmd.rules.tree import Overrides, ParamClass, ParamOverride

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Selected:
    """The history records some rule selects, with the rule of each (same order)."""

    records: tuple[Record, ...]
    rule_names: tuple[str, ...]
    unmatched: int


@dataclass(frozen=True)
class RulePlan:
    """What the engine needs from the rules for one summary."""

    ruleset: CompiledRuleSet
    template_rules: Mapping[str, str]  # template pattern -> name of the rule that owns it
    overrides: Overrides


def select_records(ruleset: CompiledRuleSet, records: Sequence[Record]) -> Selected:
    """Keep the records a rule selects (first match wins), counting the rest."""
    kept: list[Record] = []
    names: list[str] = []
    for record in records:
        request = request_from_target(record.method, record.target, record.status,
                                      record.agent, record.client)
        selection = ruleset.select(request)
        if selection is not None:
            kept.append(record)
            names.append(selection.rule)
    return Selected(tuple(kept), tuple(names), len(records) - len(kept))


def make_plan(ruleset: CompiledRuleSet, summary: Summary, selected: Selected) -> RulePlan:
    """Map each template of `summary` (built from `selected.records`) to the rule that
    selected most of its requests, and that rule's overrides onto the template's slots."""
    votes: dict[str, Counter[str]] = {}
    for record, rule_name in zip(selected.records, selected.rule_names, strict=True):
        parts, _ = summary.split(record.target)
        votes.setdefault(parts.template.pattern, Counter())[rule_name] += 1
    template_rules = {pattern: counter.most_common(1)[0][0] for pattern, counter in votes.items()}
    return RulePlan(ruleset, template_rules, rule_overrides(ruleset, summary, template_rules))


def rule_overrides(ruleset: CompiledRuleSet, summary: Summary,
                   template_rules: Mapping[str, str]) -> dict[tuple[str, str], ParamOverride]:
    """Each owning rule's `param` statements as tree overrides on its templates' slots
    (shared by make_plan, which owns templates by record votes, and the leader's planner,
    which owns them by each template's example request)."""
    overrides: dict[tuple[str, str], ParamOverride] = {}
    for pattern, rule_name in template_rules.items():
        rule = ruleset.rule(rule_name)
        stats = summary.templates.get(pattern)
        if rule is None or stats is None:
            continue
        for slot in stats.decomposed_example.template.slot_names:
            override = _override_for_slot(rule, slot)
            if override is not None:
                overrides[(pattern, slot)] = tree_override(override)
    return overrides


def _override_for_slot(rule: CompiledRule, slot: str) -> compiled.ParamOverride | None:
    """The rule's override naming `slot`: a query parameter (`cb`, repeated as `cb#2`) or a
    path capture, which lands on the template slot of its segment (`path[3]`, `path[3].date`)."""
    base = slot.split("#", 1)[0]
    found = rule.override(base)
    if found is not None:
        return found
    segments = rule.path.text.split("/")
    for override in rule.overrides:
        for position, segment in enumerate(segments):
            if re.search(r"\{" + re.escape(override.name) + r"[:}]", segment) and (
                    slot == f"path[{position}]" or slot.startswith(f"path[{position}].")):
                return override
    return None


def tree_override(override: compiled.ParamOverride) -> ParamOverride:
    """A rule's `param` statement as the diagnosis tree's override."""
    if override.kind is OverrideKind.DROP:
        return ParamOverride(drop_from_key=True)
    if override.kind is OverrideKind.NEVER_WARM:
        return ParamOverride(never_warm=True)
    param_class = ParamClass[override.kind.value]
    if param_class is ParamClass.DATE_RELATIVE:
        return ParamOverride(param_class=param_class,
                             date_offset_days=round(override.offset_s / SECONDS_PER_DAY),
                             date_format=override.date_format)
    return ParamOverride(param_class=param_class)


def rule_caps(ruleset: CompiledRuleSet, budget: int) -> dict[str, int]:
    """Rule name -> most requests it may take out of `budget` (rules without a budget absent)."""
    caps: dict[str, int] = {}
    for rule in ruleset.rules:
        limits = []
        if rule.budget_top > 0:
            limits.append(rule.budget_top)
        if rule.budget_share > 0:
            limits.append(int(rule.budget_share * budget))
        if limits:
            caps[rule.name] = min(limits)
    return caps


def predict_with_rules(summary: Summary, plan: RulePlan, at_s: float, horizon_s: float,
                       budget: int, config: EngineConfig | None = None) -> list[Prediction]:
    """The engine's best `budget` requests under the rules' overrides and per-rule budgets.

    A rule over its cap gives way to the next best request of another rule; the engine
    is asked for more candidates (doubling) until the budget fills or none are left.
    """
    if budget <= 0:
        return predict(summary, at_s, horizon_s, budget, plan.overrides, config,
                       self_backtest=False)
    caps = rule_caps(plan.ruleset, budget)
    asked = budget
    while True:
        ranked = predict(summary, at_s, horizon_s, asked, plan.overrides, config,
                         self_backtest=False)  # the rules plan their templates
        kept: list[Prediction] = []
        used: Counter[str] = Counter()
        for prediction in ranked:
            rule_name = plan.template_rules.get(prediction.template)
            if rule_name is None:
                continue  # a template no selected request belongs to: not opted in
            if rule_name in caps and used[rule_name] >= caps[rule_name]:
                continue
            used[rule_name] += 1
            kept.append(prediction)
            if len(kept) == budget:
                return kept
        if len(ranked) < asked:
            return kept
        asked *= 2


def summarise_selected(selected: Selected, chunk_lines: int = 100_000) -> Summary:
    """The engine's statistics over the selected records only."""
    summary = Summary()
    records = list(selected.records)
    for start in range(0, len(records), chunk_lines):
        summary.add_records(records[start:start + chunk_lines])
    return summary


def predict_records(ruleset: CompiledRuleSet, records: Sequence[Record], at_s: float,
                    horizon_s: float, budget: int) -> tuple[list[Prediction], Selected]:
    """Select, summarise, plan and predict in one call (the CLI and `rules test` path)."""
    selected = select_records(ruleset, records)
    summary = summarise_selected(selected)
    if not selected.records or budget <= 0:
        return [], selected
    plan = make_plan(ruleset, summary, selected)
    return predict_with_rules(summary, plan, at_s, horizon_s, budget), selected
