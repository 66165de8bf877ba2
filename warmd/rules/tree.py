"""The diagnostic decision tree: slot statistics -> parameter class, with its evidence.

`evaluate(facts)` walks fixed tests in order (secret, constant, date, nonce, sequence,
user-scoped, page, enum, hot id); every test it runs is recorded as Evidence, so an explanation can
say which statistic decided and against which threshold. Rule files override the result per
(template, slot) through `ParamOverride` values passed in as plain data. Pure.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TypedDict, Unpack

from warmd.analysis.summary import SlotStats, TemplateStats, local_offsets, log_zone_h
from warmd.rules.frontier import Frontier


class ParamClass(enum.Enum):
    """What a parameter or path slot is, as far as warming goes."""

    CONSTANT = "constant"
    ENUM = "enum"
    DATE_RELATIVE = "date_relative"
    SEQUENCE = "sequence"
    PAGE = "page"
    HOT_ID = "hot_id"
    NONCE = "nonce"
    USER_SCOPED = "user_scoped"
    SECRET = "secret"


NEVER_WARM = frozenset({ParamClass.USER_SCOPED, ParamClass.SECRET})


@dataclass(frozen=True)
class ParamOverride:
    """A rule's verdict on one slot; None fields keep the tree's own finding."""

    param_class: ParamClass | None = None
    date_offset_days: int | None = None
    date_format: str | None = None
    drop_from_key: bool = False
    never_warm: bool = False


@dataclass(frozen=True)
class Evidence:
    """One test of the tree: the statistic, its value, the threshold, and whether it held."""

    test: str
    statistic: str
    value: float
    threshold: float
    held: bool

    def __str__(self) -> str:
        relation = "meets" if self.held else "misses"
        return (f"{self.test}: {self.statistic}={_number(self.value)} {relation} "
                f"{_number(self.threshold)}")


def _number(value: float) -> str:
    """A statistic for people: `8,060` and `0.25`, never `8.06e+03`."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}"


@dataclass(frozen=True)
class Diagnosis:
    """The class of one slot, the evidence that decided it, and what warming does with it."""

    slot: str
    param_class: ParamClass
    evidence: tuple[Evidence, ...]
    date_offset_days: int | None = None
    date_format: str | None = None
    drop_from_key: bool = False
    never_warm: bool = False
    overridden: bool = False
    zone_h: int = 0  # DATE_RELATIVE: the offset counts days in UTC+zone_h (the log's zone)


@dataclass(frozen=True)
class SlotFacts:
    """The statistics the tree reads, extracted from a SlotStats."""

    name: str
    count: int
    distinct: float
    clients: float
    value_client_pairs: float
    sampled_distinct: float
    sampled_rows: int
    type_shares: Mapping[str, float]
    top_values: tuple[tuple[str, int], ...]
    top_offset: int | None
    top_offset_share: float
    increases: int
    decreases: int
    date_format: str | None = None
    time_like_share: float = 0.0
    zone_h: int = 0
    frontier: Frontier | None = None  # the largest value hour by hour (None: no hours kept)


@dataclass(frozen=True)
class TreeConfig:
    """Thresholds of the tree (documented in docs/analysis.md)."""

    min_samples: int = 5
    type_share_min: float = 0.9
    date_offset_share_min: float = 0.5
    advance_share_min: float = 0.8
    advances_min: int = 4
    frontier_hours_min: int = 8
    frontier_share_min: float = 0.25
    nonce_repeat_max: float = 1.25
    time_like_share_min: float = 0.9
    high_cardinality_min: int = 20
    user_repeats_min: int = 20
    user_tied_share_min: float = 0.8
    user_clients_min: int = 5
    page_value_max: int = 50
    enum_distinct_max: int = 16
    secret_name: str = (r"(?i)^(pass(word|wd)?|pwd|secret|.*token|api[_-]?key|apikey|auth.*|"
                        r"signature|sig|credentials?|access[_-]?key)$")
    user_name: str = r"(?i)^(user(_?id|name)?|uid|session(_?id)?|sid|email|login|account)$"


def facts_from(name: str, stats: SlotStats, frontier: Frontier | None = None) -> SlotFacts:
    """Extract the tree's facts from a slot's mergeable statistics (and its frontier, read
    from the summary's per-hour counts)."""
    total = max(1, sum(stats.types.values()))
    zone_h = log_zone_h(stats.date_offsets)
    offsets = local_offsets(stats.date_offsets, zone_h)
    best: list[tuple[int | None, int]] = [*offsets.most_common(1)] or [(None, 0)]
    offset, offset_count = best[0]
    top = tuple((str(key), entry.count) for key, entry in stats.values.top(20))
    dated = [value for value, _ in top if len(value) in (8, 10)]
    date_format = ("%Y%m%d" if dated and len(dated[0]) == 8 else "%Y-%m-%d") if dated else None
    return SlotFacts(
        name=name, count=stats.count, distinct=max(1.0, stats.distinct.estimate()),
        clients=stats.clients.estimate(), value_client_pairs=stats.pairs_with_client.estimate(),
        sampled_distinct=max(1.0, stats.sampled_values.estimate()),
        sampled_rows=stats.sampled_rows,
        type_shares={kind: n / total for kind, n in stats.types.items()}, top_values=top,
        top_offset=offset, top_offset_share=offset_count / max(1, sum(offsets.values())),
        zone_h=zone_h,
        increases=stats.increases, decreases=stats.decreases, date_format=date_format,
        time_like_share=stats.time_like / max(1, stats.count), frontier=frontier)


def evaluate(facts: SlotFacts, config: TreeConfig | None = None) -> Diagnosis:
    """Classify one slot; the evidence lists every test that was run, in order."""
    config = config or TreeConfig()
    trail: list[Evidence] = []
    for test in _TESTS:
        found = test(facts, config, trail)
        if found is not None:
            return found
    return _decide(facts, ParamClass.HOT_ID, trail)


def _check(trail: list[Evidence], test: str, statistic: str, value: float, threshold: float,
           held: bool) -> bool:
    trail.append(Evidence(test, statistic, float(value), float(threshold), held))
    return held


class _DateFields(TypedDict, total=False):
    """What a DATE_RELATIVE diagnosis adds to the others."""

    date_offset_days: int | None
    date_format: str | None
    zone_h: int


def _decide(facts: SlotFacts, param_class: ParamClass, trail: list[Evidence],
            **extra: Unpack[_DateFields]) -> Diagnosis:
    return Diagnosis(facts.name, param_class, tuple(trail),
                     never_warm=param_class in NEVER_WARM,
                     drop_from_key=param_class is ParamClass.NONCE, **extra)


def _secret(facts: SlotFacts, config: TreeConfig, trail: list[Evidence]) -> Diagnosis | None:
    base = facts.name.split("[", 1)[0]
    named = bool(re.match(config.secret_name, base))
    emails = facts.type_shares.get("email", 0.0)
    if _check(trail, "secret name", "name matches secret pattern", named, 1, named) or \
            _check(trail, "e-mail values", "email share", emails, 0.5, emails >= 0.5):
        return _decide(facts, ParamClass.SECRET, trail)
    return None


def _user_scoped(facts: SlotFacts, config: TreeConfig, trail: list[Evidence]) -> Diagnosis | None:
    if re.match(config.user_name, facts.name.split("[", 1)[0]):
        _check(trail, "user name", "name matches user pattern", 1, 1, True)
        return _decide(facts, ParamClass.USER_SCOPED, trail)
    if facts.distinct < config.high_cardinality_min or facts.clients < config.user_clients_min:
        return None
    # Within the client sample: when a value comes back, does its client come back with it?
    value_repeats = facts.sampled_rows - facts.sampled_distinct
    pair_repeats = facts.sampled_rows - facts.value_client_pairs
    tied = pair_repeats / value_repeats if value_repeats > 0 else 0.0
    if _check(trail, "values reused", "repeated values in the client sample", value_repeats,
              config.user_repeats_min, value_repeats >= config.user_repeats_min) and _check(
            trail, "value tied to one client", "share of value repeats by the same client",
            tied, config.user_tied_share_min, tied >= config.user_tied_share_min):
        return _decide(facts, ParamClass.USER_SCOPED, trail)
    return None


def _few_or_constant(facts: SlotFacts, config: TreeConfig,
                     trail: list[Evidence]) -> Diagnosis | None:
    if _check(trail, "distinct values", "distinct", facts.distinct, 1, facts.distinct <= 1):
        return _decide(facts, ParamClass.CONSTANT, trail)
    if not _check(trail, "enough samples", "requests", facts.count, config.min_samples,
                  facts.count >= config.min_samples):
        return _decide(facts, ParamClass.ENUM, trail)
    return None


def _date(facts: SlotFacts, config: TreeConfig, trail: list[Evidence]) -> Diagnosis | None:
    share = facts.type_shares.get("date", 0.0)
    if share < config.type_share_min:
        return None
    _check(trail, "date values", "date share", share, config.type_share_min, True)
    if _check(trail, f"date follows request date in UTC{facts.zone_h:+d}",
              "share of the commonest offset",
              facts.top_offset_share, config.date_offset_share_min,
              facts.top_offset_share >= config.date_offset_share_min):
        return _decide(facts, ParamClass.DATE_RELATIVE, trail,
                       date_offset_days=facts.top_offset, date_format=facts.date_format,
                       zone_h=facts.zone_h)
    return None


def _sequence(facts: SlotFacts, config: TreeConfig, trail: list[Evidence]) -> Diagnosis | None:
    """A number whose largest value keeps growing hour after hour is a sequence, however
    many requests go back to older values (readers of older articles); where the hours are
    too few to tell, the share of increasing steps within its series decides."""
    share = facts.type_shares.get("int", 0.0)
    if share < config.type_share_min:
        return None
    if _frontier_advances(facts, config, trail):
        return _decide(facts, ParamClass.SEQUENCE, trail)
    moves = facts.increases + facts.decreases
    advance = facts.increases / moves if moves else 0.0
    if _check(trail, "advances", "increasing steps", facts.increases, config.advances_min,
              facts.increases >= config.advances_min) and _check(
            trail, "advances with time", "share of steps that increase", advance,
            config.advance_share_min, advance >= config.advance_share_min):
        return _decide(facts, ParamClass.SEQUENCE, trail)
    return None


def _frontier_advances(facts: SlotFacts, config: TreeConfig, trail: list[Evidence]) -> bool:
    frontier = facts.frontier
    if frontier is None or frontier.hours < config.frontier_hours_min:
        return False
    return _check(trail, "frontier advances", "hours in which the largest value grew",
                  frontier.advances, config.advances_min,
                  frontier.advances >= config.advances_min) and _check(
        trail, "frontier advances with time",
        "share of hours in which the largest value grew", frontier.share,
        config.frontier_share_min, frontier.share >= config.frontier_share_min)


def _nonce(facts: SlotFacts, config: TreeConfig, trail: list[Evidence]) -> Diagnosis | None:
    """Tested before SEQUENCE: a request timestamp advances with time too, but no one will
    ask for the values a series extension would make of it."""
    if facts.name.startswith("path[") or "]." in facts.name or \
            re.match(config.user_name, facts.name.split("[", 1)[0]):
        return None  # a user's value stays user-scoped even when it changes every request
    if facts.time_like_share > 0 and _check(
            trail, "value is the request time (before sequence)",
            "share of values within a day of the request (epoch s/ms/µs)",
            facts.time_like_share, config.time_like_share_min,
            facts.time_like_share >= config.time_like_share_min):
        return _decide(facts, ParamClass.NONCE, trail)
    repeats = facts.count / facts.distinct
    if facts.distinct >= config.high_cardinality_min and _check(
            trail, "every value new (before sequence)", "requests / distinct values", repeats,
            config.nonce_repeat_max, repeats <= config.nonce_repeat_max):
        return _decide(facts, ParamClass.NONCE, trail)
    return None


def _page(facts: SlotFacts, config: TreeConfig, trail: list[Evidence]) -> Diagnosis | None:
    if facts.type_shares.get("int", 0.0) < config.type_share_min or not facts.top_values:
        return None
    numbers = {int(v): n for v, n in facts.top_values if v.lstrip("-").isdigit()}
    largest = max(numbers) if numbers else 0
    first, second = numbers.get(1, 0) + numbers.get(0, 0), numbers.get(2, 0)
    small = largest <= config.page_value_max and min(numbers, default=0) >= 0
    if _check(trail, "small integers", "largest value", largest, config.page_value_max, small) \
            and _check(trail, "popularity decays", "count(page 1) - count(page 2)",
                       first - second, 0, first > second > 0):
        return _decide(facts, ParamClass.PAGE, trail)
    return None


def _enum(facts: SlotFacts, config: TreeConfig, trail: list[Evidence]) -> Diagnosis | None:
    if _check(trail, "few values", "distinct", facts.distinct, config.enum_distinct_max,
              facts.distinct <= config.enum_distinct_max):
        return _decide(facts, ParamClass.ENUM, trail)
    return None


_TESTS = (_secret, _few_or_constant, _date, _nonce, _sequence, _user_scoped, _page, _enum)


def apply_override(diagnosis: Diagnosis, override: ParamOverride | None) -> Diagnosis:
    """The diagnosis after a rule's override (unchanged when there is none)."""
    if override is None:
        return diagnosis
    param_class = override.param_class or diagnosis.param_class
    return replace(
        diagnosis, param_class=param_class, overridden=True,
        date_offset_days=(override.date_offset_days if override.date_offset_days is not None
                          else diagnosis.date_offset_days),
        date_format=override.date_format or diagnosis.date_format,
        drop_from_key=override.drop_from_key or param_class is ParamClass.NONCE,
        never_warm=override.never_warm or param_class in NEVER_WARM)


Overrides = Mapping[tuple[str, str], ParamOverride]


@dataclass(frozen=True)
class TemplateDiagnosis:
    """Every slot's diagnosis for one template."""

    template: str
    slots: Mapping[str, Diagnosis] = field(default_factory=dict)

    def classes(self) -> frozenset[ParamClass]:
        """The set of classes among the slots."""
        return frozenset(d.param_class for d in self.slots.values())

    @property
    def never_warm(self) -> bool:
        """True when some slot forbids warming (user-scoped, secret, or a rule)."""
        return any(d.never_warm for d in self.slots.values())


def diagnose_template(pattern: str, stats: TemplateStats, overrides: Overrides | None = None,
                      config: TreeConfig | None = None,
                      frontiers: Mapping[str, Frontier] | None = None) -> TemplateDiagnosis:
    """Diagnose every slot of a template (`frontiers`: its numeric slots' frontiers, from
    `warmd.rules.frontier`), then apply the rules' overrides."""
    overrides = overrides or {}
    frontiers = frontiers or {}
    slots = {name: apply_override(evaluate(facts_from(name, slot_stats, frontiers.get(name)),
                                           config),
                                  overrides.get((pattern, name)))
             for name, slot_stats in stats.slots.items()}
    return TemplateDiagnosis(pattern, slots)
