"""Self-backtest per template (warmd/rules/ranking.py and engine.rank) on small generated logs."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from warmd.analysis.formats import COMBINED, LineParser, Record
from warmd.analysis.summary import Summary, summarise
from warmd.cli.analyze import parse_instant_s
from warmd.rules import ranking
from warmd.rules.backtest import backtest
from warmd.rules.engine import diagnose_all, predict, rank
from warmd.rules.tree import ParamClass
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


def test_a_recurring_template_warms_only_a_measured_candidate(summary: Summary) -> None:
    """A recurring template's class order (decayed weight times its hour profile) is never
    replayed, so it never wins: each measured recurring template warms a naive candidate's
    list, the one its replay measured (the date-relative reports still win as `class`)."""
    predictions, shares = rank(summary, AT_S, HORIZON_S, 800)
    diagnoses = diagnose_all(summary)
    recurring = [share for share in shares if share.measured and share.template in diagnoses
                 and not diagnoses[share.template].classes()
                 & {ParamClass.DATE_RELATIVE, ParamClass.SEQUENCE}]
    assert recurring
    for share in recurring:
        assert "class" not in share.curves and share.winner != "class", share
    biggest = max(recurring, key=lambda share: share.keys)
    sources = {p.source for p in predictions if p.template == biggest.template}
    assert sources == {f"backtest {biggest.winner}"}


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


BLOG_START_S = 1_790_000_000 // 86_400 * 86_400
# A page's assets in the order the page asks them; their names sort the other way.
ASSETS = ("/theme/zz-style.css", "/theme/mm-fonts.css", "/js/kk-jquery.js", "/js/bb-app.js")


def _blog(seed: int, days: int = 5) -> list[Record]:
    """A small blog: a visit every ~15 minutes reads a post (Pareto popularity) and most
    visits load the page's assets, in document order, at the same second."""
    rng = random.Random(seed)
    records = []
    moment_s = float(BLOG_START_S)
    while moment_s < BLOG_START_S + days * 86_400:
        moment_s += rng.expovariate(1 / 900)
        client = f"10.0.{rng.randrange(250)}.{rng.randrange(250)}"
        post = f"/blog/post-{int(rng.paretovariate(0.8)) % 60}/"
        records.append(Record(moment_s, "GET", post, 200, client, "-"))
        if rng.random() < 0.7:
            records += [Record(moment_s, "GET", asset, 200, client, "-") for asset in ASSETS]
    return records


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_equally_frequent_keys_keep_the_order_first_seen(seed: int) -> None:
    """netnea's WordPress days, made small: the assets of every page are equally frequent,
    and which of them an LRU evicts first decides hits. Ties keep the order the summary
    first saw the keys in (a page's document order), as the naive most-frequent list does,
    so warmd never loses to it on ties; ordered by name, the LRU evicted the asset asked
    first and every later one missed in turn (0-2 hits where most-frequent had 3-5)."""
    records = _blog(seed)
    split_s = BLOG_START_S + 4 * 86_400
    history = [r for r in records if r.time_s < split_s]
    future = [r for r in records if r.time_s >= split_s]
    capacity = len({r.target for r in future}) // 5
    counts = Counter(r.target for r in history).most_common(capacity)
    assert len({count for _, count in counts[:len(ASSETS)]}) == 1  # the assets tie
    report = backtest(summarise(history), history, future, capacity)
    warmd = report.result("warmd").hit_rate_first_10pct
    assert warmd >= report.result("most_frequent").hit_rate_first_10pct > 0
    predicted = predict(summarise(history), split_s, 86_400, capacity)
    ordered = [p.target for p in predicted if p.target in ASSETS]
    assert len(ordered) >= 2 and ordered == [asset for asset in ASSETS if asset in ordered]
