"""Summaries: bounded memory, profiles, exclusions, and merge == whole."""

from __future__ import annotations

import pytest

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary, SummaryConfig, summarise
from warmd.testing.loggen import LogSpec, generate_records

SPEC = LogSpec(seed=3, days=1.0, requests_per_day=6_000)


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return generate_records(SPEC)


def test_merge_of_two_halves_equals_the_whole(records: list[Record]) -> None:
    """Summaries of two halves merged give the whole's counts, profiles and heavy hitters."""
    whole = summarise(records)
    half = len(records) // 2
    merged = summarise(records[:half])
    merged.merge(summarise(records[half:]))
    assert merged.lines == whole.lines and merged.excluded == whole.excluded
    assert set(merged.templates) == set(whole.templates)
    for pattern, stats in whole.templates.items():
        other = merged.templates[pattern]
        assert (other.count, other.hours, other.weekdays) == (stats.count, stats.hours,
                                                              stats.weekdays)
        for name, slot in stats.slots.items():
            assert other.slots[name].count == slot.count
            assert other.slots[name].types == slot.types
    bound = merged.requests.error_bound() + whole.requests.error_bound()
    for key, entry in whole.requests.top(50):
        estimate = merged.requests.items[key].weight
        assert estimate == pytest.approx(entry.weight, rel=1e-9, abs=bound + 1e-6)


def test_memory_is_set_by_configuration_not_log_length(records: list[Record]) -> None:
    """Templates, series and heavy hitters stay within their configured caps."""
    config = SummaryConfig(requests_capacity=100, values_per_slot=8, max_templates=4,
                           max_series=3)
    summary = summarise(records, config)
    assert len(summary.templates) <= 4
    assert len(summary.series) <= 3
    assert len(summary.requests) < 200
    assert all(len(slot.values) < 16 for t in summary.templates.values()
               for slot in t.slots.values())
    assert summary.dropped_templates > 0


def test_non_get_errors_and_bots_are_excluded(records: list[Record]) -> None:
    """POSTs, non-2xx answers and bot user agents are counted but not summarised."""
    summary = summarise(records)
    assert summary.excluded["method"] > 0
    assert summary.excluded["status"] > 0
    assert summary.excluded["bot"] > 0
    counted = sum(t.count for t in summary.templates.values())
    assert counted == summary.lines - sum(summary.excluded.values())


def test_time_of_day_profile_follows_traffic() -> None:
    """The hour profile counts requests in the hour they were made (UTC)."""
    base = 1_700_000_000 - 1_700_000_000 % 86_400  # midnight UTC
    records = [Record(base + 13 * 3600 + n, "GET", "/a", 200, "c", "") for n in range(5)]
    records.append(Record(base + 2 * 3600, "GET", "/a", 200, "c", ""))
    stats = summarise(records).templates["/a"]
    assert stats.hours[13] == 5 and stats.hours[2] == 1 and sum(stats.hours) == 6


def test_forward_decay_favours_recent_requests() -> None:
    """A key asked often long ago weighs less than one asked a little just now."""
    day = 86_400
    old = [Record(n, "GET", "/old", 200, "c", "") for n in range(40)]
    new = [Record(10 * day + n, "GET", "/new", 200, "c", "") for n in range(5)]
    summary = Summary(SummaryConfig(half_life_s=day))
    summary.add_records(old + new)
    assert summary.requests.items["/new"].weight > summary.requests.items["/old"].weight
    assert summary.requests.items["/old"].count == 40
