"""Bounded, mergeable sketches: weighted Misra-Gries heavy hitters and a KMV distinct count.

Both keep a fixed amount of memory set by their capacity, whatever the stream length, and
`merge` of sketches built on two parts of a stream obeys the same error bound as a sketch
of the whole (Agarwal et al., "Mergeable summaries", 2012). Pure.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from warmd.errors import invariant


@dataclass(slots=True)  # millions are made and updated per log: slots are quicker
class Counted:
    """A heavy hitter's state: decayed weight, raw count, last time seen (epoch seconds)."""

    weight: float
    count: int
    last_s: float


class HeavyHitters:
    """Weighted Misra-Gries: every estimate is at most `error_bound()` below the true weight.

    Weights may be forward-decayed (Cormode et al.): the caller passes a weight that grows
    with time, so the sketch ranks by recency-weighted frequency and still merges linearly.
    Pruning happens when the table reaches twice the capacity, so an update is O(1) amortised.
    """

    def __init__(self, capacity: int) -> None:
        invariant(capacity > 0, "HeavyHitters capacity must be positive")
        self.capacity = capacity
        self.items: dict[object, Counted] = {}
        self.total_weight = 0.0
        self.total_count = 0
        self.subtracted = 0.0

    def add(self, key: object, weight: float = 1.0, count: int = 1, time_s: float = 0.0) -> None:
        """Add `count` occurrences of `key` carrying `weight` in total, last seen at `time_s`."""
        self.total_weight += weight
        self.total_count += count
        entry = self.items.get(key)
        if entry is None:
            self.items[key] = Counted(weight, count, time_s)
            if len(self.items) >= 2 * self.capacity:
                self._prune()
        else:
            entry.weight += weight
            entry.count += count
            if time_s > entry.last_s:
                entry.last_s = time_s

    def _prune(self) -> None:
        """Subtract the (capacity+1)-th largest weight from all and drop the non-positive."""
        if len(self.items) <= self.capacity:
            return
        weights = heapq.nlargest(self.capacity + 1, (e.weight for e in self.items.values()))
        floor = weights[-1]
        self.subtracted += floor
        kept = {}
        for key, entry in self.items.items():
            if entry.weight > floor:
                entry.weight -= floor
                kept[key] = entry
        self.items = kept

    def error_bound(self) -> float:
        """How far below its true weight any estimate may be."""
        return self.subtracted

    def scale(self, factor: float) -> None:
        """Multiply every weight (used to move a forward-decay landmark)."""
        for entry in self.items.values():
            entry.weight *= factor
        self.total_weight *= factor
        self.subtracted *= factor

    def merge(self, other: HeavyHitters, factor: float = 1.0) -> None:
        """Fold `other` (built on another part of the stream) into this sketch, its weights
        multiplied by `factor` (another forward-decay landmark). `other` is left as it was
        and shares no entry with this sketch."""
        if factor != 1.0:
            other = other.copy(factor)
        for key, entry in other.items.items():
            mine = self.items.get(key)
            if mine is None:
                self.items[key] = Counted(entry.weight, entry.count, entry.last_s)
            else:
                mine.weight += entry.weight
                mine.count += entry.count
                mine.last_s = max(mine.last_s, entry.last_s)
        self.total_weight += other.total_weight
        self.total_count += other.total_count
        self.subtracted += other.subtracted
        self._prune()

    def copy(self, factor: float = 1.0) -> HeavyHitters:
        """A sketch of its own with this one's entries, weights multiplied by `factor`."""
        twin = HeavyHitters(self.capacity)
        twin.items = {key: Counted(entry.weight, entry.count, entry.last_s)
                      for key, entry in self.items.items()}
        twin.total_weight, twin.total_count = self.total_weight, self.total_count
        twin.subtracted = self.subtracted
        if factor != 1.0:  # an integer weight stays an integer (the plain form keeps its type)
            twin.scale(factor)
        return twin

    def top(self, limit: int | None = None) -> list[tuple[object, Counted]]:
        """The heaviest keys first."""
        ranked = sorted(self.items.items(), key=lambda kv: kv[1].weight, reverse=True)
        return ranked if limit is None else ranked[:limit]

    def __iter__(self) -> Iterator[tuple[object, Counted]]:
        return iter(self.items.items())

    def __len__(self) -> int:
        return len(self.items)


def stable_hash(value: str) -> int:
    """A 32-bit hash that is the same on every host and run (unlike hash())."""
    return zlib.crc32(value.encode("utf-8", "surrogatepass"))


class DistinctCount:
    """K-minimum-values estimate of the number of distinct strings; mergeable, O(k) memory."""

    SPACE = float(2**32)

    def __init__(self, k: int = 256) -> None:
        invariant(k >= 8, "DistinctCount needs k >= 8")
        self.k = k
        self._minimums: set[int] = set()
        self._heap: list[int] = []  # negated, so the largest kept hash is on top
        self._threshold = 2**32

    def add(self, value: str) -> None:
        """Observe one value."""
        self.add_hash(stable_hash(value))

    def add_hash(self, hashed: int) -> None:
        """Observe a value by its stable hash."""
        if hashed >= self._threshold or hashed in self._minimums:
            return
        self._minimums.add(hashed)
        heapq.heappush(self._heap, -hashed)
        if len(self._minimums) > self.k:
            self._minimums.discard(-heapq.heappop(self._heap))
            self._threshold = -self._heap[0]

    def add_hashes(self, hashed_values: Iterable[int]) -> None:
        """Observe values by their stable hashes. The sketch keeps the k smallest distinct
        hashes whatever the order, so a batch can come as a set; the hashes at or above the
        current threshold (most of them, once the sketch is full) are dropped in one pass."""
        threshold = self._threshold
        for hashed in [value for value in hashed_values if value < threshold]:
            self.add_hash(hashed)

    def add_many(self, values: Iterable[str]) -> None:
        """Observe several values."""
        for value in values:
            self.add(value)

    def estimate(self) -> float:
        """The estimated number of distinct values (exact below k)."""
        if len(self._minimums) < self.k:
            return float(len(self._minimums))
        return (self.k - 1) * self.SPACE / (-self._heap[0] + 1)

    def copy(self) -> DistinctCount:
        """A sketch of its own holding the same hashes."""
        twin = DistinctCount(self.k)
        twin._minimums = set(self._minimums)
        twin._heap = list(self._heap)
        twin._threshold = self._threshold
        return twin

    def merge(self, other: DistinctCount) -> None:
        """Fold in a sketch of another part of the stream (same k)."""
        invariant(other.k == self.k, "DistinctCount.merge needs equal k")
        for hashed in other._minimums:
            self.add_hash(hashed)
