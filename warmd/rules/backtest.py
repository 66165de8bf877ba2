"""Backtests: replay the future through an LRU cache warmed by each strategy. Pure.

Strategies: cold (nothing warmed), most-frequent and most-recent in history, warmd's
prediction, and the oracle (the keys most requested in the replayed future).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary
from warmd.rules.engine import cache_target, diagnose_all, predict
from warmd.rules.tree import Overrides, TemplateDiagnosis

# (at_s, horizon_s, budget) -> targets to warm, best first: replaces the plain engine for
# the "warmd" strategy (`backtest --rules` passes the rule-aware prediction).
Predictor = Callable[[float, float, int], Sequence[str]]


@dataclass(frozen=True)
class StrategyResult:
    """Hit rates of one warm set over the replay, and its waste."""

    name: str
    warmed: int
    hit_rate_first_1000: float
    hit_rate_first_10pct: float
    hit_rate_all: float
    waste: float


@dataclass(frozen=True)
class BacktestReport:
    """Every strategy's result plus warmd's share of the oracle's gain over cold."""

    capacity: int
    train_requests: int
    replay_requests: int
    replay_distinct_keys: int
    results: tuple[StrategyResult, ...]
    warmd_share_of_oracle_gain_first_10pct: float
    warmd_share_of_oracle_gain_all: float

    def result(self, name: str) -> StrategyResult:
        """The result of the named strategy."""
        return next(r for r in self.results if r.name == name)


def simulate_lru(capacity: int, warm_set: Sequence[str], replay: Sequence[str],
                 name: str = "") -> StrategyResult:
    """Replay `replay` keys through an LRU of `capacity` keys preloaded with `warm_set`
    (best first: the first key is the most recently used)."""
    cache: OrderedDict[str, None] = OrderedDict()
    for key in reversed(warm_set[:capacity]):
        cache[key] = None
    warmed = set(cache)
    first_1000 = min(1000, len(replay))
    first_10pct = max(1, len(replay) // 10)
    hits_1000 = hits_10pct = hits = 0
    for position, key in enumerate(replay):
        if key in cache:
            cache.move_to_end(key)
            hits += 1
            hits_1000 += position < first_1000
            hits_10pct += position < first_10pct
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    replayed = set(replay)
    return StrategyResult(
        name=name, warmed=len(warmed),
        hit_rate_first_1000=hits_1000 / first_1000 if first_1000 else 0.0,
        hit_rate_first_10pct=hits_10pct / first_10pct if replay else 0.0,
        hit_rate_all=hits / len(replay) if replay else 0.0,
        waste=len(warmed - replayed) / len(warmed) if warmed else 0.0)


def backtest(summary: Summary, history: Sequence[Record], future: Sequence[Record],
             capacity: int, horizon_s: float | None = None,
             overrides: Overrides | None = None,
             predictor: Predictor | None = None) -> BacktestReport:
    """Train on `history` (already summarised in `summary`), replay `future`.

    The simulated cache keys on the canonical request with parameters diagnosed as
    cache-busters dropped, for every strategy alike.

    Raises:
        ValueError: capacity below 1 or an empty future.
    """
    if capacity < 1:
        raise ValueError("capacity must be at least 1")
    if not future:
        raise ValueError("nothing to replay after the split")
    diagnoses = diagnose_all(summary, overrides)
    key_of = _key_function(summary, diagnoses)
    past = [key_of(r.target) for r in history if summary.is_cacheable(r)]
    replay = [key_of(r.target) for r in sorted(future, key=lambda r: r.time_s)
              if summary.is_cacheable(r)]
    at_s = min(r.time_s for r in future)
    horizon_s = horizon_s or max(3600.0, max(r.time_s for r in future) - at_s)
    if predictor is not None:
        predicted = [key_of(target) for target in predictor(at_s, horizon_s, capacity)]
    else:
        predicted = [p.target for p in predict(summary, at_s, horizon_s, capacity, overrides)]
    strategies: dict[str, list[str]] = {
        "cold": [],
        "most_frequent": [k for k, _ in Counter(past).most_common(capacity)],
        "most_recent": list(dict.fromkeys(reversed(past)))[:capacity],
        "warmd": predicted,
        "oracle": [k for k, _ in Counter(replay).most_common(capacity)],
    }
    results = tuple(simulate_lru(capacity, keys, replay, name) for name, keys in strategies.items())
    by_name = {r.name: r for r in results}
    return BacktestReport(
        capacity=capacity, train_requests=len(past), replay_requests=len(replay),
        replay_distinct_keys=len(set(replay)), results=results,
        warmd_share_of_oracle_gain_first_10pct=_share(by_name, "hit_rate_first_10pct"),
        warmd_share_of_oracle_gain_all=_share(by_name, "hit_rate_all"))


def _share(by_name: dict[str, StrategyResult], field_name: str) -> float:
    cold: float = getattr(by_name["cold"], field_name)
    gain: float = getattr(by_name["oracle"], field_name) - cold
    if gain <= 0:
        return 1.0
    warmd: float = getattr(by_name["warmd"], field_name)
    return (warmd - cold) / gain


def _key_function(summary: Summary,
                  diagnoses: dict[str, TemplateDiagnosis]) -> Callable[[str], str]:
    cache: dict[str, str] = {}

    def key_of(target: str) -> str:
        found = cache.get(target)
        if found is None:
            parts, key = summary.split(target)
            found = cache_target(parts.template.slot_names, parts.values,
                                 diagnoses.get(parts.template.pattern), key)
            cache[target] = found
        return found

    return key_of
