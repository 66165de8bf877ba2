"""Prediction: unseen dates and indexes, budgets, explanations, and backtests on synthetic logs."""

from __future__ import annotations

import pytest

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary, summarise
from warmd.analysis.target import decompose
from warmd.cli.analyze import parse_instant_s
from warmd.rules.backtest import backtest, simulate_lru
from warmd.rules.engine import day_of_week_factor, explain, predict
from warmd.testing.loggen import LogSpec, generate_records

SPLIT_S = parse_instant_s("2024-03-05T00:00:00")


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return generate_records(LogSpec(seed=11, days=2.0, requests_per_day=8_000))


@pytest.fixture(scope="module")
def history(records: list[Record]) -> list[Record]:
    return [r for r in records if r.time_s < SPLIT_S]


@pytest.fixture(scope="module")
def summary(history: list[Record]) -> Summary:
    return summarise(history)


def test_predicts_tomorrows_report_never_seen(summary: Summary, history: list[Record]) -> None:
    """Reports dated the day after the target day are predicted though never requested."""
    predicted = [p.target for p in predict(summary, SPLIT_S, 86_400, 500)]
    tomorrow = [t for t in predicted if "date=2024-03-06" in t]
    assert len(tomorrow) >= 10
    assert not any("2024-03-06" in r.target for r in history)


def test_predicts_next_indexes_beyond_the_maximum(summary: Summary,
                                                  history: list[Record]) -> None:
    """An advancing index is extended past the largest value seen, in order."""
    seen = max(int(r.target.split("=")[1]) for r in history if r.target.startswith("/api/hourly"))
    predicted = [int(p.target.split("=")[1]) for p in predict(summary, SPLIT_S, 6 * 3600, 500)
                 if p.target.startswith("/api/hourly")]
    assert seen + 1 in predicted and seen + 5 in predicted
    assert max(predicted) <= seen + 7
    series = [p for p in predict(summary, SPLIT_S, 3600, 500) if "/api/series/sensor03" in p.target]
    assert series and all(p.source.startswith("sequence") for p in series)


def test_budget_order_and_exclusions(summary: Summary) -> None:
    """At most `budget` requests, best first; secrets never, cache-busters dropped."""
    predictions = predict(summary, SPLIT_S, 6 * 3600, 150)
    assert len(predictions) == 150
    hits = [p.score for p in predictions]
    assert hits == sorted(hits, reverse=True)
    assert not any(p.target.startswith("/account/") for p in predictions)
    assert "/static/app.js" in [p.target for p in predictions]
    assert predict(summary, SPLIT_S, 3600, 0) == []
    with pytest.raises(ValueError):
        predict(summary, SPLIT_S, 0, 10)


def test_time_of_day_moves_the_ranking(summary: Summary) -> None:
    """The daily report ranks higher in its busy hours than in its quiet ones."""
    def rank(at_s: float) -> int:
        targets = [p.target for p in predict(summary, at_s, 3600, 2000)]
        return next(i for i, t in enumerate(targets) if t.startswith("/reports/daily"))

    busy, quiet = SPLIT_S + 6 * 3600, SPLIT_S + 18 * 3600
    assert rank(busy) < rank(quiet)


def test_explain_says_why(summary: Summary) -> None:
    """An explanation names the template, each slot's class and whether it is warmed."""
    report = explain(summary, "GET /reports/daily?region=region03&date=2024-03-06")
    assert report.template == "/reports/daily?date={}&region={}"
    assert report.would_warm
    assert any("date: date_relative" in reason for reason in report.reasons)
    secret = explain(summary, "GET /account/settings?token=abc")
    assert not secret.would_warm
    unknown = explain(summary, "/never/seen")
    assert not unknown.known_template and not unknown.would_warm
    assert not explain(summary, "POST /search?page=1&q=hats").would_warm


def test_lru_simulation_counts_hits_and_waste() -> None:
    """The LRU replay counts hits per window and the warmed keys never read."""
    result = simulate_lru(2, ["a", "z"], ["a", "b", "a", "c", "b"], "x")
    assert result.hit_rate_all == pytest.approx(2 / 5)
    assert result.hit_rate_first_10pct == 1.0
    assert result.waste == 0.5


def test_warmd_beats_every_naive_strategy_early(summary: Summary, history: list[Record],
                                                records: list[Record]) -> None:
    """On a synthetic day, warmd beats cold, most-frequent and most-recent in the first
    10 % by a clear margin and captures at least two thirds of the oracle's gain."""
    future = [r for r in records if r.time_s >= SPLIT_S]
    distinct = {decompose(r.target).template.compose(decompose(r.target).values)
                for r in future}
    report = backtest(summary, history, future, capacity=len(distinct) // 5)
    warmd = report.result("warmd").hit_rate_first_10pct
    for naive in ("cold", "most_frequent", "most_recent"):
        assert warmd >= report.result(naive).hit_rate_first_10pct + 0.01, naive
    assert report.warmd_share_of_oracle_gain_first_10pct >= 2 / 3


def test_a_search_seen_on_page_one_brings_its_next_pages() -> None:
    """Pages never requested for a query are predicted from the template's page popularity."""
    base = parse_instant_s("2024-03-04T00:00:00")
    records = [Record(base + n * 60, "GET", f"/search?q=q{n % 5}&page={1 + (n % 7 == 0)}",
                      200, f"c{n}", "") for n in range(300)]
    records += [Record(base + 20_000 + n, "GET", "/search?q=fresh&page=1", 200, "x", "")
                for n in range(20)]
    predicted = {p.target: p for p in predict(summarise(records), base + 21_000, 3600, 50)}
    assert "/search?page=2&q=fresh" in predicted
    assert predicted["/search?page=2&q=fresh"].source.startswith("page")
    assert (predicted["/search?page=2&q=fresh"].expected_hits
            < predicted["/search?page=1&q=fresh"].expected_hits)


def _weekly_records(weeks: int) -> list[Record]:
    """`weeks` weeks from a Monday: /weekday-N asked on working days, /weekend-N on weekends
    (fewer requests in all, so without a weekly profile the weekday pages would rank first)."""
    monday_s = parse_instant_s("2024-03-04T00:00:00")
    records = []
    for day in range(7 * weeks):
        weekend = day % 7 >= 5
        for number in range(3 if weekend else 5):
            path = f"/{'weekend' if weekend else 'weekday'}-{'abcde'[number]}"
            for request in range(4):
                when = monday_s + day * 86_400 + 3600 * (8 + number) + request
                records.append(Record(time_s=when, method="GET", target=path, status=200,
                                      client="10.0.0.1", agent="curl/8"))
    return records


def test_a_saturday_window_ranks_the_weekend_pages_first() -> None:
    """With four weeks of history, a Saturday's prediction puts the pages asked on weekends
    ahead of those asked on working days; a Wednesday's does the opposite."""
    summary = summarise(_weekly_records(4))
    saturday_s = parse_instant_s("2024-04-06T00:00:00")
    wednesday_s = parse_instant_s("2024-04-03T00:00:00")
    on_saturday = [p.target for p in predict(summary, saturday_s, 86_400, 3)]
    on_wednesday = [p.target for p in predict(summary, wednesday_s, 86_400, 5)]
    assert all(target.startswith("/weekend-") for target in on_saturday)
    assert all(target.startswith("/weekday-") for target in on_wednesday)


def test_a_short_history_has_no_weekly_profile() -> None:
    """Under two weeks of history the weekday counts are not trusted (factor 1 for every
    template); with three weeks, a Saturday lifts the weekend page and sinks the weekday one."""
    saturday_s = parse_instant_s("2024-03-30T00:00:00")
    for weeks, expect_weekend_above_one in ((1, None), (3, True)):
        summary = summarise(_weekly_records(weeks))
        factors = {pattern: day_of_week_factor(stats, summary.first_s, summary.last_s,
                                               saturday_s, 86_400)
                   for pattern, stats in summary.templates.items()}
        if expect_weekend_above_one is None:
            assert set(factors.values()) == {1.0}
        else:
            assert factors["/weekend-a"] > 1.0 > factors["/weekday-a"]
