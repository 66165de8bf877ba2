"""The demo shop as a real process: read-through cache, cache-buster-free keys, counters, log."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from warmd.analysis.formats import COMBINED, LineParser
from warmd.demo.runner import ShopProcess
from warmd.demo.shop import cache_key, first_screen_calls


def get(shop: ShopProcess, target: str) -> tuple[int, str, bytes]:
    """GET target; return (status, X-Cache header, body), error statuses included."""
    try:
        with urllib.request.urlopen(shop.base_url + target, timeout=10) as response:
            return response.status, response.headers.get("X-Cache", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, "", error.read()


def stats(shop: ShopProcess) -> dict[str, int]:
    return json.loads(get(shop, "/_stats")[2])


def test_cache_key_drops_cache_busters_and_sorts_parameters() -> None:
    """Two URLs that differ only in busters and parameter order share one key."""
    assert cache_key("/api/banner", {"v": "1"}) == cache_key("/api/banner", {"v": "2"})
    assert (cache_key("/api/deals", {"region": "eu", "date": "2026-01-02", "_": "9"})
            == "shop:/api/deals?date=2026-01-02&region=eu")


def test_first_screen_lists_every_endpoint_with_relative_dates() -> None:
    """The first screen asks for today's deals, yesterday's report, the featured article,
    the hour's stats and a busted banner."""
    from datetime import date
    calls = first_screen_calls(date(2026, 3, 1), "eu", "shoes", (5, 6), "abc",
                               article=981_000, hour=491_000)
    assert calls[0] == "/api/deals?date=2026-03-01&region=eu"
    assert "/api/report/daily?day=2026-02-28" in calls
    assert "/api/article/981000" in calls and "/api/stats/hourly?hour=491000" in calls
    assert calls[-1] == "/api/banner?v=abc"
    assert len(calls) == 8


def test_articles_and_hourly_stats_answer(shop: ShopProcess) -> None:
    """The article and hourly-stats endpoints answer any id, and refuse a non-number."""
    status, _, body = get(shop, "/api/article/981000")
    assert status == 200 and json.loads(body)["id"] == 981000
    status, _, body = get(shop, "/api/stats/hourly?hour=491000")
    assert status == 200 and json.loads(body)["hour"] == 491000
    assert get(shop, "/api/stats/hourly?hour=soon")[0] == 400


def test_second_request_is_a_cache_hit_without_origin_query(shop: ShopProcess) -> None:
    """A miss queries the slow origin once; the same request then hits Redis."""
    before = stats(shop)
    status, first_cache, body = get(shop, "/api/product/17")
    assert status == 200 and first_cache == "MISS" and json.loads(body)["id"] == 17
    status, second_cache, again = get(shop, "/api/product/17")
    assert status == 200 and second_cache == "HIT" and again == body
    after = stats(shop)
    assert after["origin_queries"] - before["origin_queries"] == 1
    assert after["cache_hits"] - before["cache_hits"] == 1
    assert after["cache_misses"] - before["cache_misses"] == 1


def test_miss_pays_the_slow_origin_and_hit_does_not(shop: ShopProcess) -> None:
    """A miss costs the injected 20-30 ms; a hit is answered much faster."""
    started = time.perf_counter()
    get(shop, "/api/products?category=hats&page=3")
    miss_s = time.perf_counter() - started
    started = time.perf_counter()
    get(shop, "/api/products?category=hats&page=3")
    hit_s = time.perf_counter() - started
    assert miss_s >= 0.02
    assert hit_s < miss_s


def test_cache_buster_is_not_part_of_the_key(shop: ShopProcess) -> None:
    """Banners with different ?v= share one cached answer: one origin query for three calls."""
    before = stats(shop)
    answers = [get(shop, f"/api/banner?v={buster}") for buster in ("a1", "b2", "c3")]
    assert [answer[1] for answer in answers][1:] == ["HIT", "HIT"]
    assert stats(shop)["origin_queries"] - before["origin_queries"] <= 1


@pytest.mark.parametrize("target", ["/api/product/abc", "/api/deals?date=tomorrow&region=eu",
                                    "/api/products?category=cars&page=1",
                                    "/api/products?category=shoes&page=-4"])
def test_bad_input_gets_400_and_the_shop_keeps_serving(shop: ShopProcess, target: str) -> None:
    """A malformed parameter is a 400 with a reason, and the next request still works."""
    status, _, body = get(shop, target)
    assert status == 400 and body.strip()
    assert get(shop, "/api/report/daily?day=2026-11-27")[0] == 200


def test_unknown_product_is_404(shop: ShopProcess) -> None:
    """An id past the catalogue is not found rather than an error."""
    assert get(shop, "/api/product/999999")[0] == 404


def test_home_page_lists_the_first_screen_calls(shop: ShopProcess) -> None:
    """The page / names the API calls of its first screen."""
    status, _, body = get(shop, "/")
    assert status == 200 and b'data-api="/api/deals?date=' in body


def test_access_log_lines_parse_with_the_analysis_parser(shop: ShopProcess) -> None:
    """Every line of the access log parses as combined format, with target and status."""
    get(shop, "/api/product/23?_=12345")
    get(shop, "/api/product/bad")
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = Path(shop.log_path).read_text().splitlines()
        if any("/api/product/bad" in line for line in lines):
            break
        time.sleep(0.05)
    parser = LineParser(COMBINED)
    records = [parser.parse(line) for line in lines]
    assert lines and None not in records
    targets = {(record.target, record.status) for record in records if record is not None}
    assert ("/api/product/23?_=12345", 200) in targets
    assert ("/api/product/bad", 400) in targets
    assert all(float(line.rsplit(" ", 1)[1]) >= 0 for line in lines)  # $request_time


def test_unusable_database_path_is_one_clear_line(tmp_path: Path) -> None:
    """A database in a missing directory stops the shop with exit 1 and no traceback."""
    import subprocess
    import sys
    completed = subprocess.run(
        [sys.executable, "-m", "warmd.demo.shop", "--port", "1", "--redis",
         "redis://127.0.0.1:1/0", "--db", str(tmp_path / "missing" / "db.sqlite"),
         "--log", str(tmp_path / "access.log")], capture_output=True, text=True, timeout=30)
    assert completed.returncode == 1
    assert "cannot start" in completed.stderr and "Traceback" not in completed.stderr
