"""The traffic generator: seeded, realistic in shape, and a live replay that reaches the shop."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from datetime import UTC, datetime

import pytest

from warmd.analysis.formats import COMBINED, LineParser
from warmd.demo.runner import ShopProcess
from warmd.demo.traffic import (
    ShopTraffic,
    TrafficSpec,
    history_lines,
    history_sessions,
    replay,
    write_history,
    write_split_history,
)

END_S = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
SMALL = TrafficSpec(seed=3, days=2.0, sessions_per_day=300)


def test_same_seed_gives_the_same_history() -> None:
    """One seed fixes every line; another seed gives other lines."""
    first = list(history_lines(SMALL, END_S))
    assert first == list(history_lines(SMALL, END_S))
    other = list(history_lines(TrafficSpec(seed=4, days=2.0, sessions_per_day=300), END_S))
    assert first != other


def test_history_parses_and_stays_in_its_window() -> None:
    """Every line parses, and timestamps fall in the `days` before the end."""
    records = LineParser(COMBINED).parse_many(history_lines(SMALL, END_S))
    assert len(records) > 2 * 300 * 6  # each session makes its first screen at least
    assert all(END_S - 2 * 86_400 <= record.time_s < END_S for record in records)


def test_dates_are_relative_to_the_request_day() -> None:
    """Deals ask for the request's own day and the report for the day before."""
    parser = LineParser(COMBINED)
    for record in parser.parse_many(history_lines(SMALL, END_S)):
        day = datetime.fromtimestamp(record.time_s, UTC).date()
        if record.target.startswith("/api/deals?"):
            assert f"date={day.isoformat()}" in record.target
        if record.target.startswith("/api/report/daily?"):
            assert day.toordinal() - 1 == datetime.fromisoformat(
                record.target.split("day=")[1]).date().toordinal()


def test_traffic_follows_time_of_day_and_hot_products() -> None:
    """Afternoons are busier than nights, and a few products get most product views."""
    records = LineParser(COMBINED).parse_many(history_lines(
        TrafficSpec(seed=5, days=3.0, sessions_per_day=600), END_S))
    hours = Counter(datetime.fromtimestamp(r.time_s, UTC).hour for r in records)
    assert sum(hours[h] for h in range(13, 17)) > 2 * sum(hours[h] for h in range(1, 5))
    products = Counter(r.target for r in records if r.target.startswith("/api/product/"))
    top_share = sum(count for _, count in products.most_common(30)) / sum(products.values())
    assert top_share > 0.4


def test_banners_carry_distinct_cache_busters() -> None:
    """Every banner call has its own ?v=, as a real cache-buster does."""
    traffic = ShopTraffic(SMALL)
    busters = [traffic.first_screen(END_S)[-1] for _ in range(200)]
    assert all(b.startswith("/api/banner?v=") for b in busters)
    assert len(set(busters)) == 200


def test_popularity_shifts_over_the_day_and_new_keys_appear() -> None:
    """Each quarter of the day has hot products of its own, and the next hour asks for
    articles and hourly stats that no history before it holds."""
    traffic = ShopTraffic(SMALL)
    night, afternoon = END_S - 12 * 3600, END_S + 3 * 3600  # 00:00 and 15:00 UTC
    top_night = Counter(traffic.product(night) for _ in range(3000)).most_common(10)
    top_afternoon = Counter(traffic.product(afternoon) for _ in range(3000)).most_common(10)
    assert len({p for p, _ in top_night} & {p for p, _ in top_afternoon}) < 8
    seen = {target for line in history_lines(SMALL, END_S)
            for target in [line.split('"GET ')[1].split(" ")[0]]}
    later = {call for _ in range(100) for call in traffic.first_screen(END_S + 3000)}
    assert any(call.startswith("/api/article/") and call not in seen for call in later)
    assert any(call.startswith("/api/stats/hourly") and call not in seen for call in later)


def test_write_history_appends_and_counts(tmp_path) -> None:
    """write_history appends to the file and returns the number of lines written."""
    path = tmp_path / "access.log"
    count = write_history(path, SMALL, END_S)
    assert count == len(path.read_text().splitlines()) > 0


def test_bad_spec_is_rejected() -> None:
    """Nonsense traffic shapes raise a ValueError naming the fields."""
    with pytest.raises(ValueError, match="days"):
        TrafficSpec(days=0).validate()


def test_live_replay_sends_real_requests(shop: ShopProcess) -> None:
    """Replay sends every planned request and the shop counts and logs them."""
    def shop_requests() -> int:
        with urllib.request.urlopen(shop.base_url + "/_stats", timeout=10) as response:
            return json.loads(response.read())["requests"]

    before = shop_requests()
    result = asyncio.run(replay(shop.base_url, TrafficSpec(seed=9), sessions=15,
                                concurrency=4))
    assert result.errors == 0 and result.requests >= 15 * 6
    assert shop_requests() - before == result.requests
    assert "u0" in shop.log_path.read_text()  # the user token reached the access log


def test_split_history_sends_whole_sessions_round_robin(tmp_path) -> None:
    """Three logs hold every line of the single history, each session whole in the log of
    its turn (round robin), so each host sees about a third of the traffic."""
    paths = [tmp_path / f"node{n}.log" for n in (1, 2, 3)]
    counts = write_split_history(paths, SMALL, END_S)
    expected: list[list[str]] = [[], [], []]
    for number, lines in enumerate(history_sessions(SMALL, END_S)):
        expected[number % 3].extend(lines)
    written = [path.read_text().splitlines(keepends=True) for path in paths]
    assert written == expected
    assert counts == tuple(map(len, expected))
    assert sum(counts) == write_history(tmp_path / "all.log", SMALL, END_S)
    assert min(counts) > sum(counts) / 3 * 0.8


def test_split_history_needs_a_path() -> None:
    """No log to write to is a clear error, not a silent no-op."""
    with pytest.raises(ValueError, match="at least one path"):
        write_split_history([], SMALL, END_S)
