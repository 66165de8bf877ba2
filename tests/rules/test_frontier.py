"""A sequence is told by its advancing frontier, and extended from its leading value.

Each test builds a small log of its own: articles published every half hour whose readers
also open older ones (only about half the steps increase), a hot id with a fixed catalogue,
and an hourly stats series whose last request is a late one for the previous hour.
"""

from __future__ import annotations

import random

from warmd.analysis.formats import Record
from warmd.analysis.summary import Summary, summarise
from warmd.rules.engine import diagnose_all, predict
from warmd.rules.frontier import frontiers_of
from warmd.rules.tree import ParamClass

START_S = 1_790_000_000.0 - 1_790_000_000.0 % 86_400  # a UTC midnight
HOURS = 36
END_S = START_S + HOURS * 3600


def _record(time_s: float, target: str, client: int) -> Record:
    return Record(time_s, "GET", target, 200, f"10.0.{client // 250}.{client % 250}", "curl")


def _articles_and_items(seed: int) -> list[Record]:
    """Articles: a new one every 30 min, each reader opens the newest or one of the 12 before
    it; items: 300 ids drawn at random all day."""
    rng = random.Random(seed)
    records = []
    for second in range(0, HOURS * 3600, 20):
        moment_s = START_S + second
        newest = 1000 + second // 1800
        back = min(int(rng.expovariate(0.6)), 12)
        records.append(_record(moment_s, f"/api/article/{newest - back}", rng.randrange(400)))
        records.append(_record(moment_s + 5, f"/api/items/{rng.randrange(1, 301)}",
                               rng.randrange(400)))
    return records


def _summary(records: list[Record]) -> Summary:
    return summarise(sorted(records, key=lambda r: r.time_s))


def test_readers_of_old_articles_do_not_hide_a_sequence() -> None:
    """Only about half the steps between article ids increase (below the 0.8 step share),
    yet the largest id grows every hour: SEQUENCE, and the evidence names the frontier."""
    summary = _summary(_articles_and_items(seed=3))
    slot = summary.templates["/api/article/{int}"].slots["path[3]"]
    assert slot.increases / (slot.increases + slot.decreases) < 0.8  # the old test misses
    article = diagnose_all(summary)["/api/article/{int}"].slots["path[3]"]
    assert article.param_class is ParamClass.SEQUENCE
    decisive = article.evidence[-1]
    assert decisive.test == "frontier advances with time" and decisive.held
    assert decisive.value >= 0.9


def test_a_hot_id_frontier_stays_put() -> None:
    """Ids drawn from a fixed catalogue reach their largest value early: not a sequence, and
    the frontier test is in the evidence, missed."""
    summary = _summary(_articles_and_items(seed=4))
    frontier = frontiers_of(summary).of("/api/items/{int}")["path[3]"]
    assert frontier.hours == HOURS - 1 and frontier.share < 0.25
    item = diagnose_all(summary)["/api/items/{int}"].slots["path[3]"]
    assert item.param_class is ParamClass.HOT_ID
    missed = [e for e in item.evidence if e.test.startswith("frontier")]
    assert missed and not missed[-1].held


def test_the_frontier_merges_across_log_parts() -> None:
    """Two hosts' summaries merged give the frontier of the whole log (hourly counts merge)."""
    records = _articles_and_items(seed=5)
    whole = frontiers_of(_summary(records)).of("/api/article/{int}")["path[3]"]
    merged = _summary(records[0::2])
    merged.merge(_summary(records[1::2]))
    assert frontiers_of(merged).of("/api/article/{int}")["path[3]"] == whole


def _hourly_stats(late_last: bool) -> list[Record]:
    """Stats for the current hour, asked every minute; 1 request in 5 is late and asks for
    the previous hour. With `late_last` the log's last request is such a late one."""
    rng = random.Random(7)
    records = []
    for minute in range(HOURS * 60):
        moment_s = START_S + minute * 60
        hour = int(moment_s // 3600) - (1 if rng.random() < 0.2 else 0)
        records.append(_record(moment_s, f"/api/stats/hourly?hour={hour}", rng.randrange(50)))
    if late_last:
        previous = int(END_S // 3600) - 2
        records.append(_record(END_S - 1, f"/api/stats/hourly?hour={previous}", 1))
    return records


def test_series_extended_from_its_leading_value() -> None:
    """A late request for the previous hour is the last one seen: the extension still
    starts at the current hour, as it does without the late request."""
    at_s = END_S
    current = int(END_S // 3600) - 1

    def sequence_hours(records: list[Record]) -> list[int]:
        summary = _summary(records)
        key = ("/api/stats/hourly?hour={}", ())
        assert summary.series[key].values == (str(current - 1 if records is late else
                                                  current),)
        found = predict(summary, at_s, 3 * 3600, 10, self_backtest=False)
        return sorted(int(p.target.rpartition("=")[2]) for p in found
                      if p.source.startswith("sequence"))

    late = _hourly_stats(late_last=True)
    on_time = _hourly_stats(late_last=False)
    assert sequence_hours(late) == sequence_hours(on_time)
    assert min(sequence_hours(late)) == current
    assert current - 1 not in sequence_hours(late)
