"""Merging the replicated summary records: deterministic, and a bad record costs only itself."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary, summarise
from warmd.analysis.wire import encode_summary
from warmd.rules.engine import predict
from warmd.scheduler.merge import merged_summary
from warmd.statemachine.summaries import SummaryRecord
from warmd.testing.loggen import LogSpec, generate_records

SPEC = LogSpec(seed=11, days=1.5, requests_per_day=4_000)


@pytest.fixture(scope="module")
def parts() -> list[list[Record]]:
    records = generate_records(SPEC)
    third = len(records) // 3
    return [records[:third], records[third:2 * third], records[2 * third:]]


def _record(node_id: int, source: str, data: bytes, sequence: int = 1) -> SummaryRecord:
    return SummaryRecord(node_id=node_id, source=source, sequence=sequence, lines=0,
                         malformed=0, data=data, index=10 * node_id + sequence,
                         reported_ms=1_000)


def _records(parts: list[list[Record]]) -> list[SummaryRecord]:
    return [_record(node_id, "access.log", encode_summary(summarise(part)))
            for node_id, part in enumerate(parts, start=1)]


def test_merge_is_the_same_whatever_the_input_order(parts: list[list[Record]]) -> None:
    """Records handed over in any order merge to the same bytes, holding every part."""
    records = _records(parts)
    merged, problems = merged_summary(records)
    assert merged is not None and problems == ()
    expected = encode_summary(merged)
    for seed in range(3):
        shuffled = list(records)
        random.Random(seed).shuffle(shuffled)
        again, _ = merged_summary(iter(shuffled))
        assert again is not None and encode_summary(again) == expected
    assert merged.lines == sum(len(part) for part in parts)
    whole = summarise([record for part in parts for record in part])
    assert set(merged.templates) == set(whole.templates)
    assert {p.target for p in predict(merged, whole.last_s, 3600.0, 50)} & \
        {p.target for p in predict(whole, whole.last_s, 3600.0, 50)}


def test_merge_equals_merging_the_original_summaries(parts: list[list[Record]]) -> None:
    """The merge of the records equals the summaries merged by hand (newest as the base)."""
    merged, _ = merged_summary(_records(parts))
    originals = [summarise(part) for part in parts]
    by_hand = originals[2]  # the latest part has the newest decay landmark
    by_hand.merge(originals[0])
    by_hand.merge(originals[1])
    assert merged is not None and encode_summary(merged) == encode_summary(by_hand)


def test_a_corrupt_record_is_skipped_and_named(parts: list[list[Record]]) -> None:
    """A record that does not decode is left out, and the problem names its node and source."""
    records = _records(parts)
    damaged = bytearray(records[1].data)
    damaged[len(damaged) // 2] ^= 0xFF
    bad = [_record(2, "access.log", bytes(damaged), sequence=4),
           _record(7, "app.log", b"not a summary")]
    merged, problems = merged_summary([records[0], records[2], *bad])
    assert len(problems) == 2
    assert "node 2 source 'access.log' (sequence 4" in problems[0]
    assert "node 7 source 'app.log'" in problems[1] and "not an encoded summary" in problems[1]
    good, _ = merged_summary([records[0], records[2]])
    assert merged is not None and good is not None
    assert encode_summary(merged) == encode_summary(good)


def test_no_usable_record_gives_none() -> None:
    """No records, or only bad ones, give None (with the bad ones named)."""
    assert merged_summary([]) == (None, ())
    merged, problems = merged_summary([_record(3, "a.log", b"WSM\x01junk")])
    assert merged is None and len(problems) == 1 and "node 3" in problems[0]


def test_an_empty_summary_merges_with_others(parts: list[list[Record]]) -> None:
    """A source that has seen no line yet (no landmark) adds nothing and breaks nothing."""
    records = [*_records(parts[:1]), _record(9, "idle.log", encode_summary(Summary()))]
    merged, problems = merged_summary(records)
    assert problems == () and merged is not None
    assert merged.lines == len(parts[0])


def test_a_source_years_older_fades_instead_of_overflowing() -> None:
    """A stale source (its log years older) merges in either key order: the newest landmark
    is the base, so the old weights fade instead of overflowing."""
    spec = LogSpec(seed=4, days=0.2, requests_per_day=4_000)
    old = summarise(generate_records(LogSpec(seed=4, days=0.2, requests_per_day=4_000,
                                             start=datetime(2019, 1, 1, tzinfo=UTC))))
    new = summarise(generate_records(spec))
    for old_node, new_node in ((1, 2), (2, 1)):
        merged, problems = merged_summary([_record(old_node, "a.log", encode_summary(old)),
                                           _record(new_node, "a.log", encode_summary(new))])
        assert problems == () and merged is not None
        assert merged.landmark_s == new.landmark_s
        assert merged.lines == old.lines + new.lines
        assert predict(merged, new.last_s, 3600.0, 20)
