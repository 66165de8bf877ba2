"""Bounded, mergeable summaries of parsed requests: what the diagnosis and prediction read.

Memory is fixed by SummaryConfig (sketch capacities, template and series caps), not by the
log length; `merge` folds a summary from another host or another part of the log. Pure.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from itertools import compress

from warmd.analysis.formats import Record
from warmd.analysis.sketch import DistinctCount, HeavyHitters, stable_hash
from warmd.analysis.target import Decomposed, PathGeneraliser, decompose, value_type

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
CLIENT_SAMPLE = 8
TARGET_CACHE_SIZE = 25_000  # memoised decompositions per process (about 1 KB each)
DATE_FORMATS = {8: "%Y%m%d", 10: "%Y-%m-%d"}
_RESCALE_EXPONENT = 400.0


@dataclass(frozen=True)
class TargetInfo:
    """What a summary memoises per raw target: template, canonical key, value types."""

    parts: Decomposed
    key: str
    pattern: str
    kinds: tuple[str, ...]
    ordinals: tuple[int | None, ...]
    value_hashes: tuple[int, ...]  # stable hashes of the slot values (for the KMV sketches)


@dataclass(frozen=True)
class SummaryConfig:
    """Sizes and filters of a summary. Memory grows with these numbers only."""

    requests_capacity: int = 20_000
    values_per_slot: int = 64
    max_templates: int = 2_000
    max_series: int = 5_000
    half_life_s: float = 86_400.0
    series_gap_s: float = 6 * 3600.0
    methods: tuple[str, ...] = ("GET",)
    bot_pattern: str = r"(?i)bot\b|crawl|spider|slurp|bingpreview|facebookexternalhit|monitor"


@dataclass
class SlotStats:
    """Statistics of one template slot (a query parameter, path segment or CE number)."""

    values: HeavyHitters
    distinct: DistinctCount = field(default_factory=DistinctCount)
    # The client-sample sketches need less precision than `distinct` (nonce detection).
    pairs_with_client: DistinctCount = field(default_factory=lambda: DistinctCount(64))
    clients: DistinctCount = field(default_factory=lambda: DistinctCount(64))
    sampled_values: DistinctCount = field(default_factory=lambda: DistinctCount(64))
    types: Counter[str] = field(default_factory=Counter)
    date_offsets: Counter[int] = field(default_factory=Counter)
    count: int = 0
    sampled_rows: int = 0
    increases: int = 0
    decreases: int = 0

    def merge(self, other: SlotStats) -> None:
        """Fold in the same slot's statistics from another summary."""
        self.values.merge(other.values)
        self.distinct.merge(other.distinct)
        self.pairs_with_client.merge(other.pairs_with_client)
        self.clients.merge(other.clients)
        self.sampled_values.merge(other.sampled_values)
        self.types.update(other.types)
        self.date_offsets.update(other.date_offsets)
        self.count += other.count
        self.sampled_rows += other.sampled_rows
        self.increases += other.increases
        self.decreases += other.decreases


@dataclass
class SeriesStats:
    """One series: a template with fixed non-numeric values whose numbers may advance."""

    values: tuple[str, ...]
    first_s: float
    last_s: float
    first_values: tuple[str, ...] = ()
    requests: int = 1
    advances: int = 0
    steps: Counter[tuple[int, ...]] = field(default_factory=Counter)

    def merge(self, other: SeriesStats) -> None:
        """Fold in the same series seen elsewhere; the latest position wins."""
        if other.last_s > self.last_s:
            self.values, self.last_s = other.values, other.last_s
        if other.first_s < self.first_s:
            self.first_s, self.first_values = other.first_s, other.first_values
        self.requests += other.requests
        self.advances += other.advances
        self.steps.update(other.steps)


@dataclass
class TemplateStats:
    """Per-template counts, time-of-day and day-of-week profiles and slot statistics."""

    decomposed_example: Decomposed
    count: int = 0
    last_s: float = 0.0
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    weekdays: list[int] = field(default_factory=lambda: [0] * 7)
    slots: dict[str, SlotStats] = field(default_factory=dict)
    date_keys: HeavyHitters | None = None

    def merge(self, other: TemplateStats) -> None:
        """Fold in the same template's statistics from another summary."""
        self.count += other.count
        self.last_s = max(self.last_s, other.last_s)
        self.hours = [a + b for a, b in zip(self.hours, other.hours, strict=True)]
        self.weekdays = [a + b for a, b in zip(self.weekdays, other.weekdays, strict=True)]
        for name, stats in other.slots.items():
            if name in self.slots:
                self.slots[name].merge(stats)
            else:
                self.slots[name] = stats
        if other.date_keys is not None:
            if self.date_keys is None:
                self.date_keys = other.date_keys
            else:
                self.date_keys.merge(other.date_keys)


def date_ordinal(value: str) -> int | None:
    """The proleptic ordinal of a YYYY-MM-DD or YYYYMMDD value, or None."""
    digits = value.replace("-", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).toordinal()
    except ValueError:
        return None


def date_token(value: str, offset_days: int) -> str:
    """The placeholder for a date slot `offset_days` after the request's date."""
    return f"{{date:{offset_days:+d}:{DATE_FORMATS.get(len(value), '%Y-%m-%d')}}}"


class Summary:
    """The mergeable summary of one or more logs (or parts of logs)."""

    def __init__(self, config: SummaryConfig | None = None) -> None:
        self.config = config or SummaryConfig()
        self.requests = HeavyHitters(self.config.requests_capacity)
        self.templates: dict[str, TemplateStats] = {}
        self.series: dict[tuple[str, tuple[str, ...]], SeriesStats] = {}
        self.generaliser = PathGeneraliser()
        self.lines = 0
        self.excluded: Counter[str] = Counter()
        self.malformed = 0
        self.malformed_samples: list[str] = []
        self.first_s = math.inf
        self.last_s = -math.inf
        self.landmark_s: float | None = None
        self.dropped_templates = 0
        self._bot = re.compile(self.config.bot_pattern) if self.config.bot_pattern else None
        self._bot_cache: dict[str, bool] = {}
        self._targets: dict[str, TargetInfo] = {}
        self._value_types: dict[str, str] = {}
        self._frozen: tuple[int, frozenset[tuple[int, int, str]]] = (0, frozenset())

    def __getstate__(self) -> dict:
        """Ship the summary without its caches (they are rebuilt where it lands)."""
        state = dict(self.__dict__)
        generaliser = PathGeneraliser()
        generaliser.generalised = set(self.generaliser.generalised)
        state.update(generaliser=generaliser, _targets={}, _bot_cache={}, _bot=None,
                     _value_types={}, _frozen=(0, frozenset()))
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        pattern = self.config.bot_pattern
        self._bot = re.compile(pattern) if pattern else None

    # -- building ---------------------------------------------------------------------------

    def add_records(self, records: Iterable[Record]) -> None:
        """Summarise a batch of records."""
        batch = list(records)
        self.add_columns([r.target for r in batch], [r.time_s for r in batch],
                         [r.method for r in batch], [r.status for r in batch],
                         [r.client for r in batch], [r.agent for r in batch])

    def add_columns(self, targets: list[str], times_s: list[float], methods: list[str],
                    statuses: list[int], clients: list[str], agents: list[str]) -> None:
        """Summarise a batch given as columns (the fast path: per-line work stays in C).

        Lines are first aggregated per (target, hour); the Python-level work then runs once
        per distinct target and hour, and clients are sampled one line in CLIENT_SAMPLE.
        """
        if not targets:
            return
        self.lines += len(targets)
        self.first_s = min(self.first_s, min(times_s))
        self.last_s = max(self.last_s, max(times_s))
        keep = self._cacheable_mask(methods, statuses, agents)
        if not all(keep):
            targets = list(compress(targets, keep))
            times_s = list(compress(times_s, keep))
            clients = list(compress(clients, keep))
        if not targets:
            return
        if self.landmark_s is None:
            self.landmark_s = min(times_s)
        known = self._targets
        paths = {t.partition("?")[0] for t in set(targets) if t not in known}
        if any([self.generaliser.observe(path) for path in paths]):
            self._targets.clear()
        hour_of = {time_s: int(time_s // 3600) for time_s in set(times_s)}
        hours = list(map(hour_of.__getitem__, times_s))
        first_s = dict(zip(reversed(targets), reversed(times_s), strict=True))
        last_s = dict(zip(targets, times_s, strict=True))
        counts = Counter(targets)
        infos = {target: self._info(target) for target in first_s}
        # Last-seen order: an advancing value is last asked for after the previous one, while
        # pages and hot ids come back late in any order (first-seen order would favour 1, 2, 3).
        for target in sorted(first_s, key=last_s.__getitem__):
            self._add_target(infos[target], counts[target], first_s[target], last_s[target])
        for (target, hour), count in Counter(zip(targets, hours, strict=True)).items():
            self._add_hour(infos[target], hour, count, last_s[target])
        sample = slice(None, None, CLIENT_SAMPLE)
        pairs = Counter(zip(targets[sample], clients[sample], strict=True))
        for (target, client), count in pairs.items():
            self._add_client(infos[target], client, count)

    def _cacheable_mask(self, methods: list[str], statuses: list[int],
                        agents: list[str]) -> list[bool]:
        """Per line: may it enter warm sets? Decided once per distinct (method, status, agent)
        and counted into `excluded` by reason (method, then status, then bot)."""
        allowed = set(self.config.methods)
        bots = self._bot_cache
        if len(bots) > 50_000:
            bots.clear()
        combos = list(zip(methods, statuses, agents, strict=True))
        verdict: dict[tuple[str, int, str], bool] = {}
        for combo, count in Counter(combos).items():
            method, status, agent = combo
            if method not in allowed:
                self.excluded["method"] += count
            elif not 200 <= status < 300:
                self.excluded["status"] += count
            elif agent and self._bot is not None and self._is_bot(agent):
                self.excluded["bot"] += count
            else:
                verdict[combo] = True
                continue
            verdict[combo] = False
        return list(map(verdict.__getitem__, combos))

    def _is_bot(self, agent: str) -> bool:
        known = self._bot_cache.get(agent)
        if known is None:
            assert self._bot is not None
            known = self._bot_cache[agent] = bool(self._bot.search(agent))
        return known

    def _info(self, target: str) -> TargetInfo:
        info = self._targets.get(target)
        if info is None:
            parts = decompose(target, self._generalised())
            types = self._value_types
            if len(types) > 4 * TARGET_CACHE_SIZE:
                types.clear()
            kinds = tuple(types.get(v) or types.setdefault(v, value_type(v))
                          for v in parts.values)
            ordinals = tuple(date_ordinal(v) if k == "date" else None
                             for v, k in zip(parts.values, kinds, strict=True))
            info = TargetInfo(parts, parts.template.compose(parts.values),
                              parts.template.pattern, kinds, ordinals,
                              tuple(map(stable_hash, parts.values)))
            if len(self._targets) > TARGET_CACHE_SIZE:
                self._targets.clear()
            self._targets[target] = info
        return info

    def _generalised(self) -> frozenset[tuple[int, int, str]]:
        """The slug positions as a frozenset, rebuilt only when the set grew."""
        size = len(self.generaliser.generalised)
        if self._frozen[0] != size:
            self._frozen = (size, frozenset(self.generaliser.generalised))
        return self._frozen[1]

    def split(self, target: str) -> tuple[Decomposed, str]:
        """Template, slot values and canonical key of `target` (memoised, bounded)."""
        info = self._info(target)
        return info.parts, info.key

    def _template(self, info: TargetInfo) -> TemplateStats:
        stats = self.templates.get(info.pattern)
        if stats is None:
            if len(self.templates) >= self.config.max_templates:
                self._evict_templates()
            stats = self.templates[info.pattern] = TemplateStats(info.parts)
            for name in info.parts.template.slot_names:
                stats.slots[name] = SlotStats(HeavyHitters(self.config.values_per_slot))
        return stats

    def _add_target(self, info: TargetInfo, count: int, first_s: float, last_s: float) -> None:
        """Once per distinct target in a batch: counts, values, and the series it moves."""
        stats = self._template(info)
        stats.count += count
        stats.last_s = max(stats.last_s, last_s)
        slots = stats.slots
        for position, name in enumerate(info.parts.template.slot_names):
            slot = slots[name]
            value = info.parts.values[position]
            slot.count += count
            slot.values.add(value, count, count, last_s)
            slot.types[info.kinds[position]] += count
            slot.distinct.add_hash(info.value_hashes[position])
        if "int" in info.kinds:
            self._add_series(info, stats, first_s, last_s, count)

    def _add_hour(self, info: TargetInfo, hour: int, count: int, last_s: float) -> None:
        """Requests of one target within one hour: profiles, and dates against the day."""
        stats = self.templates.get(info.pattern)
        if stats is None:
            return
        weight = count * self.decay_weight(hour * 3600 + 1800)
        self.requests.add(info.key, weight, count, last_s)
        stats.hours[hour % 24] += count
        day = hour // 24
        stats.weekdays[(day + 3) % 7] += count  # 1970-01-01 was a Thursday (Monday == 0)
        if not any(info.ordinals):
            return
        tokens = list(info.parts.values)
        for position, ordinal in enumerate(info.ordinals):
            if ordinal is not None:
                offset = max(-400, min(400, ordinal - (day + EPOCH_ORDINAL)))
                stats.slots[info.parts.template.slot_names[position]].date_offsets[offset] += count
                tokens[position] = date_token(info.parts.values[position], offset)
        if stats.date_keys is None:
            stats.date_keys = HeavyHitters(self.config.requests_capacity // 4 + 1)
        stats.date_keys.add(tuple(tokens), weight, count, last_s)

    def _add_client(self, info: TargetInfo, client: str, count: int) -> None:
        stats = self.templates.get(info.pattern)
        if stats is None:
            return
        client_hash = stable_hash(client)  # once, not once per slot
        for name, value, value_hash in zip(info.parts.template.slot_names, info.parts.values,
                                           info.value_hashes, strict=True):
            slot = stats.slots[name]
            slot.clients.add_hash(client_hash)
            slot.sampled_rows += count
            slot.sampled_values.add_hash(value_hash)  # pairs are sampled: compare with these
            slot.pairs_with_client.add(value + "\x00" + client)

    def decay_weight(self, time_s: float) -> float:
        """Forward-decay weight of a request at `time_s` (relative to the landmark)."""
        assert self.landmark_s is not None
        exponent = (time_s - self.landmark_s) / self.config.half_life_s
        if exponent > _RESCALE_EXPONENT:
            self._move_landmark(time_s)
            exponent = 0.0
        return 2.0 ** exponent

    def _move_landmark(self, time_s: float) -> None:
        assert self.landmark_s is not None
        factor = 2.0 ** (-(time_s - self.landmark_s) / self.config.half_life_s)
        self.requests.scale(factor)
        for stats in self.templates.values():
            if stats.date_keys is not None:
                stats.date_keys.scale(factor)
        self.landmark_s = time_s

    def is_cacheable(self, record: Record) -> bool:
        """True for requests warm sets may hold (method, 2xx status, not a bot)."""
        if record.method not in self.config.methods or not 200 <= record.status < 300:
            return False
        if self._bot is None or not record.agent:
            return True
        return not self._bot.search(record.agent)

    def _add_series(self, info: TargetInfo, stats: TemplateStats, first_s: float,
                    last_s: float, count: int) -> None:
        values = info.parts.values
        numeric = [i for i, kind in enumerate(info.kinds) if kind == "int"]
        key = (info.pattern, tuple(v for v, k in zip(values, info.kinds, strict=True)
                                   if k != "int"))
        series = self.series.get(key)
        if series is None or first_s - series.last_s > self.config.series_gap_s:
            # New, or back after a long silence: pace and lifetime are measured on this run.
            if series is None and len(self.series) >= self.config.max_series:
                self._evict_series()
            self.series[key] = SeriesStats(values, first_s, last_s, values, count)
            return
        series.requests += count
        previous = series.values
        series.values, series.last_s = values, max(series.last_s, last_s)
        if previous == values or len(previous) != len(values):
            return
        step = tuple(int(values[i]) - int(previous[i]) if _is_int(previous[i]) else 0
                     for i in numeric)
        series.advances += 1
        if len(series.steps) < 16 or step in series.steps:
            series.steps[step] += 1
        for i, delta in zip(numeric, step, strict=True):
            slot = stats.slots[info.parts.template.slot_names[i]]
            if delta > 0:
                slot.increases += 1
            elif delta < 0:
                slot.decreases += 1

    def _evict_templates(self) -> None:
        """Drop the least recently seen tenth of the templates (bounded memory)."""
        ranked = sorted(self.templates, key=lambda k: self.templates[k].last_s)
        for pattern in ranked[: max(1, len(ranked) // 10)]:
            del self.templates[pattern]
            self.dropped_templates += 1

    def _evict_series(self) -> None:
        """Drop the least recently updated tenth of the series (bounded memory)."""
        ranked = sorted(self.series, key=lambda k: self.series[k].last_s)
        for key in ranked[: max(1, len(ranked) // 10)]:
            del self.series[key]

    # -- merging ----------------------------------------------------------------------------

    def merge(self, other: Summary) -> None:
        """Fold `other` (another host, or another part of the log) into this summary."""
        if other.landmark_s is None:
            self._merge_counts(other)
            return
        if self.landmark_s is None:
            self.landmark_s = other.landmark_s
        factor = 2.0 ** ((other.landmark_s - self.landmark_s) / self.config.half_life_s)
        self.requests.merge(_scaled(other.requests, factor))
        for pattern, stats in other.templates.items():
            if stats.date_keys is not None:
                stats.date_keys = _scaled(stats.date_keys, factor)
            mine = self.templates.get(pattern)
            if mine is None:
                self.templates[pattern] = stats
            else:
                mine.merge(stats)
        for key, series in other.series.items():
            if key in self.series:
                self.series[key].merge(series)
            else:
                self.series[key] = series
        while len(self.series) > self.config.max_series:
            self._evict_series()
        while len(self.templates) > self.config.max_templates:
            self._evict_templates()
        self.generaliser.generalised |= other.generaliser.generalised
        self._merge_counts(other)

    def _merge_counts(self, other: Summary) -> None:
        self.lines += other.lines
        self.excluded.update(other.excluded)
        self.malformed += other.malformed
        room = 5 - len(self.malformed_samples)
        self.malformed_samples.extend(other.malformed_samples[:max(0, room)])
        self.first_s = min(self.first_s, other.first_s)
        self.last_s = max(self.last_s, other.last_s)
        self.dropped_templates += other.dropped_templates

    def expected_rate_per_s(self, weight: float, at_s: float) -> float:
        """Requests per second implied by a forward-decayed `weight`, as seen at `at_s`."""
        if self.landmark_s is None:
            return 0.0
        decayed = weight * 2.0 ** (-(at_s - self.landmark_s) / self.config.half_life_s)
        return decayed * math.log(2) / self.config.half_life_s


def _scaled(sketch: HeavyHitters, factor: float) -> HeavyHitters:
    if factor != 1.0:
        sketch.scale(factor)
    return sketch


def _is_int(value: str) -> bool:
    return value.isdigit() or (value[:1] == "-" and value[1:].isdigit())


def summarise(records: Iterable[Record], config: SummaryConfig | None = None) -> Summary:
    """A summary of `records` (convenience for tests and small logs)."""
    summary = Summary(config)
    summary.add_records(records)
    return summary
