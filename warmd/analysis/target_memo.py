"""What a summary memoises per raw target: template, canonical key and typed slot values.

Bounded; keyed by the generaliser's slug positions (a new slug position clears it). Pure.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from datetime import date
from typing import NamedTuple, TypeVar

from warmd.analysis.sketch import stable_hash
from warmd.analysis.target import Decomposed, PathMemo, decompose, value_type

_T = TypeVar("_T")
TARGET_CACHE_SIZE = 25_000  # memoised decompositions per process (about 1 KB each)
INTERNED_SIZE = 4_096  # distinct kind and ordinal tuples shared between infos


class TargetInfo(NamedTuple):
    """What a summary memoises per raw target: template, canonical key, value types.

    A NamedTuple (immutable, typed) because one is made per never-seen target."""

    parts: Decomposed
    key: str
    pattern: str
    kinds: tuple[str, ...]
    ordinals: tuple[int | None, ...]
    # Stable hashes of the slot values (for the KMV sketches), as 32-bit unsigned integers:
    # a window holds tens of thousands of infos at once, and a tuple of ints takes 4-8 times
    # the memory of an array of them.
    value_hashes: array[int]


def date_ordinal(value: str) -> int | None:
    """The proleptic ordinal of a YYYY-MM-DD or YYYYMMDD value, or None."""
    digits = value.replace("-", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).toordinal()
    except ValueError:
        return None


class TargetMemo:
    """TargetInfo per raw target, with the path splits and `/path?name=` shapes behind them."""

    def __init__(self) -> None:
        self._targets: dict[str, TargetInfo] = {}
        self._paths: PathMemo = {}
        self._shapes: dict[tuple[str, str], TargetInfo] = {}
        self._frozen: tuple[int, frozenset[tuple[int, int, str]]] = (0, frozenset())
        self._interned: dict[tuple[object, ...], tuple[object, ...]] = {}

    def unknown(self, targets: Iterable[str]) -> list[str]:
        """The targets not memoised (their paths may be new to the generaliser), in the
        order given."""
        known = self._targets
        return [target for target in targets if target not in known]

    def forget_targets(self) -> None:
        """Drop the memoised targets (the generaliser found a new slug position)."""
        self._targets.clear()

    def info(self, target: str, generalised: set[tuple[int, int, str]]) -> TargetInfo:
        """The TargetInfo of `target` under the slug positions `generalised` (memoised)."""
        info = self._targets.get(target)
        if info is None:
            frozen = self._generalised(generalised)
            path, mark, query = target.partition("?")
            if mark and "=" in query and "&" not in query:
                info = self._one_parameter_info(path, query, frozen)
            else:
                info = self._new_info(decompose(target, frozen, self._paths))
            if len(self._targets) > TARGET_CACHE_SIZE:
                self._targets.clear()
            self._targets[target] = info
        return info

    def _generalised(self, generalised: set[tuple[int, int, str]]
                     ) -> frozenset[tuple[int, int, str]]:
        """The slug positions as a frozenset, rebuilt only when the set grew."""
        if self._frozen[0] != len(generalised):
            self._frozen = (len(generalised), frozenset(generalised))
            self._paths.clear()  # path splits depend on the slug positions
            self._shapes.clear()
        return self._frozen[1]

    def _intern(self, values: tuple[_T, ...]) -> tuple[_T, ...]:
        """One shared tuple per distinct tuple of kinds or ordinals (a template's targets
        mostly have the same ones: all None for ordinals)."""
        if len(self._interned) >= INTERNED_SIZE:
            self._interned.clear()
        return self._interned.setdefault(values, values)  # type: ignore[return-value]

    def _new_info(self, parts: Decomposed) -> TargetInfo:
        kinds = self._intern(tuple(map(value_type, parts.values)))
        ordinals = self._intern(tuple(date_ordinal(v) if k == "date" else None
                                      for v, k in zip(parts.values, kinds, strict=True)))
        return TargetInfo(parts, parts.template.compose(parts.values), parts.template.pattern,
                          kinds, ordinals, array("I", map(stable_hash, parts.values)))

    def _one_parameter_info(self, path: str, query: str,
                            generalised: frozenset[tuple[int, int, str]]) -> TargetInfo:
        """`/path?name=value`, the commonest shape of a never-seen target (cache-busters,
        advancing indexes): the info of `/path?name=` is memoised per (path, name), so only
        the value is typed and hashed. Equal to the full decomposition, which splits a
        single `name=value` pair the same way."""
        name, _, value = query.partition("=")
        shape = self._shapes.get((path, name))
        if shape is None:
            shape = self._new_info(decompose(f"{path}?{name}=", generalised, self._paths))
            if len(self._shapes) >= TARGET_CACHE_SIZE:
                self._shapes.clear()
            self._shapes[(path, name)] = shape
        kind = value_type(value)
        ordinal = date_ordinal(value) if kind == "date" else None
        hashes = shape.value_hashes[:-1]
        hashes.append(stable_hash(value))
        return TargetInfo(Decomposed(shape.parts.template, (*shape.parts.values[:-1], value)),
                          shape.key + value, shape.pattern,
                          self._intern((*shape.kinds[:-1], kind)),
                          self._intern((*shape.ordinals[:-1], ordinal)), hashes)
