"""Same weekday last week: the summary keeps nine days of per-hour counts (bounded) and the
self-backtest has a `last_week` candidate, replayed where the hours reach.

The generated log has a weekly habit: each weekday morning asks for that weekday's own picks
(`/api/picks?name=mon-07`), beside all-week traffic on items. Yesterday's and the day before's
windows hold other weekdays' picks; a week ago holds Monday's.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from warmd.analysis.formats import Record
from warmd.analysis.summary import (
    FULL_WINDOW_HOURS,
    WEEK_WINDOW_CAPACITY,
    WINDOW_CAPACITY,
    WINDOW_HOURS,
    Summary,
    summarise,
)
from warmd.rules.engine import rank

AT = datetime(2026, 11, 30, 6, tzinfo=UTC)  # a Monday, 06:00 UTC
DAYS = 9
HORIZON_S = 6 * 3600
PICKS = 30
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _records(seed: int = 3) -> list[Record]:
    rng = random.Random(seed)
    start = AT - timedelta(days=DAYS)
    records = []
    for minute in range(DAYS * 24 * 60):
        moment = start + timedelta(minutes=minute)
        client = f"10.1.{rng.randrange(200)}.{rng.randrange(200)}"
        item = int(rng.paretovariate(1.2)) % 400
        records.append(Record(moment.timestamp(), "GET", f"/api/items/{item}", 200, client, "-"))
        if 6 <= moment.hour < 12 and minute % 2 == 0:
            name = f"{WEEKDAYS[moment.weekday()]}-{rng.randrange(PICKS):02d}"
            records.append(Record(moment.timestamp() + 1, "GET", f"/api/picks?name={name}",
                                  200, client, "-"))
    return records


@pytest.fixture(scope="module")
def summary() -> Summary:
    return summarise(_records())


def test_nine_days_of_hours_kept_the_oldest_cut(summary: Summary) -> None:
    """The hours reach nine days back; all but the latest three days keep at most the
    smaller capacity (memory stays bounded), the latest three their full one."""
    hours = sorted(summary.windows)
    assert len(hours) == WINDOW_HOURS
    latest = hours[-1]
    for hour in hours:
        expected = WINDOW_CAPACITY if hour > latest - FULL_WINDOW_HOURS else WEEK_WINDOW_CAPACITY
        assert summary.windows[hour].capacity == expected
        assert len(summary.windows[hour]) <= 2 * expected


def test_monday_picks_come_from_last_monday(summary: Summary) -> None:
    """The picks' template is won by `last_week` (on Sunday's window, last Sunday's picks
    were the ones asked) and Monday's picks are warmed first, before the weekend's."""
    predictions, shares = rank(summary, AT.timestamp(), HORIZON_S, 120)
    picks = next(share for share in shares if share.template == "/api/picks?name={}")
    assert picks.winner == "last_week" and picks.measured and picks.keys > 0
    warmed = [p.target for p in predictions if p.target.startswith("/api/picks")]
    assert len(warmed) >= PICKS
    assert all("name=mon-" in target for target in warmed[:PICKS])  # best first


def test_merged_halves_keep_the_weekly_replay() -> None:
    """Two hosts' summaries merged keep the same hours, capacities and decision."""
    records = _records(seed=4)
    whole = summarise(records)
    merged = summarise(records[0::2])
    merged.merge(summarise(records[1::2]))
    assert sorted(merged.windows) == sorted(whole.windows)
    assert {h: w.capacity for h, w in merged.windows.items()} == \
        {h: w.capacity for h, w in whole.windows.items()}
    shares = rank(merged, AT.timestamp(), HORIZON_S, 120)[1]
    assert next(s for s in shares if s.template == "/api/picks?name={}").winner == "last_week"
