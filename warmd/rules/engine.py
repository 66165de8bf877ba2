"""Prediction: from a summary and the diagnoses, the requests of the next window, best first.

Three sources of candidates, all scored in expected hits within [at, at + horizon]:
recurring keys (decayed frequency x time-of-day), date-relative keys re-anchored on the target
days in the log's zone (dates never seen), and advancing series extended past their last
value (indexes never seen). Zero-config, the budget is then split by the self-backtest of
warmd/rules/ranking.py (what the same window yesterday measured, per template). Pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date

from warmd.analysis.summary import EPOCH_ORDINAL, SeriesStats, Summary, TemplateStats
from warmd.analysis.target import Decomposed, Template
from warmd.rules import ranking
from warmd.rules.frontier import Frontiers, frontiers_of
from warmd.rules.ranking import TemplateShare
from warmd.rules.tree import (
    Diagnosis,
    Overrides,
    ParamClass,
    TemplateDiagnosis,
    TreeConfig,
    diagnose_template,
)


@dataclass(frozen=True)
class Prediction:
    """One request to warm, its expected hits in the window, and where it came from."""

    target: str
    expected_hits: float
    first_use_s: float
    source: str
    template: str
    score: float = 0.0

    @property
    def request_line(self) -> str:
        """The `GET /path?query` form of the CLI contract."""
        return f"GET {self.target}"


@dataclass(frozen=True)
class EngineConfig:
    """Knobs of the predictor (thresholds of the tree live in TreeConfig)."""

    tree: TreeConfig = field(default_factory=TreeConfig)
    profile_prior: float = 1.0
    min_step_share: float = 0.05


def diagnose_all(summary: Summary, overrides: Overrides | None = None,
                 config: TreeConfig | None = None,
                 frontiers: Frontiers | None = None) -> dict[str, TemplateDiagnosis]:
    """Every template's diagnosis (numeric slots judged by their frontier, too)."""
    found = frontiers or frontiers_of(summary)
    return {pattern: diagnose_template(pattern, stats, overrides, config, found.of(pattern))
            for pattern, stats in summary.templates.items()}


def predict(summary: Summary, at_s: float, horizon_s: float, budget: int,
            overrides: Overrides | None = None, config: EngineConfig | None = None,
            self_backtest: bool = True) -> list[Prediction]:
    """The `budget` requests most likely to be asked in [at_s, at_s + horizon_s].

    With `self_backtest` (zero-config) the budget is split across templates and candidate
    predictors by what the same window yesterday measured (warmd/rules/ranking.py); rules
    pass False: a template a rule owns is planned by the rule's classes.

    Raises:
        ValueError: a negative budget or a non-positive horizon.
    """
    return rank(summary, at_s, horizon_s, budget, overrides, config, self_backtest)[0]


def rank(summary: Summary, at_s: float, horizon_s: float, budget: int,
         overrides: Overrides | None = None, config: EngineConfig | None = None,
         self_backtest: bool = True) -> tuple[list[Prediction], list[TemplateShare]]:
    """`predict` with the self-backtest's decision per template (empty: not backtested)."""
    if budget < 0 or horizon_s <= 0:
        raise ValueError("budget must be >= 0 and horizon must be > 0")
    if budget == 0:
        return [], []
    config = config or EngineConfig()
    frontiers = frontiers_of(summary)
    diagnoses = diagnose_all(summary, overrides, config.tree, frontiers)
    ranked = _class_ranked(summary, diagnoses, frontiers, at_s, horizon_s, budget, config)
    if self_backtest:
        decided = _backtested(summary, diagnoses, ranked, at_s, horizon_s, budget, config)
        if decided is not None:
            return decided
    return ranked[:budget], []


def _class_ranked(summary: Summary, diagnoses: dict[str, TemplateDiagnosis],
                  frontiers: Frontiers, at_s: float, horizon_s: float, budget: int,
                  config: EngineConfig) -> list[Prediction]:
    """Every class-based prediction, best score first."""
    best: dict[str, Prediction] = {}
    sources = (_recurring(summary, diagnoses, at_s, horizon_s, config),
               _date_relative(summary, diagnoses, at_s, horizon_s, config),
               _sequences(summary, diagnoses, frontiers, at_s, horizon_s, budget, config))
    lifetime_s = _cache_lifetime_s(summary, at_s, budget)
    for source in sources:
        for prediction in source:
            scored = replace(prediction, score=_score(prediction, lifetime_s))
            known = best.get(scored.target)
            if known is None or known.score < scored.score:
                best[scored.target] = scored
    return sorted(best.values(), key=lambda p: -p.score)  # ties: first seen first


def _backtested(summary: Summary, diagnoses: dict[str, TemplateDiagnosis],
                ranked: list[Prediction], at_s: float, horizon_s: float, budget: int,
                config: EngineConfig) -> tuple[list[Prediction], list[TemplateShare]] | None:
    """The self-backtested split (None when the summary's hours cannot replay yesterday)."""
    template_of: dict[str, str] = {}

    def key_of(raw: str) -> str:
        parts, key = summary.split(raw)
        pattern = parts.template.pattern
        target = cache_target(parts.template.slot_names, parts.values, diagnoses.get(pattern),
                              key)
        template_of[target] = pattern
        return target

    replay = ranking.replay_of(summary, at_s, horizon_s, key_of)
    if replay is None:
        return None
    pooled = _thin_templates(replay, diagnoses, lambda key: template_of.get(key, ""))

    def unit_of(key: str) -> str:
        template = template_of.get(key, "")
        return ranking.POOL if template in pooled else template

    diagnoses = {**diagnoses, ranking.POOL: TemplateDiagnosis(ranking.POOL)}
    index = {p.target: p for p in ranked}
    for target, prediction in index.items():
        template_of.setdefault(target, prediction.template)
    class_now = ranking.by_template(index, unit_of)
    now_lists = {name: ranking.by_template(keys, unit_of)
                 for name, keys in ranking.naive_lists(replay, at_s, horizon_s,
                                                       summary.config.half_life_s).items()}
    now_lists["class"] = class_now
    curves = _replayed_curves(summary, diagnoses, replay, index, now_lists, unit_of, budget,
                              config)
    measured = set(curves)
    for template, targets in class_now.items():
        classes = diagnoses[template].classes()
        if template not in curves or (ParamClass.SEQUENCE in classes
                                      and ParamClass.DATE_RELATIVE not in classes):
            curves.setdefault(template, {})["class"] = _expected_curve(
                [index[target].score for target in targets])
            measured.discard(template)
    return _assemble(index, curves, measured, now_lists, budget)


def _thin_templates(replay: ranking.Replay, diagnoses: dict[str, TemplateDiagnosis],
                    template_of: Callable[[str], str]) -> frozenset[str]:
    """Recurring templates whose replayed windows asked fewer than EVIDENCE_KEYS keys: one
    or two keys say nothing about a template alone, so they are measured as one pool (a
    candidate that wins across the pool wins for each of them)."""
    asked: dict[str, int] = {}
    for days_back in ranking.DAYS_BACK:
        if replay.covers(days_back):
            for template, count in ranking.evidence(replay, template_of, days_back).items():
                asked[template] = asked.get(template, 0) + count
    thin = frozenset(
        template for template, count in asked.items()
        if count < ranking.EVIDENCE_KEYS and template in diagnoses
        and not diagnoses[template].classes() & {ParamClass.DATE_RELATIVE, ParamClass.SEQUENCE})
    return thin if len(thin) > 1 else frozenset()


def _replayed_curves(summary: Summary, diagnoses: dict[str, TemplateDiagnosis],
                     replay: ranking.Replay, index: dict[str, Prediction],
                     now_lists: dict[str, dict[str, list[str]]],
                     template_of: Callable[[str], str],
                     budget: int, config: EngineConfig) -> dict[str, dict[str, list[float]]]:
    """Per template and candidate, the misses saved by the top n keys on the replayed days
    (averaged), each drawn towards the class's expected curve as much as the evidence is
    thin, less the ranks where that candidate would warm now a key the class model does not
    predict at all (a past date, an old hour)."""
    lifetime_s = _cache_lifetime_s(summary, replay.at_s, budget)
    curves: dict[str, dict[str, list[float]]] = {}
    asked: dict[str, int] = {}
    days = [days_back for days_back in ranking.DAYS_BACK if replay.covers(days_back)]
    for days_back in days:
        then = sorted(_date_relative(summary, diagnoses, replay.at_s - days_back * ranking.DAY_S,
                                     replay.horizon_s, config),
                      key=lambda p: (-p.expected_hits, p.target))
        class_then: dict[str, list[str]] = {}
        for prediction in then:
            class_then.setdefault(prediction.template, []).append(prediction.target)
        ranking.add_curves(curves, ranking.measured_curves(
            replay, class_then, diagnoses, template_of, summary.config.half_life_s,
            lifetime_s, days_back))
        for template, count in ranking.evidence(replay, template_of, days_back).items():
            asked[template] = asked.get(template, 0) + count
    for template, by_name in curves.items():
        priors = {name: _prior(index, now_lists["class"].get(template, []),
                               now_lists[name].get(template, [])) for name in by_name}
        mean = {name: [value / len(days) for value in curve] for name, curve in by_name.items()}
        curves[template] = ranking.shrunk(mean, priors, asked.get(template, 0))
    return curves


def _prior(index: dict[str, Prediction], class_keys: list[str], keys: list[str]) -> list[float]:
    """A candidate's prior: the class's expected curve, rank by rank, where the candidate's
    key at that rank is one the class model predicts at all (nothing where it is not: a
    past date, an hour gone)."""
    own = [index[key].score for key in class_keys]
    return _expected_curve([own[rank] if rank < len(own) and key in index else 0.0
                            for rank, key in enumerate(keys)])


def _assemble(index: dict[str, Prediction], curves: dict[str, dict[str, list[float]]],
              measured: set[str], now_lists: dict[str, dict[str, list[str]]],
              budget: int) -> tuple[list[Prediction], list[TemplateShare]]:
    """Each template's share of the budget, filled from its winning candidate's list now
    (then from the others), best gain per key first; what is left goes by class score."""
    envelopes = {template: ranking.envelope(by_name) for template, by_name in curves.items()}
    shares = ranking.split_budget(envelopes, budget)
    chosen: dict[str, Prediction] = {}
    decisions = []
    for template, keys in sorted(shares.items(), key=lambda item: (-item[1], item[0])):
        by_name = curves[template]
        at_share = {name: curve[min(keys, len(curve) - 1)] for name, curve in by_name.items()}
        winner = ranking.winner(at_share)
        gains = ranking.gains_by_rank(by_name[winner], keys)
        order = [winner, *[name for name in ranking.CANDIDATES if name != winner]]
        taken = 0
        for name in order:
            for target in now_lists[name].get(template, []):
                if taken >= keys:
                    break
                if target in chosen:
                    continue
                chosen[target] = _backtested_prediction(index, target, template, name,
                                                        gains[taken], taken)
                taken += 1
        decisions.append(ranking.TemplateShare(
            template, winner, taken, at_share[winner], template in measured,
            {name: round(value, 1) for name, value in at_share.items()}))
    ordered = sorted(chosen.values(), key=lambda p: (-p.score, p.target))
    for prediction in index.values():
        if len(ordered) >= budget:
            break
        if prediction.target not in chosen:
            ordered.append(replace(prediction, score=0.0))
    return ordered[:budget], decisions


def _backtested_prediction(index: dict[str, Prediction], target: str, template: str,
                           candidate: str, gain: float, rank_in_share: int) -> Prediction:
    """A key of a template's share; its score is the measured gain per key of the winner's
    hull at its rank (ties broken by rank), its source names the candidate that won."""
    known = index.get(target)
    score = gain * (1.0 - 1e-6 * rank_in_share)
    if known is not None and candidate == "class":
        return replace(known, score=score)
    expected = known.expected_hits if known is not None else gain
    return Prediction(target, expected, 0.0, f"backtest {candidate}", template, score)


def _expected_curve(scores: list[float]) -> list[float]:
    curve = [0.0]
    for score in scores:
        curve.append(curve[-1] + score)
    return curve


def _cache_lifetime_s(summary: Summary, at_s: float, budget: int) -> float:
    """How long a warmed key survives in an LRU of `budget` keys if every request missed."""
    rate = summary.expected_rate_per_s(summary.requests.total_weight, at_s)
    return budget / rate if rate > 0 else math.inf


def _score(prediction: Prediction, lifetime_s: float) -> float:
    """The miss a warmed key saves: the chance it is asked for in the window (Poisson), times
    the chance it is still cached at its first use (later needs are evicted first)."""
    asked = 1.0 - math.exp(-prediction.expected_hits)
    if math.isinf(lifetime_s):
        return asked
    return asked * math.exp(-prediction.first_use_s / lifetime_s)


def time_of_day_factor(stats: TemplateStats, at_s: float, horizon_s: float,
                       prior: float = 1.0) -> float:
    """How busy the template is in the window's hours relative to its average hour."""
    if horizon_s >= 86_400:
        return 1.0
    hours = [int((at_s + offset) // 3600) % 24
             for offset in range(0, max(1, int(horizon_s)), 3600)]
    mean_all = (sum(stats.hours) + 24 * prior) / 24
    mean_window = sum(stats.hours[h] + prior for h in hours) / len(hours)
    return mean_window / mean_all


SECONDS_PER_DAY = 86_400
WEEKLY_HISTORY_S = 14 * SECONDS_PER_DAY  # two of each weekday before the profile is trusted


def day_of_week_factor(stats: TemplateStats, first_s: float, last_s: float, at_s: float,
                       horizon_s: float, prior: float = 1.0) -> float:
    """How busy the template is on the window's weekdays relative to its average weekday.

    Counts per weekday are divided by how often that weekday occurs in the history (ten days
    hold two Mondays but one Sunday), and the profile is used only once the history spans
    two weeks: with less, one odd day would pass for a weekly habit.
    """
    if last_s - first_s < WEEKLY_HISTORY_S or horizon_s >= 7 * SECONDS_PER_DAY:
        return 1.0
    occurrences = [0] * 7
    for day in range(int(first_s // SECONDS_PER_DAY), int(last_s // SECONDS_PER_DAY) + 1):
        occurrences[(day + 3) % 7] += 1  # 1970-01-01 was a Thursday (Monday == 0)
    rates = [(count + prior) / max(1, seen)
             for count, seen in zip(stats.weekdays, occurrences, strict=True)]
    first_day = int(at_s // SECONDS_PER_DAY)
    last_day = int((at_s + horizon_s - 1) // SECONDS_PER_DAY)
    window = [rates[(day + 3) % 7] for day in range(first_day, last_day + 1)]
    return (sum(window) / len(window)) / (sum(rates) / 7)


def _recurring(summary: Summary, diagnoses: dict[str, TemplateDiagnosis], at_s: float,
               horizon_s: float, config: EngineConfig) -> Iterator[Prediction]:
    factors: dict[str, float] = {}
    summed: dict[str, Prediction] = {}  # keys that differ only by a dropped nonce add up
    for key, entry in summary.requests:
        parts, _ = summary.split(str(key))
        pattern = parts.template.pattern
        diagnosis = diagnoses.get(pattern)
        stats = summary.templates.get(pattern)
        if diagnosis is None or stats is None or diagnosis.never_warm:
            continue
        if diagnosis.classes() & {ParamClass.DATE_RELATIVE, ParamClass.SEQUENCE}:
            continue  # past dates and indexes; re-anchored and extended keys replace them
        factor = factors.get(pattern)
        if factor is None:
            factor = factors[pattern] = time_of_day_factor(
                stats, at_s, horizon_s, config.profile_prior) * day_of_week_factor(
                stats, summary.first_s, summary.last_s, at_s, horizon_s, config.profile_prior)
        hits = summary.expected_rate_per_s(entry.weight, at_s) * horizon_s * factor
        target = cache_target(parts.template.slot_names, parts.values, diagnosis,
                              parts.template.compose(parts.values))
        known = summed.get(target)
        total = hits + (known.expected_hits if known else 0.0)
        summed[target] = Prediction(target, total, _first_use_s(total, horizon_s),
                                    _source_label(diagnosis, "recurring"), pattern)
        if ParamClass.PAGE in diagnosis.classes():
            yield from _other_pages(summary, diagnosis, parts, hits, horizon_s)
    yield from summed.values()


def _other_pages(summary: Summary, diagnosis: TemplateDiagnosis, parts: Decomposed,
                 hits: float, horizon_s: float) -> Iterator[Prediction]:
    """Pages 1..k of a request seen on one page, at the template's page popularity ratios
    (a new search seen on page 1 brings its page 2)."""
    template = parts.template
    stats = summary.templates[template.pattern]
    for position, name in enumerate(template.slot_names):
        if diagnosis.slots[name].param_class is not ParamClass.PAGE:
            continue
        popularity = {str(value): entry.count for value, entry in stats.slots[name].values}
        own = popularity.get(parts.values[position], 0)
        if own <= 0:
            continue
        for page, count in popularity.items():
            if page == parts.values[position] or not page.isdigit():
                continue
            values = (*parts.values[:position], page, *parts.values[position + 1:])
            expected = hits * count / own
            target = cache_target(template.slot_names, values, diagnosis,
                                  template.compose(values))
            yield Prediction(target, expected, _first_use_s(expected, horizon_s),
                             _source_label(diagnosis, "page"), template.pattern)


def _first_use_s(expected_hits: float, horizon_s: float) -> float:
    """Mean wait for the first request of a Poisson stream, truncated at the horizon."""
    if expected_hits <= 0:
        return horizon_s
    rate = expected_hits / horizon_s
    return (1.0 - math.exp(-expected_hits)) / rate


def _date_relative(summary: Summary, diagnoses: dict[str, TemplateDiagnosis], at_s: float,
                   horizon_s: float, config: EngineConfig) -> Iterator[Prediction]:
    for pattern, stats in summary.templates.items():
        diagnosis = diagnoses[pattern]
        if stats.date_keys is None or diagnosis.never_warm or \
                ParamClass.DATE_RELATIVE not in diagnosis.classes():
            continue
        template = stats.decomposed_example.template
        factor = time_of_day_factor(stats, at_s, horizon_s, config.profile_prior)
        zone_h = _zone_h(template, diagnosis)
        days = _days_in_window(at_s + zone_h * 3600, horizon_s)
        rates: dict[tuple[str, ...], float] = {}
        for tokens, entry in stats.date_keys:
            local = _local_tokens(tokens, template, diagnosis)  # type: ignore[arg-type]
            rates[local] = rates.get(local, 0.0) + summary.expected_rate_per_s(entry.weight, at_s)
        for tokens, rate in rates.items():
            for ordinal, overlap_s in days:
                values = tuple(_instantiate(token, ordinal) for token in tokens)
                target = cache_target(template.slot_names, values, diagnosis,
                                      template.compose(values))
                hits = rate * overlap_s * factor
                yield Prediction(target, hits, _first_use_s(hits, horizon_s),
                                 _source_label(diagnosis, "date-relative"), pattern)


def _zone_h(template: Template, diagnosis: TemplateDiagnosis) -> int:
    """The log's zone as the template's first date-relative slot measured it."""
    for name in template.slot_names:
        slot = diagnosis.slots.get(name)
        if slot is not None and slot.param_class is ParamClass.DATE_RELATIVE:
            return slot.zone_h
    return 0


def _local_tokens(tokens: tuple[str, ...], template: Template,
                  diagnosis: TemplateDiagnosis) -> tuple[str, ...]:
    """Date tokens with their offsets counted in the log's zone.

    Tokens hold the offset from the request's UTC date. In a zone ahead of UTC a request
    late in the UTC day is already on the next local day, so its UTC offset is one more than
    the local one (one less behind UTC): both twins of the diagnosed local offset become it.
    A rule's offset (`date-relative offset=+2d`) replaces the measured one.
    """
    out = list(tokens)
    for position, name in enumerate(template.slot_names):
        slot = diagnosis.slots.get(name)
        token = tokens[position]
        if slot is None or not str(token).startswith("{date:") or slot.date_offset_days is None:
            continue
        layout = token[6:-1].split(":", 1)[1]
        offset = int(token[6:-1].split(":", 1)[0])
        twin = slot.date_offset_days + (slot.zone_h > 0) - (slot.zone_h < 0)
        if slot.overridden:
            offset, layout = slot.date_offset_days, slot.date_format or "%Y-%m-%d"
        elif offset in (slot.date_offset_days, twin):
            offset = slot.date_offset_days
        out[position] = f"{{date:{offset:+d}:{layout}}}"
    return tuple(out)


def _days_in_window(at_s: float, horizon_s: float) -> list[tuple[int, float]]:
    """(proleptic ordinal, seconds of the window on that day) for each day overlapped."""
    out = []
    start, end = at_s, at_s + horizon_s
    while start < end:
        day = math.floor(start / 86_400)
        stop = min(end, (day + 1) * 86_400)
        out.append((day + EPOCH_ORDINAL, stop - start))
        start = stop
    return out


def _instantiate(token: str, ordinal: int) -> str:
    if not token.startswith("{date:"):
        return token
    offset_text, layout = token[6:-1].split(":", 1)
    return date.fromordinal(ordinal + int(offset_text)).strftime(layout)


def _sequences(summary: Summary, diagnoses: dict[str, TemplateDiagnosis],
               frontiers: Frontiers, at_s: float, horizon_s: float, budget: int,
               config: EngineConfig) -> Iterator[Prediction]:
    for (pattern, _label), series in summary.series.items():
        diagnosis = diagnoses.get(pattern)
        stats = summary.templates.get(pattern)
        if diagnosis is None or stats is None or diagnosis.never_warm:
            continue
        template = stats.decomposed_example.template
        sequence_slots = {i for i, name in enumerate(template.slot_names)
                          if diagnosis.slots.get(name) is not None
                          and diagnosis.slots[name].param_class is ParamClass.SEQUENCE}
        if sequence_slots:
            leading = replace(series, values=frontiers.leading_values(pattern, series))
            yield from _extend_series(leading, template, diagnosis, sequence_slots, pattern,
                                      at_s, horizon_s, budget, config)


def _extend_series(series: SeriesStats, template: Template, diagnosis: TemplateDiagnosis,
                   sequence_slots: set[int], pattern: str, at_s: float, horizon_s: float,
                   budget: int, config: EngineConfig) -> Iterator[Prediction]:
    """The next values of one advancing series, scored by survival to their expected time.

    The unit step is the gcd of the steps seen (a client sampling every 2nd or 3rd value still
    walks a unit-1 series); the pace is the distance travelled over the series' lifetime.
    """
    unit = _unit_step(series, sequence_slots, config)
    if unit is None or len(series.first_values) != len(series.values):
        return
    lead = next(iter(unit))
    travelled = (int(series.values[lead]) - int(series.first_values[lead])) // unit[lead]
    if travelled < config.tree.advances_min:
        return
    lived_s = max(60.0, series.last_s - series.first_s)
    seconds_per_value = lived_s / travelled
    hits_per_value = series.requests / (travelled + 1)
    end_s = at_s + horizon_s
    # Values due before `at` were not asked for (we saw every line before it): the series
    # resumes at `at` at the earliest, and a long silence lowers its survival odds.
    resume_s = max(at_s, series.last_s)
    for index in range(0, budget + 1):  # 0: the current value may still be asked for
        eta_s = resume_s + index * seconds_per_value
        if eta_s > end_s:
            break
        values = tuple(str(int(v) + index * unit[i]) if i in unit else v
                       for i, v in enumerate(series.values))
        survival = lived_s / (lived_s + (eta_s - series.last_s))
        target = cache_target(template.slot_names, values, diagnosis, template.compose(values))
        yield Prediction(target, hits_per_value * survival, eta_s - at_s,
                         _source_label(diagnosis, "sequence"), pattern)


def _unit_step(series: SeriesStats, sequence_slots: set[int],
               config: EngineConfig) -> dict[int, int] | None:
    """Slot position -> unit increment, from the common steps of the series (None: no pace)."""
    if series.advances < config.tree.advances_min:
        return None
    numeric = [i for i, v in enumerate(series.values) if v.lstrip("-").isdigit()]
    floor = max(2, config.min_step_share * series.advances)
    common = [step for step, count in series.steps.items()
              if count >= floor and len(step) == len(numeric)]
    if not common:
        return None
    unit: dict[int, int] = {}
    for position, slot in enumerate(numeric):
        divisor = 0
        for step in common:
            if step[position] > 0:  # steps back are jitter (late or retried requests)
                divisor = math.gcd(divisor, step[position])
        if slot in sequence_slots and divisor > 0:
            unit[slot] = divisor
    return unit or None


def _source_label(diagnosis: TemplateDiagnosis, source: str) -> str:
    classes = sorted({d.param_class.value for d in diagnosis.slots.values()})
    return f"{source} ({', '.join(classes)})" if classes else source


def cache_target(slot_names: tuple[str, ...], values: tuple[str, ...],
                 diagnosis: TemplateDiagnosis | None, composed: str) -> str:
    """The canonical target with slots the diagnosis drops from the key (nonces) removed."""
    if diagnosis is None:
        return composed
    dropped = {name for name, d in diagnosis.slots.items() if d.drop_from_key}
    if not dropped:
        return composed
    path, _, query = composed.partition("?")
    kept_values = dict(zip(slot_names, values, strict=True))
    parts = [part for part in query.split("&")
             if not (part.partition("=")[0] in dropped
                     and kept_values.get(part.partition("=")[0]) == part.partition("=")[2])]
    return path + ("?" + "&".join(parts) if parts else "")


@dataclass(frozen=True)
class Explanation:
    """Why a request would or would not be warmed."""

    request: str
    template: str
    known_template: bool
    diagnoses: tuple[Diagnosis, ...]
    would_warm: bool
    reasons: tuple[str, ...]


def explain(summary: Summary, request: str, overrides: Overrides | None = None,
            config: TreeConfig | None = None) -> Explanation:
    """Which template `request` ('GET /path?query' or '/path?query') falls in, and why it
    would or would not be warmed."""
    method, _, target = request.strip().rpartition(" ")
    method = method or "GET"
    parts, key = summary.split(target)
    pattern = parts.template.pattern
    stats = summary.templates.get(pattern)
    if stats is None:
        return Explanation(request, pattern, False, (), False,
                           ("template never seen in the analysed logs",))
    diagnosis = diagnose_template(pattern, stats, overrides, config,
                                  frontiers_of(summary).of(pattern))
    reasons = [f"template seen {stats.count} times"]
    if method not in summary.config.methods:
        reasons.append(f"method {method} is never warmed")
    for slot in diagnosis.slots.values():
        decisive = slot.evidence[-1] if slot.evidence else None
        reasons.append(f"{slot.slot}: {slot.param_class.value}"
                       + (f" ({decisive})" if decisive else ""))
    entry = summary.requests.items.get(key)
    if entry is not None:
        reasons.append(f"request seen {entry.count} times, last at epoch {entry.last_s:.0f}")
    warm = method in summary.config.methods and not diagnosis.never_warm
    return Explanation(request, pattern, True, tuple(diagnosis.slots.values()), warm,
                       tuple(reasons))
