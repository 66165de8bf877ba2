"""Self-backtest per template (warmd/rules/ranking.py and engine.rank) on small generated logs."""

from __future__ import annotations

import pytest

from warmd.analysis.formats import COMBINED, LineParser
from warmd.analysis.summary import Summary, summarise
from warmd.cli.analyze import parse_instant_s
from warmd.rules import ranking
from warmd.rules.engine import predict, rank
from warmd.testing.apilog import ApiLogSpec, generate_api_lines

SPEC = ApiLogSpec(seed=3, days=3, requests_per_day=5_000, products=800, users=1_500)
AT_S = parse_instant_s("2026-10-14T00:00:00+08:00")
HORIZON_S = 6 * 3600


@pytest.fixture(scope="module")
def summary() -> Summary:
    records = LineParser(COMBINED).parse_many(generate_api_lines(SPEC))
    return summarise([r for r in records if r.time_s < AT_S])


def test_concave_hull_keeps_the_upper_vertices() -> None:
    """A dip is bridged: the hull of 0,1,1,3 goes straight from 0 to 3."""
    assert ranking.concave_hull([0, 1, 1, 3]) == [(0, 0), (3, 3)]
    assert ranking.concave_hull([0, 3, 4, 4]) == [(0, 0), (1, 3), (2, 4), (3, 4)]


def test_split_goes_to_the_steepest_gain_per_key() -> None:
    """Budget goes segment by segment, best gain per key first; flat tails get nothing."""
    envelopes = {"hot": [0, 1, 2, 2, 2], "warm": [0, 0.5, 1.0, 1.5], "cold": [0, 0, 0]}
    assert ranking.split_budget(envelopes, 3) == {"hot": 2, "warm": 1}
    assert ranking.split_budget(envelopes, 10) == {"hot": 2, "warm": 3}


def test_split_is_never_below_one_candidate_on_the_replay() -> None:
    """On concave curves, the split's replayed total at a budget is at least that of any
    single candidate's own allocation of the same budget."""
    curves = {"a": {"x": [0, 3, 5, 6, 6], "y": [0, 1, 2, 3, 3]},
              "b": {"x": [0, 2, 4, 6, 7], "y": [0, 2, 3, 3.5, 4]}}
    envelopes = {t: ranking.envelope(c) for t, c in curves.items()}
    for budget in range(1, 8):
        split = ranking.split_budget(envelopes, budget)
        total = sum(envelopes[t][split.get(t, 0)] for t in envelopes)
        for name in ("x", "y"):
            best_single = max(curves["a"][name][n] + curves["b"][name][budget - n]
                              for n in range(max(0, budget - 4), min(budget, 4) + 1))
            assert total >= best_single - 1e-9, (budget, name)


def test_rank_reports_a_winner_per_template(summary: Summary) -> None:
    """Every warmed template names its winning candidate, its share and hits per key; the
    shares fit the budget."""
    predictions, shares = rank(summary, AT_S, HORIZON_S, 800)
    assert len(predictions) == 800 and shares
    assert sum(share.keys for share in shares) <= 800
    by_template = {share.template: share for share in shares}
    assert all(share.winner in ranking.CANDIDATES for share in shares)
    reports = by_template["/api/v1/reports/daily?date={}&metric={}&region={}"]
    assert reports.winner == "class" and reports.measured and reports.hits_per_key > 0
    # yesterday's dates are never asked again: the naive candidates hold only the prior
    assert reports.curves["class"] > 1.5 * reports.curves["last_day"]
    # templates with a handful of keys asked (home, config) are measured as one pool
    pool = by_template[ranking.POOL]
    assert pool.measured and "/api/v1/home?lang=en" in {p.target for p in predictions}


def test_no_same_window_yesterday_falls_back_to_the_classes(summary: Summary) -> None:
    """A day of history cannot replay yesterday: the class ranking alone, no shares."""
    records = LineParser(COMBINED).parse_many(generate_api_lines(
        ApiLogSpec(seed=3, days=1, requests_per_day=3_000, products=500, users=800)))
    young = summarise(records)
    at_s = young.last_s
    predictions, shares = rank(young, at_s, HORIZON_S, 100)
    assert shares == []
    assert predictions == predict(young, at_s, HORIZON_S, 100, self_backtest=False)


def test_rules_rank_by_class(summary: Summary) -> None:
    """Without the self-backtest (what rule paths ask for) the ranking is the class's."""
    plain = predict(summary, AT_S, HORIZON_S, 200, self_backtest=False)
    assert all(not p.source.startswith("backtest") for p in plain)
