"""Bounded, mergeable summaries of parsed requests: what the diagnosis and prediction read.

Memory is fixed by SummaryConfig (sketch capacities, template and series caps), not by the
log length; `merge` folds a summary from another host or another part of the log. Pure.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from warmd.analysis.batch import cacheable_mask, verdicts
from warmd.analysis.formats import Record
from warmd.analysis.sketch import DistinctCount, HeavyHitters, stable_hash
from warmd.analysis.target import Decomposed, PathGeneraliser
from warmd.analysis.target_memo import TargetInfo, TargetMemo, date_ordinal
from warmd.analysis.window import Block, Window

__all__ = ["EPOCH_ORDINAL", "SeriesStats", "SlotStats", "Summary", "SummaryConfig",
           "TemplateStats", "date_ordinal", "date_token", "local_offsets", "log_zone_h",
           "summarise"]

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
DATE_FORMATS = {8: "%Y%m%d", 10: "%Y-%m-%d"}
_RESCALE_EXPONENT = 400.0
# Per-hour request counts: what the self-backtest replays. The latest three days in full (the
# same hours yesterday and the day before, and the days before them for the naive
# candidates); back to nine days with only each hour's heaviest keys (the same weekday last
# week, and the day before it). Bounded: 72 sketches of 1,024 keys and 144 of 256.
WINDOW_HOURS = 9 * 24
FULL_WINDOW_HOURS = 72
WINDOW_CAPACITY = 1_024
WEEK_WINDOW_CAPACITY = 256


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
    # (UTC hour of the request, value date - UTC request date): the hour lets the diagnosis
    # find the log's own time zone, in which the offset is one number (see local_offsets).
    date_offsets: Counter[tuple[int, int]] = field(default_factory=Counter)
    count: int = 0
    sampled_rows: int = 0
    increases: int = 0
    decreases: int = 0
    time_like: int = 0  # requests whose value is an epoch time within a day of the request

    def copy(self) -> SlotStats:
        """Statistics of their own, equal to these (merging must not share sketches)."""
        return SlotStats(self.values.copy(), self.distinct.copy(), self.pairs_with_client.copy(),
                         self.clients.copy(), self.sampled_values.copy(), Counter(self.types),
                         Counter(self.date_offsets), self.count, self.sampled_rows,
                         self.increases, self.decreases, self.time_like)

    def merge(self, other: SlotStats) -> None:
        """Fold in the same slot's statistics from another summary (`other` is left as is)."""
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
        self.time_like += other.time_like


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

    def copy(self) -> SeriesStats:
        """A series of its own, equal to this one."""
        return SeriesStats(self.values, self.first_s, self.last_s, self.first_values,
                           self.requests, self.advances, Counter(self.steps))

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

    def copy(self, factor: float = 1.0) -> TemplateStats:
        """Statistics of their own, equal to these, the date keys' decayed weights
        multiplied by `factor` (another summary's landmark)."""
        return TemplateStats(self.decomposed_example, self.count, self.last_s, list(self.hours),
                             list(self.weekdays),
                             {name: slot.copy() for name, slot in self.slots.items()},
                             None if self.date_keys is None else self.date_keys.copy(factor))

    def merge(self, other: TemplateStats, factor: float = 1.0) -> None:
        """Fold in the same template's statistics from another summary (its date keys'
        weights multiplied by `factor`); `other` is left as is and shares nothing with
        this one."""
        self.count += other.count
        self.last_s = max(self.last_s, other.last_s)
        self.hours = [a + b for a, b in zip(self.hours, other.hours, strict=True)]
        self.weekdays = [a + b for a, b in zip(self.weekdays, other.weekdays, strict=True)]
        for name, stats in other.slots.items():
            if name in self.slots:
                self.slots[name].merge(stats)
            else:
                self.slots[name] = stats.copy()
        if other.date_keys is not None:
            if self.date_keys is None:
                self.date_keys = other.date_keys.copy(factor)
            else:
                self.date_keys.merge(other.date_keys, factor)


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
        self.dropped_requests = 0  # the requests of the dropped templates
        self.windows: dict[int, HeavyHitters] = {}  # epoch hour -> requests per key
        self._bot = re.compile(self.config.bot_pattern) if self.config.bot_pattern else None
        self._bot_cache: dict[str, bool] = {}
        self._memo = TargetMemo()

    def __getstate__(self) -> dict[str, object]:
        """Ship the summary without its caches (they are rebuilt where it lands)."""
        state = dict(self.__dict__)
        state.update(self._empty_caches(), _bot=None)
        return state

    def drop_caches(self) -> None:
        """Free what only more lines would use (the target memo, the bot cache, the
        generaliser's statistics; its slug positions stay). A worker does this before its
        summary is pickled: pickling needs memory of its own, the caches tens of MB."""
        self.__dict__.update(self._empty_caches())

    def _empty_caches(self) -> dict[str, object]:
        generaliser = PathGeneraliser()
        generaliser.generalised = set(self.generaliser.generalised)
        return {"generaliser": generaliser, "_memo": TargetMemo(), "_bot_cache": {}}

    def __setstate__(self, state: dict[str, object]) -> None:
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
        window = Window()
        window.take(self.block(targets, times_s, methods, statuses, clients, agents))
        self.add_window(window)

    @contextmanager
    def windowed(self, new_window: Callable[[], Window] = Window
                 ) -> Iterator[Callable[[list[str], list[float], list[str], list[int],
                                         list[str], list[str]], None]]:
        """A way to add consecutive batches (columns, as add_columns takes them) through
        windows: the summary takes each window when it is full, when a batch's hours would
        go back within it, and at the end of the `with`. Equal to add_columns on each
        window's batches concatenated (see window.py); the summary is behind until then."""
        window = new_window()

        def add(*columns: Any) -> None:
            nonlocal window
            block = self.block(*columns)
            if not window.accepts(block):
                self.add_window(window)
                window = new_window()
            window.take(block)

        yield add
        self.add_window(window)

    def block(self, targets: list[str], times_s: list[float], methods: list[str],
              statuses: list[int], clients: list[str], agents: list[str]) -> Block:
        """A batch of columns as a Window takes it: its cacheable lines by this summary's
        filters (method, status, bot), the others counted by reason."""
        return Block.of(targets, times_s, clients,
                        *self._cacheable_mask(methods, statuses, agents))

    def add_window(self, window: Window) -> None:
        """Summarise a window of blocks: the summary of its blocks' columns concatenated."""
        if not window.lines:
            return
        self.lines += window.lines
        self.first_s = min(self.first_s, window.first_line_s)
        self.last_s = max(self.last_s, window.last_line_s)
        for reason, count in window.excluded.items():
            self.excluded[reason] += count
        if not window.kept:
            return
        if self.landmark_s is None:
            self.landmark_s = window.first_kept_s
        first_s, last_s, counts = window.first_s, window.last_s, window.counts
        # First-seen order: the generaliser's statistics are bounded, so which paths it
        # counts may depend on the order (a set's would change with the hash seed).
        paths = dict.fromkeys(target.partition("?")[0] for target in self._memo.unknown(last_s))
        if any([self.generaliser.observe(path) for path in paths]):
            self._memo.forget_targets()
            self._fold_generalised()
        infos = {target: self._info(target) for target in last_s}
        # Last-seen order: an advancing value is last asked for after the previous one, while
        # pages and hot ids come back late in any order (first-seen order would favour 1, 2, 3).
        for target in window.order():
            self._add_target(infos[target], counts[target], first_s[target], last_s[target])
        self._add_hours(window.runs, infos, last_s)
        self._trim_windows()
        self._add_clients(infos, window.pairs)

    def _cacheable_mask(self, methods: list[str], statuses: list[int], agents: list[str]
                        ) -> tuple[bytes | None, list[tuple[str, int]]]:
        """Per line 1 when it may enter warm sets, else 0 (None: every line may), and the
        exclusions counted by reason (method, then status, then bot), in the order their
        first lines came."""
        if len(self._bot_cache) > 50_000:
            self._bot_cache.clear()
        allowed = set(self.config.methods)
        return cacheable_mask(
            verdicts(methods, lambda method: method in allowed),
            verdicts(statuses, lambda status: 200 <= status < 300),
            verdicts(agents, lambda agent: not (
                agent and self._bot is not None and self._is_bot(agent))))

    def _is_bot(self, agent: str) -> bool:
        known = self._bot_cache.get(agent)
        if known is None:
            assert self._bot is not None
            known = self._bot_cache[agent] = bool(self._bot.search(agent))
        return known

    def _info(self, target: str) -> TargetInfo:
        return self._memo.info(target, self.generaliser.generalised)

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
        if last_s > stats.last_s:  # as max(), without the call
            stats.last_s = last_s
        slots = stats.slots
        for name, value, kind, value_hash in zip(info.parts.template.slot_names,
                                                 info.parts.values, info.kinds,
                                                 info.value_hashes, strict=True):
            slot = slots[name]
            slot.count += count
            slot.values.add(value, count, count, last_s)
            slot.types[kind] += count
            slot.distinct.add_hash(value_hash)
            if kind == "int" and len(value) in EPOCH_SCALES and is_request_time(value, last_s):
                slot.time_like += count
        if "int" in info.kinds:
            self._add_series(info, stats, first_s, last_s, count)

    def _add_hours(self, per_hour: list[tuple[int, dict[str, int]]],
                   infos: dict[str, TargetInfo], last_s: dict[str, float]) -> None:
        """Each hour's requests per target. The decay weight is taken once per hour, at the
        first target whose template is kept, where line by line would first take it (taking
        it may move the landmark)."""
        templates, requests = self.templates, self.requests
        for hour, hour_counts in per_hour:
            weight = None
            window = self.windows.get(hour)
            if window is None:
                window = self.windows[hour] = HeavyHitters(WINDOW_CAPACITY)
            hour_of_day = hour % 24
            weekday = (hour // 24 + 3) % 7  # 1970-01-01 was a Thursday (Monday == 0)
            for target, count in hour_counts.items():
                info = infos[target]
                stats = templates.get(info.pattern)
                if stats is None:
                    continue
                if weight is None:
                    weight = self.decay_weight(hour * 3600 + 1800)
                time_s = last_s[target]
                requests.add(info.key, count * weight, count, time_s)
                stats.hours[hour_of_day] += count
                stats.weekdays[weekday] += count
                if any(info.ordinals):
                    self._add_dates(stats, info, hour, count, count * weight, time_s)
                window.add(info.key, count, count, time_s)

    def _add_dates(self, stats: TemplateStats, info: TargetInfo, hour: int, count: int,
                   weight: float, last_s: float) -> None:
        """Requests of one target with date values within one hour (`weight`: their
        forward-decayed weight): the dates' offsets from the day, and the request with its
        dates as offsets among the template's date keys."""
        day = hour // 24
        tokens = list(info.parts.values)
        for position, ordinal in enumerate(info.ordinals):
            if ordinal is not None:
                offset = max(-400, min(400, ordinal - (day + EPOCH_ORDINAL)))
                slot_offsets = stats.slots[info.parts.template.slot_names[position]].date_offsets
                slot_offsets[(hour % 24, offset)] += count
                tokens[position] = date_token(info.parts.values[position], offset)
        if stats.date_keys is None:
            stats.date_keys = HeavyHitters(self.config.requests_capacity // 4 + 1)
        stats.date_keys.add(tuple(tokens), weight, count, last_s)

    def _trim_windows(self) -> None:
        """Keep the per-hour counts of the latest WINDOW_HOURS hours only, those older than
        FULL_WINDOW_HOURS cut to their WEEK_WINDOW_CAPACITY heaviest keys."""
        if len(self.windows) > FULL_WINDOW_HOURS:
            latest = max(self.windows)
            for hour in [h for h in self.windows if h <= latest - FULL_WINDOW_HOURS]:
                window = self.windows[hour]
                if hour <= latest - WINDOW_HOURS:
                    del self.windows[hour]
                elif window.capacity > WEEK_WINDOW_CAPACITY:
                    self.windows[hour] = HeavyHitters(WEEK_WINDOW_CAPACITY)
                    self.windows[hour].merge(window)  # keeps the heaviest, error bound kept

    def _add_clients(self, infos: dict[str, TargetInfo],
                     pairs_seen: Counter[tuple[str, str]]) -> None:
        """Sampled (target, client) lines: per slot, the rows and the distinct clients, values
        and (value, client) pairs. The distinct counts keep the smallest hashes whatever the
        order, so each slot takes its template's hashes of the batch as one set."""
        client_hashes = {client: stable_hash(client) for client in {c for _, c in pairs_seen}}
        by_template: dict[tuple[str, tuple[str, ...]], list[tuple[TargetInfo, str, int]]] = {}
        for (target, client), count in pairs_seen.items():
            info = infos[target]
            key = (info.pattern, info.parts.template.slot_names)
            by_template.setdefault(key, []).append((info, client, count))
        for (pattern, slot_names), pairs in by_template.items():
            stats = self.templates.get(pattern)
            if stats is None:
                continue
            rows = sum(count for _, _, count in pairs)
            pair_clients = {client_hashes[client] for _, client, _ in pairs}
            for position, name in enumerate(slot_names):
                slot = stats.slots[name]
                slot.sampled_rows += rows
                slot.clients.add_hashes(pair_clients)
                # pairs are sampled: compare them with the sampled values, not all values
                slot.sampled_values.add_hashes({info.value_hashes[position]
                                                for info, _, _ in pairs})
                slot.pairs_with_client.add_hashes(
                    {stable_hash(info.parts.values[position] + "\x00" + client)
                     for info, client, _ in pairs})

    def decay_weight(self, time_s: float) -> float:
        """Forward-decay weight of a request at `time_s` (relative to the landmark)."""
        assert self.landmark_s is not None
        exponent = (time_s - self.landmark_s) / self.config.half_life_s
        if exponent > _RESCALE_EXPONENT:
            self._move_landmark(time_s)
            exponent = 0.0
        weight: float = 2.0 ** exponent
        return weight

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
        values, kinds = info.parts.values, info.kinds
        label = () if kinds.count("int") == len(kinds) else tuple(
            [v for v, k in zip(values, kinds, strict=True) if k != "int"])
        key = (info.pattern, label)
        series = self.series.get(key)
        if series is None or first_s - series.last_s > self.config.series_gap_s:
            # New, or back after a long silence: pace and lifetime are measured on this run.
            if series is None and len(self.series) >= self.config.max_series:
                self._evict_series()
            self.series[key] = SeriesStats(values, first_s, last_s, values, count)
            return
        series.requests += count
        previous = series.values
        series.values = values
        if last_s > series.last_s:
            series.last_s = last_s
        if previous == values or len(previous) != len(values):
            return
        numeric = [i for i, kind in enumerate(kinds) if kind == "int"]
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
        """Drop the tenth of the templates with the fewest requests (bounded memory).

        By count, not by recency: a template evicted with c requests has 90% of the kept
        ones at c or more, so it is light whatever the order the lines came in (a heavy
        template seen only early in a long log survives, in any split of the log).
        """
        ranked = sorted(self.templates, key=lambda k: (self.templates[k].count, k))
        for pattern in ranked[: max(1, len(ranked) // 10)]:
            self.dropped_requests += self.templates.pop(pattern).count
            self.dropped_templates += 1

    def _fold_generalised(self) -> None:
        """Move the templates filed before a path position became a `{slug}` into the
        template they split to now, the old literal becoming one value of the slug slot.

        Without this, the requests seen before the generaliser decided stay in literal
        templates, and how many depends on how the log was cut (workers, chunks).
        """
        for pattern in list(self.templates):
            stats = self.templates.get(pattern)
            if stats is None:  # evicted to make room for a fold
                continue
            example = stats.decomposed_example
            info = self._info(example.template.compose(example.values))
            if info.pattern != pattern:
                del self.templates[pattern]
                self._template(info).merge(_as_generalised(stats, info, self.config))

    def _evict_series(self) -> None:
        """Drop the least recently updated tenth of the series (bounded memory)."""
        ranked = sorted(self.series, key=lambda k: self.series[k].last_s)
        for key in ranked[: max(1, len(ranked) // 10)]:
            del self.series[key]

    # -- merging ----------------------------------------------------------------------------

    def merge(self, other: Summary) -> None:
        """Fold `other` (another host, or another part of the log) into this summary.

        Pure towards `other`: it is left as it was, and what this summary takes from it is
        copied, so changing either later (more lines, another merge, a landmark move) never
        changes the other (the leader merges replicated summaries it keeps)."""
        if other.landmark_s is None:
            self._merge_counts(other)
            return
        if self.landmark_s is None:
            self.landmark_s = other.landmark_s
        factor = 2.0 ** ((other.landmark_s - self.landmark_s) / self.config.half_life_s)
        self.requests.merge(other.requests, factor)
        for pattern, stats in other.templates.items():
            mine = self.templates.get(pattern)
            if mine is None:
                self.templates[pattern] = stats.copy(factor)
            else:
                mine.merge(stats, factor)
        for key, series in other.series.items():
            if key in self.series:
                self.series[key].merge(series)
            else:
                self.series[key] = series.copy()
        while len(self.series) > self.config.max_series:
            self._evict_series()
        while len(self.templates) > self.config.max_templates:
            self._evict_templates()
        for hour, window in sorted(other.windows.items()):
            if hour in self.windows:
                self.windows[hour].merge(window)
            else:
                self.windows[hour] = window.copy()
        self._trim_windows()
        if not other.generaliser.generalised <= self.generaliser.generalised:
            self.generaliser.generalised |= other.generaliser.generalised
            self._memo.forget_targets()
        self._fold_generalised()
        while len(self.templates) > self.config.max_templates:
            self._evict_templates()
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
        self.dropped_requests += other.dropped_requests

    def expected_rate_per_s(self, weight: float, at_s: float) -> float:
        """Requests per second implied by a forward-decayed `weight`, as seen at `at_s`."""
        if self.landmark_s is None:
            return 0.0
        decayed: float = weight * 2.0 ** (-(at_s - self.landmark_s) / self.config.half_life_s)
        return decayed * math.log(2) / self.config.half_life_s


ZONES_H = range(-12, 15)  # UTC-12 .. UTC+14


def local_offsets(offsets: Counter[tuple[int, int]], zone_h: int) -> Counter[int]:
    """Offsets of value dates from the request's date in the zone UTC+`zone_h`."""
    local: Counter[int] = Counter()
    for (hour, offset), count in offsets.items():
        local_hour = hour + zone_h
        local[offset - (local_hour >= 24) + (local_hour < 0)] += count
    return local


def log_zone_h(offsets: Counter[tuple[int, int]]) -> int:
    """The whole-hour zone in which the date values sit at the most consistent offset from
    the request's date: a report asking for "yesterday" asks for yesterday in the service's
    zone, and in any other zone its offset jumps at some hour. Ties go to the zone nearest
    UTC; no dates: UTC."""
    def consistency(zone_h: int) -> tuple[int, int]:
        counts = local_offsets(offsets, zone_h)
        return (max(counts.values(), default=0), -abs(zone_h))
    return max(ZONES_H, key=consistency)


def _as_generalised(stats: TemplateStats, info: TargetInfo,
                    config: SummaryConfig) -> TemplateStats:
    """`stats` with the slots of `info`'s template: a slot new there (a path position now a
    `{slug}`) holds the one literal value all the requests had; a slot gone (a number inside
    that segment) is dropped."""
    names = info.parts.template.slot_names
    slots = {name: slot for name, slot in stats.slots.items() if name in names}
    for position, name in enumerate(names):
        if name not in slots:
            slot = slots[name] = SlotStats(HeavyHitters(config.values_per_slot))
            slot.values.add(info.parts.values[position], stats.count, stats.count, stats.last_s)
            slot.distinct.add_hash(info.value_hashes[position])
            slot.types[info.kinds[position]] += stats.count
            slot.count = stats.count
    stats.slots = slots
    stats.decomposed_example = info.parts
    return stats


EPOCH_SCALES = {10: 1, 13: 1_000, 16: 1_000_000}  # digits -> units per second (s, ms, µs)


def is_request_time(value: str, request_s: float) -> bool:
    """True when `value` (digits) is an epoch time in s, ms or µs within a day of the
    request: a cache-buster or client timestamp, never a key worth warming."""
    scale = EPOCH_SCALES.get(len(value))
    return scale is not None and abs(int(value) / scale - request_s) <= 86_400


def _is_int(value: str) -> bool:
    return value.isdigit() or (value[:1] == "-" and value[1:].isdigit())


def summarise(records: Iterable[Record], config: SummaryConfig | None = None) -> Summary:
    """A summary of `records` (convenience for tests and small logs)."""
    summary = Summary(config)
    summary.add_records(records)
    return summary
