"""Rules restricted to log sources plan from those sources' summaries only (pure).

`source NAME` in a rule says it learns from that source's logs alone (rules.md): its
templates, diagnoses and ranking come from the merge of the reports shipped under that
source name (warmd.toml `[sources.NAME]`), not from every log the cluster reads. Rules
without `source` plan from the merge of all reports. Each group of rules with the same
sources is ranked on its own summary; the groups' requests are then ranked together by
score (the miss a warmed key saves, comparable across summaries) and cut at the budget.
"""

from __future__ import annotations

from collections.abc import Mapping

from warmd.analysis.summary import Summary
from warmd.rules.compiled import CompiledRuleSet
from warmd.scheduler.plan_rules import RuledPrediction, predict_ruled

Sources = tuple[str, ...]  # sorted source names; () for every source
BySource = Mapping[Sources, Summary | None]  # the merged summary of each group's sources


def rule_sources(ruleset: CompiledRuleSet) -> dict[str, Sources]:
    """Rule name -> the sources it learns from (sorted, () for all)."""
    return {rule.name: tuple(sorted(set(rule.sources))) for rule in ruleset.rules}


def source_sets(ruleset: CompiledRuleSet | None) -> tuple[Sources, ...]:
    """The distinct source restrictions of the rules (the summaries a plan needs beside the
    merge of all); empty when no rule names a source."""
    if ruleset is None:
        return ()
    return tuple(sorted({sources for sources in rule_sources(ruleset).values() if sources}))


def rules_by_sources(ruleset: CompiledRuleSet,
                     only_rules: tuple[str, ...] = ()) -> dict[Sources, tuple[str, ...]]:
    """The rules (restricted to `only_rules` when given) grouped by their sources."""
    groups: dict[Sources, list[str]] = {}
    for name, sources in rule_sources(ruleset).items():
        if not only_rules or name in only_rules:
            groups.setdefault(sources, []).append(name)
    return {sources: tuple(names) for sources, names in sorted(groups.items())}


def predict_by_source(summary: Summary, by_source: BySource, ruleset: CompiledRuleSet,
                      only_rules: tuple[str, ...], at_s: float, horizon_s: float,
                      budget: int, notes: list[str] | None = None) -> list[RuledPrediction]:
    """The best `budget` requests the rules select, each group of rules planned from its
    sources' summary; a group whose sources no node has reported is left out (with a note).

    Without source restrictions this is `predict_ruled` on `summary` itself.
    """
    groups = rules_by_sources(ruleset, only_rules)
    if set(groups) <= {()}:
        return predict_ruled(summary, ruleset, only_rules, at_s, horizon_s, budget)
    kept: list[RuledPrediction] = []
    for sources, names in groups.items():
        own = summary if not sources else by_source.get(sources)
        if own is None:
            if notes is not None:
                notes.append(f"rules {', '.join(names)}: no node reports source "
                             f"{', '.join(sources)} (warmd.toml [sources.NAME]); "
                             "nothing planned for them")
            continue
        kept += predict_ruled(own, ruleset, names, at_s, horizon_s, budget)
    kept.sort(key=lambda item: (-item.prediction.score, item.prediction.target))
    return kept[:budget]
