"""Per-batch aggregation in C-level passes gives what the plain line-by-line loops give."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest

from warmd.analysis.batch import cacheable_mask, per_hour_counts, verdicts


def _times(rng: random.Random, shape: str, count: int) -> list[float]:
    start = 1_709_510_400.0 + rng.randrange(3600)
    span = 900 if shape == "one_hour" else 4 * 3600
    times = sorted(start + rng.random() * span for _ in range(count))
    if shape == "one_hour":
        times = [min(t, start - start % 3600 + 3599) for t in times]
    elif shape == "jitter":  # neighbours swapped, never across an hour boundary
        for number in range(0, count - 1, 7):
            a, b = times[number], times[number + 1]
            if int(a // 3600) == int(b // 3600):
                times[number], times[number + 1] = b, a
    elif shape == "shuffled":
        rng.shuffle(times)
    return times


@pytest.mark.parametrize("shape", ["one_hour", "ordered", "jitter", "shuffled"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_per_hour_counts_equal_counting_target_hour_pairs(shape: str, seed: int) -> None:
    """Runs per hour hold the (target, hour) counts in first-seen order, for any time order."""
    rng = random.Random(seed)
    times = _times(rng, shape, 3_000)
    targets = [f"/t/{int(rng.paretovariate(1.2))}" for _ in times]
    expected = list(Counter(zip(targets, [int(t // 3600) for t in times], strict=True)).items())
    runs = per_hour_counts(targets, times)
    got = [((target, hour), count) for hour, counts in runs for target, count in counts.items()]
    assert got == expected
    assert all(a[0] != b[0] for a, b in pairwise(runs))


def _reference(methods: list[str], statuses: list[int], bots: list[bool]
               ) -> tuple[list[bool], Counter[str]]:
    keep, excluded = [], Counter()
    for method, status, bot in zip(methods, statuses, bots, strict=True):
        reason = ("method" if method != "GET" else "status" if not 200 <= status < 300
                  else "bot" if bot else None)
        keep.append(reason is None)
        if reason:
            excluded[reason] += 1
    return keep, excluded


@pytest.mark.parametrize("seed", range(6))
def test_cacheable_mask_matches_the_line_by_line_verdicts(seed: int) -> None:
    """The mask and the exclusion counts (and their first-seen order) equal a plain loop's."""
    rng = random.Random(seed)
    count = rng.choice([1, 5, 500])
    methods = rng.choices(["GET", "GET", "GET", "POST", "HEAD"], k=count)
    statuses = rng.choices([200, 200, 304, 404, 500], k=count)
    bots = [rng.random() < 0.2 for _ in range(count)]
    keep, exclusions = cacheable_mask(verdicts(methods, lambda m: m == "GET"),
                                      verdicts(statuses, lambda s: 200 <= s < 300),
                                      verdicts(bots, lambda bot: not bot))
    want_keep, want_excluded = _reference(methods, statuses, bots)
    assert (list(keep) if keep is not None else [1] * count) == list(map(int, want_keep))
    assert exclusions == list(want_excluded.items())


def test_an_all_cacheable_batch_needs_no_mask() -> None:
    """When every line passes, no mask is built and nothing is excluded."""
    ones = verdicts(["GET"] * 4, lambda m: m == "GET")
    assert cacheable_mask(ones, ones, ones) == (None, [])
