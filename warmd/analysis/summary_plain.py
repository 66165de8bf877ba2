"""A Summary as plain values (maps, lists, ints, floats, strs) and back, checking everything.

The plain form is what warmd/analysis/wire.py packs; reading it trusts nothing, because it
comes from another host: any flaw raises `PlainFormError` naming its place. Pure.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from warmd.analysis.sketch import Counted, DistinctCount, HeavyHitters
from warmd.analysis.summary import (
    WINDOW_HOURS,
    SeriesStats,
    SlotStats,
    Summary,
    SummaryConfig,
    TemplateStats,
)
from warmd.analysis.target import Decomposed, PathGeneraliser, Template, decompose

BOT_PATTERN_CHARS_MAX = 65_536
HALF_LIFE_MIN_S = 1.0
LANDMARK_SLACK_S = 3_600.0  # the landmark moves to mid-hour, so up to this past `last_s`
# A span's bounds (years 5 to 9987): predicting at its end makes dates up to 400 days away.
TIME_S_MIN, TIME_S_MAX = -62_000_000_000.0, 253_000_000_000.0
_INTEGER = re.compile(r"-?\d+\Z")  # what int() reads (\d is Unicode, as in target.py)
_DATE_TOKEN = re.compile(r"\{date:[+-]\d{1,3}:(%Y%m%d|%Y-%m-%d)\}\Z")
_HASH_SPACE = 2**32
# Sketch sizes a fresh SlotStats uses: DistinctCount.merge needs equal k on both sides, so a
# decoded slot with other sizes could not be merged with a local one.
_SLOT_KS = {name: getattr(SlotStats(HeavyHitters(1)), name).k
            for name in ("distinct", "pairs_with_client", "clients", "sampled_values")}


class PlainFormError(ValueError):
    """The plain form of a summary is wrong at some place (the message names it)."""


# ---- to plain ------------------------------------------------------------------------------
# Dicts keep their insertion order: sketches break ties by it (HeavyHitters.top, Counter.
# most_common, template eviction), so it is part of the state, and plain -> Summary -> plain
# is the identity. Sets have no such order (and str hashes differ per process), so they are
# sorted.


def summary_to_plain(summary: Summary) -> dict[str, Any]:
    """The plain form of `summary`: equal states (built by the same steps) give equal forms."""
    return {
        "config": _config_plain(summary.config),
        "lines": summary.lines,
        "malformed": summary.malformed,
        "malformed_samples": list(summary.malformed_samples),
        "excluded": _counter_plain(summary.excluded),
        "first_s": summary.first_s,
        "last_s": summary.last_s,
        "landmark_s": summary.landmark_s,
        "dropped_templates": summary.dropped_templates,
        "dropped_requests": summary.dropped_requests,
        "requests": _heavy_plain(summary.requests),
        "templates": [[pattern, _template_plain(stats)]
                      for pattern, stats in summary.templates.items()],
        "series": [[pattern, list(label), _series_plain(series)]
                   for (pattern, label), series in summary.series.items()],
        "generaliser": _generaliser_plain(summary.generaliser),
        "windows": [[hour, _heavy_plain(window)] for hour, window in summary.windows.items()],
    }


def _config_plain(config: SummaryConfig) -> dict[str, Any]:
    return {"requests_capacity": config.requests_capacity,
            "values_per_slot": config.values_per_slot,
            "max_templates": config.max_templates, "max_series": config.max_series,
            "half_life_s": config.half_life_s, "series_gap_s": config.series_gap_s,
            "methods": list(config.methods), "bot_pattern": config.bot_pattern}


def _counter_plain(counter: Counter[Any]) -> list[list[Any]]:
    return [[list(key) if isinstance(key, tuple) else key, count]
            for key, count in counter.items()]


def _heavy_plain(sketch: HeavyHitters) -> dict[str, Any]:
    items = [[list(key) if isinstance(key, tuple) else key, entry.weight, entry.count,
              entry.last_s] for key, entry in sketch.items.items()]
    return {"capacity": sketch.capacity, "total_weight": sketch.total_weight,
            "total_count": sketch.total_count, "subtracted": sketch.subtracted, "items": items}


def _distinct_plain(sketch: DistinctCount) -> list[Any]:
    # The kept hashes are the whole state (heap and threshold follow): a private read.
    return [sketch.k, sorted(sketch._minimums)]


def _template_plain(stats: TemplateStats) -> dict[str, Any]:
    example = stats.decomposed_example
    template = example.template
    return {"pieces": list(template.pieces), "slot_names": list(template.slot_names),
            "slot_kinds": list(template.slot_kinds), "values": list(example.values),
            "count": stats.count, "last_s": stats.last_s, "hours": list(stats.hours),
            "weekdays": list(stats.weekdays),
            "slots": [[name, _slot_plain(slot)] for name, slot in stats.slots.items()],
            "date_keys": None if stats.date_keys is None else _heavy_plain(stats.date_keys)}


def _slot_plain(slot: SlotStats) -> dict[str, Any]:
    return {"values": _heavy_plain(slot.values), "distinct": _distinct_plain(slot.distinct),
            "pairs_with_client": _distinct_plain(slot.pairs_with_client),
            "clients": _distinct_plain(slot.clients),
            "sampled_values": _distinct_plain(slot.sampled_values),
            "types": _counter_plain(slot.types), "date_offsets": _counter_plain(slot.date_offsets),
            "count": slot.count, "sampled_rows": slot.sampled_rows,
            "increases": slot.increases, "decreases": slot.decreases,
            "time_like": slot.time_like}


def _series_plain(series: SeriesStats) -> dict[str, Any]:
    return {"values": list(series.values), "first_s": series.first_s,
            "last_s": series.last_s, "first_values": list(series.first_values),
            "requests": series.requests, "advances": series.advances,
            "steps": _counter_plain(series.steps)}


def _generaliser_plain(generaliser: PathGeneraliser) -> dict[str, Any]:
    return {"min_distinct": generaliser.min_distinct,
            "max_signatures": generaliser.max_signatures,
            "generalised": [list(key) for key in sorted(generaliser.generalised)]}


# ---- from plain ----------------------------------------------------------------------------


def _fail(where: str, problem: str) -> PlainFormError:
    return PlainFormError(f"bad summary at {where}: {problem}")


def _fields(value: Any, where: str, names: tuple[str, ...]) -> list[Any]:
    """The values of a map that must have exactly the fields `names`, in that order."""
    if type(value) is not dict:
        raise _fail(where, f"expected a map, got {type(value).__name__}")
    if len(value) != len(names) or any(name not in value for name in names):
        missing = sorted(set(names) - set(value))
        unknown = sorted(set(value) - set(names))
        raise _fail(where, f"missing fields {missing}, unknown fields {unknown}")
    return [value[name] for name in names]


def _list(value: Any, where: str, length: int | None = None) -> list[Any]:
    if type(value) is not list:
        raise _fail(where, f"expected a list, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise _fail(where, f"expected {length} items, got {len(value)}")
    return value


def _int(value: Any, where: str, minimum: int | None = 0) -> int:
    if type(value) is not int:
        raise _fail(where, f"expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise _fail(where, f"expected an integer >= {minimum}, got {value}")
    return value


def _number(value: Any, where: str, finite: bool = True) -> float:
    """An int or a float, kept as it came (weights built from counts are ints)."""
    if type(value) is not float and type(value) is not int:
        raise _fail(where, f"expected a number, got {type(value).__name__}")
    if type(value) is float and (math.isnan(value) or (finite and math.isinf(value))):
        raise _fail(where, f"expected a finite number, got {value}")
    return value


def _moment(value: Any, where: str, finite: bool = False) -> float:
    """Epoch seconds: infinite (an empty summary's span) unless `finite`, or in bounds."""
    moment = _number(value, where, finite=finite)
    if not math.isinf(moment) and not TIME_S_MIN <= moment <= TIME_S_MAX:
        raise _fail(where, f"{moment} lies outside [{TIME_S_MIN}, {TIME_S_MAX}]")
    return moment


def _weight(value: Any, where: str) -> float:
    """A sketch weight: finite and never negative (the predictor takes exp of minus it)."""
    weight = _number(value, where)
    if weight < 0:
        raise _fail(where, f"expected a weight >= 0, got {weight}")
    return weight


def _str(value: Any, where: str) -> str:
    if type(value) is not str:
        raise _fail(where, f"expected a string, got {type(value).__name__}")
    return value


def _strs(value: Any, where: str, length: int | None = None) -> tuple[str, ...]:
    return tuple(_str(item, f"{where}[{n}]")
                 for n, item in enumerate(_list(value, where, length)))


def _ints(value: Any, where: str, length: int | None = None) -> list[int]:
    return [_int(item, f"{where}[{n}]") for n, item in enumerate(_list(value, where, length))]


def _pairs(value: Any, where: str) -> list[list[Any]]:
    """A list of [key, value] pairs whose keys are unique (an encoded dict)."""
    pairs = _list(value, where)
    for n, pair in enumerate(pairs):
        _list(pair, f"{where}[{n}]", 2)
    return pairs


_SUMMARY_FIELDS = ("config", "lines", "malformed", "malformed_samples", "excluded", "first_s",
                   "last_s", "landmark_s", "dropped_templates", "dropped_requests", "requests", "templates",
                   "series", "generaliser", "windows")


def summary_from_plain(plain: Any) -> Summary:
    """The Summary whose plain form is `plain`, checked so that merging, predicting,
    diagnosing and explaining it cannot fail on what it holds.

    Raises:
        PlainFormError: a missing or unknown field, or a value of the wrong type or range.
    """
    (config, lines, malformed, samples, excluded, first_s, last_s, landmark_s, dropped,
     dropped_requests, requests, templates, series, generaliser,
     windows) = _fields(plain, "summary", _SUMMARY_FIELDS)
    summary = Summary(_config_from(config))
    summary.lines = _int(lines, "lines")
    summary.malformed = _int(malformed, "malformed")
    summary.malformed_samples = list(_strs(samples, "malformed_samples"))
    summary.excluded = _counter_from(excluded, "excluded", _str_key)
    summary.first_s = _moment(first_s, "first_s")
    summary.last_s = _moment(last_s, "last_s")
    summary.landmark_s = None if landmark_s is None else _moment(landmark_s, "landmark_s", True)
    summary.dropped_templates = _int(dropped, "dropped_templates")
    summary.dropped_requests = _int(dropped_requests, "dropped_requests")
    summary.requests = _heavy_from(requests, "requests", _str_key)
    summary.generaliser = _generaliser_from(generaliser)
    summary.templates = _templates_from(templates, frozenset(summary.generaliser.generalised))
    summary.series = _all_series_from(series, summary.templates)
    summary.windows = _windows_from(windows)
    _check_landmark(summary)
    return summary


def _windows_from(plain: Any) -> dict[int, HeavyHitters]:
    windows: dict[int, HeavyHitters] = {}
    pairs = _pairs(plain, "windows")
    if len(pairs) > WINDOW_HOURS:
        raise _fail("windows", f"{len(pairs)} hours, at most {WINDOW_HOURS}")
    for n, (hour, window) in enumerate(pairs):
        hour = _int(hour, f"windows[{n}].hour", minimum=None)
        if hour in windows:
            raise _fail(f"windows[{n}]", f"repeated hour {hour}")
        windows[hour] = _heavy_from(window, f"windows[{n}].sketch", _str_key)
    return windows


def _check_landmark(summary: Summary) -> None:
    """The decay landmark lies within the summary's time span (as building keeps it), so
    the decay factors of merge and predict stay finite."""
    landmark_s = summary.landmark_s
    if landmark_s is None:
        if summary.requests.items or summary.templates or summary.series:
            raise _fail("landmark_s", "missing although the summary holds requests")
        return
    if not summary.first_s <= landmark_s <= summary.last_s + LANDMARK_SLACK_S:
        raise _fail("landmark_s", f"{landmark_s} lies outside the summary's span "
                                  f"[{summary.first_s}, {summary.last_s}]")


_CONFIG_FIELDS = ("requests_capacity", "values_per_slot", "max_templates", "max_series",
                  "half_life_s", "series_gap_s", "methods", "bot_pattern")


def _config_from(plain: Any) -> SummaryConfig:
    (requests_capacity, values_per_slot, max_templates, max_series, half_life_s,
     series_gap_s, methods, bot_pattern) = _fields(plain, "config", _CONFIG_FIELDS)
    half_life = _number(half_life_s, "config.half_life_s")
    if half_life < HALF_LIFE_MIN_S:
        raise _fail("config.half_life_s", f"must be >= {HALF_LIFE_MIN_S}, got {half_life}")
    pattern = _str(bot_pattern, "config.bot_pattern")
    if len(pattern) > BOT_PATTERN_CHARS_MAX:
        raise _fail("config.bot_pattern", f"longer than {BOT_PATTERN_CHARS_MAX} characters")
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        raise _fail("config.bot_pattern", f"not a regular expression: {error}") from None
    return SummaryConfig(
        requests_capacity=_int(requests_capacity, "config.requests_capacity", 1),
        values_per_slot=_int(values_per_slot, "config.values_per_slot", 1),
        max_templates=_int(max_templates, "config.max_templates", 1),
        max_series=_int(max_series, "config.max_series", 1),
        half_life_s=half_life,
        series_gap_s=_number(series_gap_s, "config.series_gap_s"),
        methods=_strs(methods, "config.methods"), bot_pattern=pattern)


def _str_key(value: Any, where: str) -> str:
    return _str(value, where)


def _hour_offset_key(value: Any, where: str) -> tuple[int, int]:
    hour, offset = (_int(item, f"{where}[{n}]", minimum=None)
                    for n, item in enumerate(_list(value, where, 2)))
    if not 0 <= hour < 24 or not -400 <= offset <= 400:
        raise _fail(where, f"hour {hour} or offset {offset} out of range")
    return hour, offset


def _int_tuple_key(value: Any, where: str) -> tuple[int, ...]:
    return tuple(_int(item, f"{where}[{n}]", minimum=None)
                 for n, item in enumerate(_list(value, where)))


def _counter_from(plain: Any, where: str, key_of: Callable[[Any, str], Any]) -> Counter[Any]:
    counter: Counter[Any] = Counter()
    for n, (key, count) in enumerate(_pairs(plain, where)):
        decoded = key_of(key, f"{where}[{n}].key")
        if decoded in counter:
            raise _fail(f"{where}[{n}]", f"repeated key {decoded!r:.60}")
        counter[decoded] = _int(count, f"{where}[{n}].count")
    return counter


_HEAVY_FIELDS = ("capacity", "total_weight", "total_count", "subtracted", "items")


def _heavy_from(plain: Any, where: str, key_of: Callable[[Any, str], Any]) -> HeavyHitters:
    capacity, total_weight, total_count, subtracted, items = _fields(plain, where, _HEAVY_FIELDS)
    sketch = HeavyHitters(_int(capacity, f"{where}.capacity", 1))
    sketch.total_weight = _weight(total_weight, f"{where}.total_weight")
    sketch.total_count = _int(total_count, f"{where}.total_count")
    sketch.subtracted = _weight(subtracted, f"{where}.subtracted")
    entries = _list(items, f"{where}.items")
    if len(entries) > 2 * sketch.capacity:
        raise _fail(f"{where}.items", f"{len(entries)} items exceed twice the capacity")
    for n, entry in enumerate(entries):
        place = f"{where}.items[{n}]"
        key, weight, count, last_s = _list(entry, place, 4)
        decoded = key_of(key, f"{place}.key")
        if decoded in sketch.items:
            raise _fail(place, f"repeated key {decoded!r:.60}")
        sketch.items[decoded] = Counted(_weight(weight, f"{place}.weight"),
                                        _int(count, f"{place}.count"),
                                        _number(last_s, f"{place}.last_s"))
    return sketch


def _distinct_from(plain: Any, where: str, k_expected: int) -> DistinctCount:
    k, hashes = _list(plain, where, 2)
    if _int(k, f"{where}.k") != k_expected:
        raise _fail(f"{where}.k", f"expected {k_expected}, got {k}")
    minimums = _ints(hashes, f"{where}.hashes")
    if len(minimums) > k_expected or minimums != sorted(set(minimums)):
        raise _fail(f"{where}.hashes", f"expected at most {k_expected} sorted unique hashes")
    if minimums and minimums[-1] >= _HASH_SPACE:
        raise _fail(f"{where}.hashes", f"hash {minimums[-1]} outside 32 bits")
    sketch = DistinctCount(k_expected)
    for hashed in minimums:
        sketch.add_hash(hashed)
    return sketch


def _templates_from(plain: Any, generalised: frozenset[tuple[int, int, str]]
                    ) -> dict[str, TemplateStats]:
    templates: dict[str, TemplateStats] = {}
    for n, (pattern, stats) in enumerate(_pairs(plain, "templates")):
        where = f"templates[{n}]"
        _str(pattern, f"{where}.pattern")
        if pattern in templates:
            raise _fail(where, f"repeated template {pattern!r:.60}")
        templates[pattern] = _template_from(stats, where)
        _check_example(templates[pattern].decomposed_example, pattern, generalised, where)
    return templates


def _check_example(example: Decomposed, pattern: str,
                   generalised: frozenset[tuple[int, int, str]], where: str) -> None:
    """The example is the template it is filed under, with the slot names that splitting
    its target gives (the predictor looks slots up by those names)."""
    if example.template.pattern != pattern:
        raise _fail(where, f"example does not match the template {pattern!r:.60}")
    again = decompose(example.template.compose(example.values), generalised).template
    # A path position generalised since the example was filed splits differently now;
    # only a split to the same template must give the same names.
    if again.pattern == pattern and again.slot_names != example.template.slot_names:
        raise _fail(f"{where}.slot_names", f"expected {list(again.slot_names)!r:.200}")


_TEMPLATE_FIELDS = ("pieces", "slot_names", "slot_kinds", "values", "count", "last_s",
                    "hours", "weekdays", "slots", "date_keys")


def _template_from(plain: Any, where: str) -> TemplateStats:
    (pieces, slot_names, slot_kinds, values, count, last_s, hours, weekdays, slots,
     date_keys) = _fields(plain, where, _TEMPLATE_FIELDS)
    names = _strs(slot_names, f"{where}.slot_names")
    template = Template(_strs(pieces, f"{where}.pieces", len(names) + 1), names,
                        _strs(slot_kinds, f"{where}.slot_kinds", len(names)))
    stats = TemplateStats(Decomposed(template, _strs(values, f"{where}.values", len(names))))
    stats.count = _int(count, f"{where}.count")
    stats.last_s = _number(last_s, f"{where}.last_s")
    stats.hours = _ints(hours, f"{where}.hours", 24)
    stats.weekdays = _ints(weekdays, f"{where}.weekdays", 7)
    for m, (name, slot) in enumerate(_pairs(slots, f"{where}.slots")):
        place = f"{where}.slots[{m}]"
        if _str(name, f"{place}.name") in stats.slots:
            raise _fail(place, f"repeated slot {name!r:.60}")
        stats.slots[name] = _slot_from(slot, place)
    missing = [name for name in names if name not in stats.slots]
    if missing:
        raise _fail(f"{where}.slots", f"no statistics for slots {missing}")
    if date_keys is not None:
        stats.date_keys = _heavy_from(date_keys, f"{where}.date_keys",
                                      lambda key, place: _date_key(key, place, len(names)))
    return stats


def _date_key(value: Any, where: str, length: int) -> tuple[str, ...]:
    """A date-relative key: one token per slot, dates as well-formed `{date:+1:%Y-%m-%d}`."""
    tokens = _strs(value, where, length)
    for n, token in enumerate(tokens):
        if token.startswith("{date:") and not _DATE_TOKEN.match(token):
            raise _fail(f"{where}[{n}]", f"malformed date token {token!r:.60}")
    return tokens


_SLOT_FIELDS = ("values", "distinct", "pairs_with_client", "clients", "sampled_values",
                "types", "date_offsets", "count", "sampled_rows", "increases", "decreases",
                "time_like")


def _slot_from(plain: Any, where: str) -> SlotStats:
    (values, distinct, pairs_with_client, clients, sampled_values, types, date_offsets, count,
     sampled_rows, increases, decreases, time_like) = _fields(plain, where, _SLOT_FIELDS)
    return SlotStats(
        values=_heavy_from(values, f"{where}.values", _str_key),
        distinct=_distinct_from(distinct, f"{where}.distinct", _SLOT_KS["distinct"]),
        pairs_with_client=_distinct_from(pairs_with_client, f"{where}.pairs_with_client",
                                         _SLOT_KS["pairs_with_client"]),
        clients=_distinct_from(clients, f"{where}.clients", _SLOT_KS["clients"]),
        sampled_values=_distinct_from(sampled_values, f"{where}.sampled_values",
                                      _SLOT_KS["sampled_values"]),
        types=_counter_from(types, f"{where}.types", _str_key),
        date_offsets=_counter_from(date_offsets, f"{where}.date_offsets", _hour_offset_key),
        count=_int(count, f"{where}.count"),
        sampled_rows=_int(sampled_rows, f"{where}.sampled_rows"),
        increases=_int(increases, f"{where}.increases"),
        decreases=_int(decreases, f"{where}.decreases"),
        time_like=_int(time_like, f"{where}.time_like"))


def _all_series_from(plain: Any, templates: dict[str, TemplateStats]
                     ) -> dict[tuple[str, tuple[str, ...]], SeriesStats]:
    series: dict[tuple[str, tuple[str, ...]], SeriesStats] = {}
    for n, entry in enumerate(_list(plain, "series")):
        where = f"series[{n}]"
        pattern, label, stats = _list(entry, where, 3)
        key = (_str(pattern, f"{where}.pattern"), _strs(label, f"{where}.label"))
        if key in series:
            raise _fail(where, "repeated series")
        series[key] = _series_from(stats, where)
        known = templates.get(pattern)
        if known is not None and \
                len(series[key].values) != len(known.decomposed_example.template.slot_names):
            raise _fail(where, f"values do not fit the template {pattern!r:.60}")
    return series


_SERIES_FIELDS = ("values", "first_s", "last_s", "first_values", "requests", "advances",
                  "steps")


def _series_from(plain: Any, where: str) -> SeriesStats:
    (values, first_s, last_s, first_values, requests, advances,
     steps) = _fields(plain, where, _SERIES_FIELDS)
    current = _strs(values, f"{where}.values")
    series = SeriesStats(
        values=current, first_s=_number(first_s, f"{where}.first_s"),
        last_s=_number(last_s, f"{where}.last_s"),
        first_values=_first_values(first_values, f"{where}.first_values", len(current)),
        requests=_int(requests, f"{where}.requests"),
        advances=_int(advances, f"{where}.advances"),
        steps=_counter_from(steps, f"{where}.steps", _int_tuple_key))
    _check_numbers(series, where)
    return series


def _check_numbers(series: SeriesStats, where: str) -> None:
    """Values that look numeric are numbers, here and among the first values: the predictor
    extends a series by adding steps to them."""
    for position, value in enumerate(series.values):
        if not value.lstrip("-").isdigit():
            continue
        for name, values in (("values", series.values), ("first_values", series.first_values)):
            if values and not _INTEGER.match(values[position]):
                raise _fail(f"{where}.{name}[{position}]",
                            f"expected an integer, got {values[position]!r:.60}")


def _first_values(plain: Any, where: str, length: int) -> tuple[str, ...]:
    """A series' first values: as many as its current values, or none (not known)."""
    values = _strs(plain, where)
    if values and len(values) != length:
        raise _fail(where, f"expected 0 or {length} values, got {len(values)}")
    return values


def _generaliser_from(plain: Any) -> PathGeneraliser:
    min_distinct, max_signatures, generalised = _fields(
        plain, "generaliser", ("min_distinct", "max_signatures", "generalised"))
    generaliser = PathGeneraliser(_int(min_distinct, "generaliser.min_distinct", 1),
                                  _int(max_signatures, "generaliser.max_signatures", 1))
    for n, key in enumerate(_list(generalised, "generaliser.generalised")):
        where = f"generaliser.generalised[{n}]"
        segments, position, signature = _list(key, where, 3)
        generaliser.generalised.add((_int(segments, f"{where}.segments"),
                                     _int(position, f"{where}.position"),
                                     _str(signature, f"{where}.signature")))
    return generaliser

