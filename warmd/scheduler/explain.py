"""Why one request would or would not be warmed: template, diagnoses, owning rule, rank (pure).

It answers from the merged summary every replica holds and the committed rules, the way the
leader's planner decides: each template belongs to the rule that selects its example request
(a GET answered 200), that rule's `param` statements override the diagnosis, predictions are
ranked and cut at the budget (and each rule at its own cap), and a prediction no rule selects,
or one carrying a never-warm parameter, is left out. The clock comes in as `now_s`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from warmd.analysis.summary import Summary, TemplateStats
from warmd.analysis.target import Decomposed
from warmd.rules.apply import rule_caps, rule_overrides
from warmd.rules.compiled import CompiledRuleSet, Selection, Trigger
from warmd.rules.engine import Prediction, cache_target, rank
from warmd.rules.frontier import frontiers_of
from warmd.rules.ranking import TemplateShare
from warmd.rules.tree import Diagnosis, Overrides, TemplateDiagnosis, diagnose_template
from warmd.scheduler.plan_rules import (
    plan_overrides,
    rule_triggers,
    selection_of,
    template_owners,
)
from warmd.scheduler.plan_sources import BySource, predict_by_source, rule_sources, source_sets

REQUEST_CHARS_MAX = 8192
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RANK_SEARCH_FACTOR_MAX = 64  # look this many budgets deep for a request below the cut
SHARES_SHOWN_MAX = 40  # rows of the self-backtest table an explanation carries


@dataclass(frozen=True, slots=True)
class RequestLine:
    """A parsed `METHOD /path?query` line."""

    method: str
    target: str

    @property
    def text(self) -> str:
        return f"{self.method} {self.target}"


@dataclass(frozen=True, slots=True)
class ExplainSettings:
    """The planner's cut: how many requests a plan holds and the window it predicts."""

    budget: int
    horizon_s: float
    default_target: str = ""  # the cache zero-config plans (and rules without a backend) warm


def parse_request_line(text: object) -> RequestLine:
    """`GET /path?q`, a bare `/path?q`, `GET /path HTTP/1.1` or a full `http://host/path?q`.

    Raises:
        ValueError: the line is empty, too long, has an unknown method or no `/path`.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the request is empty; give 'GET /path?query' or '/path?query'")
    if len(text) > REQUEST_CHARS_MAX:
        raise ValueError(f"the request is longer than {REQUEST_CHARS_MAX} characters")
    words = text.split()
    if len(words) == 3 and words[2].upper().startswith("HTTP/"):
        words = words[:2]
    if len(words) == 1 and words[0].upper() in HTTP_METHODS:
        raise ValueError(f"the request {text!r} has no target; expected 'GET /path?query'")
    if len(words) == 1:
        words = ["GET", words[0]]
    if len(words) != 2:
        raise ValueError(f"malformed request line {text!r}; expected 'GET /path?query'")
    method, target = words[0].upper(), words[1]
    if method not in HTTP_METHODS:
        raise ValueError(f"unknown method {words[0]!r} in {text!r}; expected 'GET /path?query' "
                         "or another of " + ", ".join(sorted(HTTP_METHODS)))
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not target.startswith("/"):
        raise ValueError(f"the target {target!r} must start with '/' (e.g. 'GET /path?query')")
    return RequestLine(method, target)


@dataclass(frozen=True, slots=True)
class RulesView:
    """The committed rules as the planner applies them to one summary."""

    ruleset: CompiledRuleSet
    owners: Mapping[str, str]  # template pattern -> the rule that owns it
    overrides: Overrides  # the owners' `param` statements (what the diagnosis shows)
    ranking_overrides: Overrides  # plus never-warm on unowned templates (what the engine gets)


def rules_view(ruleset: CompiledRuleSet, summary: Summary) -> RulesView:
    """Template owners and overrides, made by the planner's own functions."""
    owners = template_owners(ruleset, summary)
    return RulesView(ruleset, owners, rule_overrides(ruleset, summary, owners),
                     plan_overrides(ruleset, summary, owners))


def slot_document(diagnosis: Diagnosis, rule_name: str | None) -> dict[str, Any]:
    """One slot's class, what warming does with it, and every test of the tree that ran
    (the decisive one is the last that held: the tree stops at the test that classifies;
    when none held the class is the tree's default; a rule's `param` statement overrides)."""
    evidence = [str(item) for item in diagnosis.evidence]
    held = [str(item) for item in diagnosis.evidence if item.held]
    decisive = held[-1] if held else (
        f"no test held: {diagnosis.param_class.value} by default" if evidence else "")
    if diagnosis.overridden:
        decisive = f"set by a param statement of rule {rule_name}"
    return {"slot": diagnosis.slot, "class": diagnosis.param_class.value,
            "overridden": diagnosis.overridden, "drop_from_key": diagnosis.drop_from_key,
            "never_warm": diagnosis.never_warm, "evidence": evidence, "decisive": decisive}


@dataclass(frozen=True, slots=True)
class Ranked:
    """Where the request landed among the plan's predictions."""

    prediction: Prediction | None
    rank: int | None  # its position among the predictions the plan would keep (1-based)
    capped_by: str  # the rule whose own budget it fell under, "" if none
    searched: int = 0  # predictions the plan would keep that were looked at
    complete: bool = True  # False: the search stopped at its depth, not at the last prediction
    shares: tuple[TemplateShare, ...] = ()  # the self-backtest's split at the plan's budget


def rank_request(summary: Summary, view: RulesView | None, target: str,
                 settings: ExplainSettings, now_s: float) -> Ranked:
    """Walk the engine's ranking as the planner does (owners, selection, caps) until `target`,
    asking for deeper rankings (bounded) while it is not found."""
    if settings.budget <= 0:
        return Ranked(None, None, "")
    overrides = view.ranking_overrides if view is not None else None
    asked = settings.budget
    shares: tuple[TemplateShare, ...] = ()
    while True:
        ranked, split = rank(summary, now_s, settings.horizon_s, asked, overrides,
                             self_backtest=view is None)  # as the planner ranks
        shares = shares if asked > settings.budget else tuple(split)
        found = replace(_walk(ranked, view, target, settings.budget), shares=shares)
        if found.prediction is not None or len(ranked) < asked:
            return found
        if asked >= settings.budget * RANK_SEARCH_FACTOR_MAX:
            return Ranked(None, None, "", found.searched, complete=False, shares=shares)
        asked *= 4


def rank_in_plan(merged: Summary, by_source: BySource, ruleset: CompiledRuleSet, target: str,
                 settings: ExplainSettings, now_s: float) -> Ranked:
    """Where `target` lands in the plan itself when rules name sources: each group of rules
    is ranked on its sources' summary and the groups are cut together at the budget
    (plan_sources.predict_by_source), so only the plan's own list can say."""
    kept = predict_by_source(merged, by_source, ruleset, (), now_s, settings.horizon_s,
                             settings.budget)
    for position, item in enumerate(kept, start=1):
        if item.prediction.target == target:
            return Ranked(item.prediction, position, "", position)
    return Ranked(None, None, "", len(kept), complete=len(kept) < settings.budget)


def _unreported(line: RequestLine, selection: Selection | None, sources: tuple[str, ...],
                settings: ExplainSettings) -> dict[str, Any]:
    """The answer for a request whose rule learns from sources no node has reported."""
    rule = selection.rule if selection is not None else None
    return {"request": line.text, "template": "", "known_template": False, "rule": rule,
            "key_form": False, "request_rule": rule, "zero_config": False,
            "budget": settings.budget, "horizon_s": settings.horizon_s, "slots": [],
            "expected_hits": None, "rank": None, "source": None, "canonical": line.target,
            "template_count": 0, "request_count": 0, "would_warm": False, "planned_on": [],
            "why_not": [f"rule {rule} learns from source {', '.join(sources)} only, and no "
                        "node reports a summary of it (warmd.toml [sources.NAME])"],
            **shares_document((), "")}


def _walk(ranked: list[Prediction], view: RulesView | None, target: str, budget: int) -> Ranked:
    """The planner's keep-walk (plan_rules._keep_selected) without the budget stop."""
    caps = rule_caps(view.ruleset, budget) if view is not None else {}
    used: Counter[str] = Counter()
    kept = 0
    for prediction in ranked:
        rule_name = ""
        if view is not None:
            selection = selection_of(view.ruleset, prediction.target)
            if (prediction.template not in view.owners or selection is None
                    or selection.never_warm):
                continue
            rule_name = selection.rule
            if used[rule_name] >= caps.get(rule_name, budget):
                if prediction.target == target:
                    return Ranked(prediction, None, rule_name, kept)
                continue
        used[rule_name] += 1
        kept += 1
        if prediction.target == target:
            return Ranked(prediction, kept, "", kept)
    return Ranked(None, None, "", kept)


def _never_warm_reasons(diagnosis: TemplateDiagnosis, owner: str | None,
                        selection: Selection | None) -> list[str]:
    reasons = [f"never-warm: rule {owner} makes slot {slot.slot} never-warm" if slot.overridden
               else f"never-warm: slot {slot.slot} is {slot.param_class.value}"
               for slot in diagnosis.slots.values() if slot.never_warm]
    if selection is not None:
        shown = {slot.slot.split("#", 1)[0] for slot in diagnosis.slots.values() if slot.never_warm}
        reasons += [f"never-warm: rule {selection.rule} marks parameter {name} never-warm"
                    for name in selection.never_warm if name not in shown]
    return reasons


def _selection_reasons(view: RulesView | None, pattern: str, target: str,
                       selection: Selection | None) -> list[str]:
    if view is None:
        return []
    if selection is None:
        return [f"not selected by any rule: no rule matches GET {target}"]
    if pattern not in view.owners:
        return [f"not selected by any rule: rule {selection.rule} matches this request but "
                f"not the template's example or most requested keys"]
    return []


def _target_reasons(view: RulesView | None, selection: Selection | None,
                    settings: ExplainSettings) -> list[str]:
    """The planner leaves out requests it has no cache to warm into."""
    if settings.default_target:
        return []
    if view is None:
        return ["no target cache: zero-config plans warm [planner] target (or the only http "
                "cache), and neither is configured"]
    rule = view.ruleset.rule(selection.rule) if selection is not None else None
    if rule is not None and not rule.backend:
        return [f"no target cache: rule {rule.name} has no backend and [planner] has no target"]
    return []


def _budget_reasons(ranked: Ranked, settings: ExplainSettings) -> list[str]:
    if ranked.capped_by:
        return [f"below the budget of rule {ranked.capped_by}: its share is full of better requests"]
    if ranked.rank is None and not ranked.complete:
        return [f"below the budget: not among the best {ranked.searched} predictions, "
                f"the plan keeps the best {settings.budget}"]
    if ranked.rank is None:
        return [f"not predicted for the next {settings.horizon_s / 3600:g} h (too rare, or its "
                f"date or sequence value falls outside the window)"]
    if ranked.rank > settings.budget:
        return [f"below the budget: rank {ranked.rank}, the plan keeps the best {settings.budget}"]
    return []


@dataclass(frozen=True, slots=True)
class Located:
    """The template a request falls in, its diagnosis, and the request's warm-up key form."""

    pattern: str
    stats: TemplateStats
    diagnosis: TemplateDiagnosis
    canonical: str
    key_form: bool  # the request was already a key: the template's dropped slots removed


def locate(summary: Summary, parts: Decomposed, overrides: Overrides | None) -> Located | None:
    """The request's own template, or the template whose key form it is (a plan's key such
    as `/static/app.js` comes from `/static/app.js?_={}` with its nonce dropped)."""
    composed = parts.template.compose(parts.values)
    frontiers = frontiers_of(summary)
    stats = summary.templates.get(parts.template.pattern)
    if stats is not None:
        diagnosis = diagnose_template(parts.template.pattern, stats, overrides,
                                      frontiers=frontiers.of(parts.template.pattern))
        canonical = cache_target(parts.template.slot_names, parts.values, diagnosis, composed)
        return Located(parts.template.pattern, stats, diagnosis, canonical, False)
    path = parts.template.pattern.partition("?")[0]
    own = set(parts.template.slot_names)
    for pattern in sorted(summary.templates):
        stats = summary.templates[pattern]
        names = set(stats.decomposed_example.template.slot_names)
        if pattern.partition("?")[0] != path or not own < names:
            continue
        diagnosis = diagnose_template(pattern, stats, overrides,
                                      frontiers=frontiers.of(pattern))
        if all(diagnosis.slots[name].drop_from_key for name in names - own):
            return Located(pattern, stats, diagnosis, composed, True)
    return None


def explain_request(summary: Summary, ruleset: CompiledRuleSet | None, line: RequestLine,
                    settings: ExplainSettings, now_s: float,
                    by_source: BySource | None = None) -> dict[str, Any]:
    """The whole explanation as a JSON-able document (see `warmctl explain`).

    A rule set without rules plans zero-config, as the planner does; a request whose rule
    names `source`s is explained from those sources' summary (`by_source`), as it is planned."""
    rules = ruleset if ruleset is not None and ruleset.rules else None
    selection = selection_of(rules, line.target) if rules is not None else None
    sources = rule_sources(rules).get(selection.rule, ()) if rules and selection else ()
    merged, by_source = summary, by_source or {}
    learnt = by_source.get(sources) if sources else merged
    if learnt is None:
        return _unreported(line, selection, sources, settings)
    summary = learnt
    parts, key = summary.split(line.target)
    view = rules_view(rules, summary) if rules is not None else None
    found = locate(summary, parts, view.overrides if view else None)
    pattern = found.pattern if found is not None else parts.template.pattern
    document: dict[str, Any] = {
        "request": line.text, "template": pattern, "known_template": found is not None,
        "rule": view.owners.get(pattern) if view else None, "key_form": False,
        "request_rule": selection.rule if selection else None, "zero_config": view is None,
        "budget": settings.budget, "horizon_s": settings.horizon_s, "slots": [],
        "expected_hits": None, "rank": None, "source": None, "canonical": line.target,
        "template_count": 0, "request_count": 0,
    }
    if found is None:
        return {**document, "would_warm": False,
                "why_not": ["template never seen in the analysed logs"]}
    entry = summary.requests.items.get(key)
    document.update(canonical=found.canonical, template_count=found.stats.count,
                    request_count=entry.count if entry is not None else 0,
                    key_form=found.key_form,
                    slots=[slot_document(slot, document["rule"])
                           for slot in found.diagnosis.slots.values()])
    why_not = ([] if line.method in summary.config.methods
               else [f"method {line.method} is never warmed"])
    why_not += _never_warm_reasons(found.diagnosis, document["rule"], selection)
    why_not += _selection_reasons(view, pattern, line.target, selection)
    why_not += _target_reasons(view, selection, settings)
    ranked = (rank_in_plan(merged, by_source, view.ruleset, found.canonical, settings, now_s)
              if view is not None and source_sets(view.ruleset) else
              rank_request(summary, view, found.canonical, settings, now_s))
    if ranked.prediction is not None:
        document.update(expected_hits=round(ranked.prediction.expected_hits, 4),
                        rank=ranked.rank, source=ranked.prediction.source)
    why_not = why_not or _budget_reasons(ranked, settings)
    planned_on = _planned_on(view.ruleset, document["rule"]) if view is not None else []
    return {**document, "would_warm": not why_not, "why_not": why_not,
            "planned_on": planned_on, **shares_document(ranked.shares, pattern)}


def shares_document(shares: tuple[TemplateShare, ...], pattern: str) -> dict[str, Any]:
    """The self-backtest's split as the planner made it: this template's row, and the
    table's first rows by budget share (empty when rules plan or no window replays)."""
    rows = sorted(shares, key=lambda share: (-share.keys, share.template))
    own = next((share for share in rows if share.template == pattern), None)
    return {"template_share": _share_row(own) if own is not None else None,
            "self_backtest": [_share_row(share) for share in rows[:SHARES_SHOWN_MAX]],
            "self_backtest_more": max(0, len(rows) - SHARES_SHOWN_MAX),
            "budget_in_shares": sum(share.keys for share in rows)}


def _share_row(share: TemplateShare) -> dict[str, Any]:
    return {**asdict(share), "curves": dict(share.curves),
            "hits_per_key": round(share.hits_per_key, 4)}


def _planned_on(ruleset: CompiledRuleSet, rule_name: str | None) -> list[str]:
    """When the planner plans the rule: its own triggers, or [] for a rule without any (it
    follows every plan). The rank above is within the budget of such a plan; a plan made by
    another trigger (e.g. new-rules) leaves a rule with triggers of its own out."""
    rule = next((r for r in ruleset.rules if r.name == rule_name), None)
    if rule is None:
        return []
    return [_trigger_text(t) for t in rule_triggers(ruleset, rule)]


def _trigger_text(trigger: Trigger) -> str:
    if trigger.kind == "cron" and trigger.cron is not None:
        return f"cron {trigger.cron.expression}"
    if trigger.kind == "every":
        return f"every {trigger.interval_s:g}s"
    return f"{trigger.kind} {trigger.target}".strip()
