"""A thin replay must not hand a date-relative template to whole-history frequency.

When the budget is small against the traffic (the demo: 34 keys for an hour of first
screens), a warmed key first asked half an hour into the window is unlikely to survive in
an LRU of the budget's size, so the replay measures almost nothing and every candidate's
curve is mostly its prior. Drawn towards the class's curve alike, `frequent` (whose keys
are last week's dates) tied with `class` and won the tie: warmd warmed deals of past days,
which no request of the window asks. A candidate's prior now leaves out the keys the class
model does not predict.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary, summarise
from warmd.rules.engine import rank

AT = datetime(2026, 12, 6, 14, tzinfo=UTC)
REGIONS = ("eu", "us", "asia", "latam")


def _records(days: int = 4, seed: int = 2) -> list[Record]:
    """Every minute a product view (Pareto popularity); every 3 minutes the deals of the
    day for a region and the report of the day before."""
    rng = random.Random(seed)
    start = AT - timedelta(days=days)
    records = []
    for minute in range(days * 24 * 60):
        moment = start + timedelta(minutes=minute)
        records.append(Record(moment.timestamp(), "GET",
                              f"/api/item/{int(rng.paretovariate(1.1)) % 80}", 200, "10.0.0.1", "-"))
        if minute % 3 == 0:
            day: date = moment.date()
            region = rng.choice(REGIONS)
            records.append(Record(moment.timestamp() + 1, "GET",
                                  f"/api/deals?date={day.isoformat()}&region={region}",
                                  200, "10.0.0.2", "-"))
            records.append(Record(moment.timestamp() + 2, "GET",
                                  f"/api/report?day={(day - timedelta(days=1)).isoformat()}",
                                  200, "10.0.0.3", "-"))
    return records


@pytest.fixture(scope="module")
def summary() -> Summary:
    return summarise(_records())


@pytest.mark.parametrize("budget", [4, 8])
def test_date_relative_templates_warm_the_window_s_dates(summary: Summary, budget: int) -> None:
    """The report of yesterday, deals of today, never an older day; the class wins the
    report's template (its key is the only one of it the window can ask). With the priors
    alike, at a budget of 4 the report's one key went to `frequent`: four days ago's."""
    predictions, shares = rank(summary, AT.timestamp(), 3600.0, budget)
    winners = {share.template: share.winner for share in shares}
    today, yesterday = AT.date().isoformat(), (AT.date() - timedelta(days=1)).isoformat()
    deals = [p.target for p in predictions if p.target.startswith("/api/deals?")]
    reports = [p.target for p in predictions if p.target.startswith("/api/report?")]
    assert all(f"date={today}" in target for target in deals), deals
    assert reports == [f"/api/report?day={yesterday}"], reports
    assert winners["/api/report?day={}"] == "class", shares
