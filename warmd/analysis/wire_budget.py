"""Shrinking the plain form of a summary until its wire form fits a byte budget. Pure.

A summary's memory is bounded by its SummaryConfig, but with long request targets even the
default bounds exceed what one Raft entry may carry. Shrinking cuts a quarter off whichever
part of the plain form is largest and keeps what ranks highest: the heaviest sketch entries, the most
recently seen templates and series. Every step keeps the form valid for decoding, and the
heavy-hitter error bound grows by the heaviest weight dropped, so estimates stay honest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

Plain = dict[str, Any]
_WEIGHT = 1  # position in a plain sketch item [key, weight, count, last_s]


def _kept(count: int) -> int:
    """How many of `count` entries a step keeps: three quarters, always fewer than all."""
    return (3 * count) // 4


def shrink_step(plain: Plain) -> bool:
    """Cut the largest shrinkable part of `plain` in place; False when nothing is left."""
    sizes = _sizes(plain)
    for part in sorted(sizes, key=lambda name: -sizes[name]):
        if sizes[part] and _SHRINKERS[part](plain):
            return True
    return False


def _packed_len(value: Any) -> int:
    return len(msgpack.packb(value, use_bin_type=True))


def _sketches(plain: Plain, field: str) -> list[dict[str, Any]]:
    """Every `field` sketch of the templates: "date_keys", or "values" of every slot."""
    found = []
    for _pattern, template in plain["templates"]:
        if field == "date_keys":
            if template["date_keys"] is not None:
                found.append(template["date_keys"])
        else:
            found.extend(slot["values"] for _name, slot in template["slots"])
    return found


def _sizes(plain: Plain) -> dict[str, int]:
    """Packed bytes of each part; "templates" counts what the template sketches do not."""
    date_keys = sum(_packed_len(sketch["items"]) for sketch in _sketches(plain, "date_keys"))
    values = sum(_packed_len(sketch["items"]) for sketch in _sketches(plain, "values"))
    return {"requests": _packed_len(plain["requests"]["items"]),
            "date_keys": date_keys, "slot_values": values,
            "templates": max(0, _packed_len(plain["templates"]) - date_keys - values),
            "series": _packed_len(plain["series"]),
            "windows": sum(_packed_len(sketch["items"]) for _hour, sketch in plain["windows"]),
            "generalised": _packed_len(plain["generaliser"]["generalised"])}


def _cut_sketch(sketch: dict[str, Any]) -> bool:
    """Keep the heavier items of a sketch (in their order); the error bound grows by the
    heaviest weight dropped, as a Misra-Gries decrement would."""
    items = sketch["items"]
    if not items:
        return False
    ranked = sorted(range(len(items)), key=lambda n: (-items[n][_WEIGHT], n))
    kept = set(ranked[:_kept(len(items))])
    dropped = [items[n][_WEIGHT] for n in ranked[_kept(len(items)):]]
    sketch["subtracted"] += max(dropped)
    sketch["items"] = [item for n, item in enumerate(items) if n in kept]
    return True


def _cut_requests(plain: Plain) -> bool:
    return _cut_sketch(plain["requests"])


def _cut_all(field: str) -> Callable[[Plain], bool]:
    def halve(plain: Plain) -> bool:
        results = [_cut_sketch(sketch) for sketch in _sketches(plain, field)]
        return any(results)
    return halve


def _cut_windows(plain: Plain) -> bool:
    """Keep the heavier keys of every hour's counts (the self-backtest's replay)."""
    results = [_cut_sketch(sketch) for _hour, sketch in plain["windows"]]
    return any(results)


def _recent(entries: list[Any], last_s: Callable[[Any], float]) -> list[Any]:
    """The more recently seen entries (ties: the later one), in their order."""
    ranked = sorted(range(len(entries)), key=lambda n: (-last_s(entries[n]), -n))
    kept = set(ranked[:_kept(len(entries))])
    return [entry for n, entry in enumerate(entries) if n in kept]


def _cut_templates(plain: Plain) -> bool:
    """Drop the least recently seen templates, and their series."""
    templates = plain["templates"]
    if not templates:
        return False
    plain["templates"] = _recent(templates, lambda entry: entry[1]["last_s"])
    plain["dropped_templates"] += len(templates) - len(plain["templates"])
    plain["dropped_requests"] += (sum(entry[1]["count"] for entry in templates)
                                  - sum(entry[1]["count"] for entry in plain["templates"]))
    kept = {pattern for pattern, _template in plain["templates"]}
    plain["series"] = [entry for entry in plain["series"] if entry[0] in kept]
    return True


def _cut_series(plain: Plain) -> bool:
    series = plain["series"]
    if not series:
        return False
    plain["series"] = _recent(series, lambda entry: entry[2]["last_s"])
    return True


def _cut_generalised(plain: Plain) -> bool:
    """Forget slug positions (a last resort: their paths split as literals again)."""
    generalised = plain["generaliser"]["generalised"]
    if not generalised:
        return False
    plain["generaliser"]["generalised"] = generalised[:_kept(len(generalised))]
    return True


_SHRINKERS: dict[str, Callable[[Plain], bool]] = {
    "requests": _cut_requests, "date_keys": _cut_all("date_keys"),
    "slot_values": _cut_all("values"), "templates": _cut_templates,
    "series": _cut_series, "generalised": _cut_generalised, "windows": _cut_windows,
}
