"""Sketches stay bounded and merge within their error bounds."""

from __future__ import annotations

import random
from collections import Counter

from warmd.analysis.sketch import DistinctCount, HeavyHitters


def _zipf_stream(seed: int, length: int) -> list[str]:
    rng = random.Random(seed)
    return [f"k{int(rng.paretovariate(1.2))}" for _ in range(length)]


def test_heavy_hitters_are_bounded_and_within_error() -> None:
    """Memory stays at the capacity and every estimate is within the error bound."""
    stream = _zipf_stream(1, 20_000)
    sketch = HeavyHitters(50)
    for key in stream:
        sketch.add(key)
    truth = Counter(stream)
    assert len(sketch) <= 100
    assert sketch.error_bound() <= len(stream) / 51
    for key, entry in sketch:
        assert truth[key] - sketch.error_bound() <= entry.weight <= truth[key]
    top_true = {k for k, _ in truth.most_common(5)}
    assert top_true <= {k for k, _ in sketch.top(10)}


def test_merge_of_two_halves_matches_the_whole() -> None:
    """Sketches of two halves, merged, estimate every key within the merged error bound."""
    stream = _zipf_stream(2, 20_000)
    whole, first, second = HeavyHitters(40), HeavyHitters(40), HeavyHitters(40)
    for position, key in enumerate(stream):
        whole.add(key)
        (first if position < len(stream) // 2 else second).add(key)
    first.merge(second)
    truth = Counter(stream)
    assert len(first) <= 40
    assert first.error_bound() <= len(stream) / 41
    for key, count in truth.most_common(10):
        estimate = first.items[key].weight if key in first.items else 0.0
        assert count - first.error_bound() <= estimate <= count
        assert abs(estimate - whole.items[key].weight) <= first.error_bound() + whole.error_bound()


def test_distinct_count_is_close_and_mergeable() -> None:
    """KMV estimates 50k distinct values within 20 %, and merging halves changes nothing."""
    values = [f"v{n}" for n in range(50_000)]
    whole, first, second = DistinctCount(256), DistinctCount(256), DistinctCount(256)
    whole.add_many(values)
    first.add_many(values[:25_000])
    second.add_many(values[20_000:])
    first.merge(second)
    assert abs(whole.estimate() - 50_000) < 10_000
    assert first.estimate() == whole.estimate()
    small = DistinctCount(256)
    small.add_many(["a", "b", "a"])
    assert small.estimate() == 2
