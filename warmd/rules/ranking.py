"""Self-backtest per template: the budget goes where the history says warmed keys come back.

Before a prediction for [at, at + H), the same window yesterday [at - 24h, at - 24h + H)
(and the day before, and the same weekday last week, where the summary's hours hold them) is
replayed from the summary's per-hour counts against what each candidate would have warmed at
its start, template by template (the days' curves are averaged, their evidence added):

* `class`: the class-based prediction, replayed where it differs from the naive lists:
  date-relative keys re-anchored on that day. A recurring template's class ranking (decayed
  weight times its hour profile) is not a candidate: the summary's weights hold the replayed
  day itself, and a winner is warmed only as it was measured (it once stood in with
  `decayed`'s curve, won ties with it and warmed its own, unmeasured order);
* `last_day`: the template's most requested keys of the 24 hours before;
* `decayed`: the same hours, weighted by forward decay (half-life of the summary);
* `same_window`: the keys asked in the same hours the day before;
* `last_week`: the keys asked in the same hours a week before (a weekly habit: Monday's
  reports, the weekend's listings), where the summary's hours reach back that far;
* `frequent`: the keys most requested over the whole history (what a long-lived cache holds);
* advancing series (`sequence`) cannot be replayed from a summary (it keeps their latest
  position only): their extension is valued at its own expected hits.

A warmed key saves a miss when it is asked for at all in the window, so a candidate's
measurement is, per rank, whether its key was asked (hits per key). Each template's best
curve over the candidates (its envelope; each curve drawn towards the class's expected
curve as much as the template's measurement is thin) is made concave and the budget is split across the
templates by marginal gain, the steepest segments first: on the replayed window the split is
never below any single candidate at the same budget. Each template then warms the keys of
the candidate that won at its share, as that candidate ranks them now. The same hours of
the day are replayed, so the time-of-day profile is in the measurement. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from warmd.analysis.summary import Summary
from warmd.rules.tree import ParamClass, TemplateDiagnosis

DAY_S = 86_400
POOL = "(thin templates, pooled)"
# The same window yesterday, the day before, and the same weekday last week: each where the
# summary's hours hold it (they reach nine days back, the oldest six with fewer keys).
DAYS_BACK = (1, 2, 7)
WEEK_S = 7 * DAY_S
EVIDENCE_KEYS = 20  # keys asked in the replayed window at which a measurement counts half
TIE_MISSES = 1e-6  # misses saved within which two candidates measured the same
CANDIDATES = ("class", "last_day", "decayed", "same_window", "last_week", "frequent")


@dataclass(frozen=True)
class TemplateShare:
    """What the self-backtest decided for one template."""

    template: str
    winner: str
    keys: int  # budget share (keys warmed)
    backtest_hits: float  # keys of the share asked in the replayed window (or expected)
    measured: bool  # False: no replay possible, valued at the predictor's expected hits
    curves: Mapping[str, float]  # candidate -> misses saved at the share (replayed)

    @property
    def hits_per_key(self) -> float:
        """Replayed (or expected) hits per warmed key."""
        return self.backtest_hits / self.keys if self.keys else 0.0


@dataclass(frozen=True)
class Replay:
    """The counts the self-backtest reads, as of `at_s`: per key and hour (cache keys)."""

    at_s: float
    horizon_s: float
    hours: Mapping[int, Mapping[str, int]]
    totals: Mapping[str, int]  # requests per key over the whole history, as of at_s

    def totals_before(self, start_s: float) -> dict[str, int]:
        """Requests per key over the whole history before `start_s` (hours of the summary
        after it taken off)."""
        later = self.counts(start_s, self.at_s)
        return {key: count - later.get(key, 0) for key, count in self.totals.items()
                if count > later.get(key, 0)}

    def counts(self, start_s: float, end_s: float) -> dict[str, int]:
        """Requests per key in [start_s, end_s) at hour granularity."""
        out: dict[str, int] = {}
        for hour, keys in self.hours.items():
            if start_s <= hour * 3600 < end_s:
                for key, count in keys.items():
                    out[key] = out.get(key, 0) + count
        return out

    def covers(self, days_back: int) -> bool:
        """True when the hours hold the window `days_back` days ago and half a day before it."""
        start_s = self.at_s - days_back * DAY_S
        return bool(self.hours) and min(self.hours) * 3600 <= start_s - DAY_S / 2 and \
            max(self.hours) * 3600 >= start_s + min(self.horizon_s, DAY_S) - 3600

    def first_use_s(self, start_s: float, end_s: float) -> dict[str, float]:
        """Per key asked in [start_s, end_s): seconds from start_s to the middle of the first
        hour it was asked in."""
        out: dict[str, float] = {}
        for hour in sorted(self.hours):
            if start_s <= hour * 3600 < end_s:
                for key in self.hours[hour]:
                    out.setdefault(key, max(0.0, hour * 3600 + 1800 - start_s))
        return out

    def decayed(self, start_s: float, end_s: float, half_life_s: float) -> dict[str, float]:
        """Requests per key in [start_s, end_s), each hour weighted by forward decay."""
        out: dict[str, float] = {}
        for hour, keys in self.hours.items():
            if start_s <= hour * 3600 < end_s:
                weight = 2.0 ** ((hour * 3600 - end_s) / half_life_s)
                for key, count in keys.items():
                    out[key] = out.get(key, 0.0) + count * weight
        return out


def replay_of(summary: Summary, at_s: float, horizon_s: float,
              key_of: Callable[[str], str]) -> Replay | None:
    """The per-hour counts mapped to cache keys, or None when the summary's hours do not
    cover the day before the replayed window and the window itself."""
    hours = {hour: keys for hour, keys in summary.windows.items() if hour * 3600 < at_s}
    replay_start = at_s - DAY_S
    if not hours or min(hours) * 3600 > replay_start - DAY_S / 2 or \
            max(hours) * 3600 < replay_start + min(horizon_s, DAY_S) - 3600:
        return None
    mapped: dict[int, dict[str, int]] = {}
    for hour, sketch in hours.items():
        counts: dict[str, int] = {}
        for key, entry in sketch:
            cache_key = key_of(str(key))
            counts[cache_key] = counts.get(cache_key, 0) + entry.count
        mapped[hour] = counts
    totals: dict[str, int] = {}
    for key, entry in summary.requests:
        cache_key = key_of(str(key))
        totals[cache_key] = totals.get(cache_key, 0) + entry.count
    return Replay(at_s, horizon_s, mapped, totals)


def ranked(scores: Mapping[str, float]) -> list[str]:
    """Keys by descending score, i.e. a candidate's warm list. Equal scores keep the order
    the summary first saw the keys in (as a naive `Counter.most_common` does): a page asks
    its assets in document order, so of two equally frequent keys the one seen first is
    the one asked first in the next visit, and the head of a warm list is what an LRU keeps
    longest. Ordered by name, netnea's 2015-09-29 evicted the asset asked next: one hit."""
    return sorted(scores, key=lambda key: -scores[key])


def naive_lists(replay: Replay, at_s: float, horizon_s: float,
                half_life_s: float) -> dict[str, list[str]]:
    """The naive candidates' warm lists as of `at_s`, from the per-hour counts."""
    horizon_s = min(horizon_s, DAY_S)
    return {"last_day": ranked(replay.counts(at_s - DAY_S, at_s)),
            "decayed": ranked(replay.decayed(at_s - 2 * DAY_S, at_s, half_life_s)),
            "same_window": ranked(replay.counts(at_s - DAY_S, at_s - DAY_S + horizon_s)),
            "last_week": ranked(replay.counts(at_s - WEEK_S, at_s - WEEK_S + horizon_s)),
            "frequent": ranked(replay.totals_before(at_s))}


def winner(at_share: Mapping[str, float]) -> str:
    """The candidate that saved the most misses at the share. One that saved no more than
    `frequent` (within TIE_MISSES) gives way to it: where the replay cannot tell them apart
    (a pool of thin templates, each key asked once or twice), the ranking built on the whole
    history is the one least moved by chance (a thin template's hour profile, one odd day)."""
    best = max(CANDIDATES, key=lambda name: at_share.get(name, -1.0))
    if "frequent" in at_share and at_share["frequent"] >= at_share[best] - TIE_MISSES:
        return "frequent"
    return best


def by_template(keys: Iterable[str], template_of: Callable[[str], str]) -> dict[str, list[str]]:
    """Keys grouped by template, order kept."""
    out: dict[str, list[str]] = {}
    for key in keys:
        out.setdefault(template_of(key), []).append(key)
    return out


def asked_curve(keys: Sequence[str], saved: Mapping[str, float]) -> list[float]:
    """Cumulative misses saved by warming the top n keys (curve[n]), from `saved` per key."""
    curve = [0.0]
    for key in keys:
        curve.append(curve[-1] + saved.get(key, 0.0))
    return curve


def saved_misses(replay: Replay, start_s: float, end_s: float,
                 lifetime_s: float) -> dict[str, float]:
    """Per key asked in the window, the miss that warming it saved: one, if it was still
    cached at its first use (an LRU of the budget's size evicts warmed keys that wait; the
    chance it survives is e^(-first use / lifetime), as in the engine's score)."""
    return {key: math.exp(-first_s / lifetime_s)
            for key, first_s in replay.first_use_s(start_s, end_s).items()}


def concave_hull(curve: Sequence[float]) -> list[tuple[int, float]]:
    """The upper concave hull of the points (n, curve[n]) as (n, value) vertices."""
    hull: list[tuple[int, float]] = []
    for point in enumerate(curve):
        while len(hull) >= 2 and _turns_up(hull[-2], hull[-1], point):
            hull.pop()
        hull.append(point)
    return hull


def _turns_up(a: tuple[int, float], b: tuple[int, float], c: tuple[int, float]) -> bool:
    return (b[1] - a[1]) * (c[0] - a[0]) <= (c[1] - a[1]) * (b[0] - a[0])


def gains_by_rank(curve: Sequence[float], keys: int) -> list[float]:
    """Per rank below `keys`, the gain per key of the concave hull segment holding it (the
    hottest keys of a template come first in the warm set, as its measurement says)."""
    gains = [0.0] * keys
    for (n0, v0), (n1, v1) in pairwise(concave_hull(curve)):
        for rank in range(n0, min(n1, keys)):
            gains[rank] = (v1 - v0) / (n1 - n0)
    return gains


def envelope(curves: Mapping[str, Sequence[float]]) -> list[float]:
    """Per n, the best candidate's value (the longest curve's length)."""
    length = max(len(curve) for curve in curves.values())
    return [max(curve[min(n, len(curve) - 1)] for curve in curves.values())
            for n in range(length)]


def split_budget(envelopes: Mapping[str, Sequence[float]], budget: int) -> dict[str, int]:
    """Keys per template: whole hull segments by descending gain per key, the last one cut
    to fit; segments without gain get nothing."""
    segments = []
    for template, curve in envelopes.items():
        hull = concave_hull(curve)
        for (n0, v0), (n1, v1) in pairwise(hull):
            if v1 > v0:
                segments.append(((v1 - v0) / (n1 - n0), template, n0, n1))
    segments.sort(key=lambda s: (-s[0], s[1], s[2]))
    shares: dict[str, int] = {}
    left = budget
    for _gain, template, n0, n1 in segments:
        if left <= 0:
            break
        if shares.get(template, 0) != n0:
            continue  # an earlier segment of this template was cut: the rest waits
        take = min(n1 - n0, left)
        shares[template] = n0 + take
        left -= take
    return shares


def measured_curves(replay: Replay, class_lists: Mapping[str, Sequence[str]],
                    diagnoses: Mapping[str, TemplateDiagnosis],
                    template_of: Callable[[str], str], half_life_s: float,
                    lifetime_s: float, days_back: int = 1) -> dict[str, dict[str, list[float]]]:
    """Template -> candidate -> misses saved by the top n keys, replaying the same window
    `days_back` days ago."""
    then_s = replay.at_s - days_back * DAY_S
    asked = saved_misses(replay, then_s, then_s + min(replay.horizon_s, DAY_S), lifetime_s)
    lists = {name: by_template(keys, template_of)
             for name, keys in naive_lists(replay, then_s, replay.horizon_s,
                                           half_life_s).items()}
    out: dict[str, dict[str, list[float]]] = {}
    for template in set(class_lists) | {t for keys in lists.values() for t in keys}:
        diagnosis = diagnoses.get(template)
        if diagnosis is None or diagnosis.never_warm:
            continue
        curves = {name: asked_curve(keys.get(template, []), asked)
                  for name, keys in lists.items()}
        if ParamClass.DATE_RELATIVE in diagnosis.classes():
            curves["class"] = asked_curve(class_lists.get(template, []), asked)
        out[template] = curves
    return out


def evidence(replay: Replay, template_of: Callable[[str], str],
             days_back: int = 1) -> dict[str, int]:
    """Per template, the distinct keys asked in the replayed window."""
    then_s = replay.at_s - days_back * DAY_S
    out: dict[str, int] = {}
    for key in replay.counts(then_s, then_s + min(replay.horizon_s, DAY_S)):
        template = template_of(key)
        out[template] = out.get(template, 0) + 1
    return out


def shrunk(curves: Mapping[str, Sequence[float]], priors: Mapping[str, Sequence[float]],
           asked: int) -> dict[str, list[float]]:
    """Each measured curve drawn towards its prior as much as the measurement is thin:
    weight asked / (asked + EVIDENCE_KEYS) on the measurement. One day of a template with
    three keys asked says little; one with three hundred says a lot. A candidate's prior is
    the class's expected curve less the ranks where it would warm a key the class model does
    not predict (a past date), so a thin tie does not go to a candidate whose keys cannot
    come back (the demo's deals and reports: whole-history frequency warmed last week's
    dates)."""
    weight = asked / (asked + EVIDENCE_KEYS)
    out = {}
    for name, curve in curves.items():
        prior = priors.get(name) or [0.0]
        length = max(len(curve), len(prior))
        out[name] = [weight * curve[min(n, len(curve) - 1)]
                     + (1 - weight) * prior[min(n, len(prior) - 1)] for n in range(length)]
    return out


def add_curves(total: dict[str, dict[str, list[float]]],
               day: Mapping[str, Mapping[str, Sequence[float]]]) -> None:
    """Add one replayed day's curves into `total`, rank by rank (a shorter curve keeps its
    last value)."""
    for template, by_name in day.items():
        mine = total.setdefault(template, {})
        for name, curve in by_name.items():
            known = mine.get(name, [0.0])
            length = max(len(known), len(curve))
            mine[name] = [known[min(n, len(known) - 1)] + curve[min(n, len(curve) - 1)]
                          for n in range(length)]
