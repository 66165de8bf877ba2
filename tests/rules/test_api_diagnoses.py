"""Diagnoses that a realistic API log once got wrong, each on a small generated log.

A jQuery-style cache-buster (`_=<epoch ms>`) advances with time but is a NONCE, and daily
reports that ask for "yesterday" in the log's own zone (+08:00) are re-anchored on local days.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from warmd.analysis.formats import COMBINED, LineParser, Record
from warmd.analysis.summary import Summary, local_offsets, log_zone_h, summarise
from warmd.cli.analyze import parse_instant_s
from warmd.cli.warmd import main
from warmd.rules.engine import diagnose_all, predict
from warmd.rules.tree import ParamClass
from warmd.testing.apilog import ApiLogSpec, generate_api_lines

SPEC = ApiLogSpec(seed=5, days=3, requests_per_day=6_000, products=800, users=1_500)
AT = "2026-10-14T00:00:00+08:00"  # local midnight before the log's third day


@pytest.fixture(scope="module")
def summary() -> Summary:
    records = LineParser(COMBINED).parse_many(generate_api_lines(SPEC))
    at_s = parse_instant_s(AT)
    return summarise([r for r in records if r.time_s < at_s])


def test_cache_buster_is_a_nonce_tested_before_sequence(summary: Summary) -> None:
    """`_=<epoch ms>` is diagnosed NONCE by the request-time test, which runs before SEQUENCE."""
    home = diagnose_all(summary)["/api/v1/home?_={}&lang={}"].slots["_"]
    assert home.param_class is ParamClass.NONCE and home.drop_from_key
    assert home.evidence[-1].test.startswith("value is the request time")
    assert not any(e.test.startswith("advances") for e in home.evidence)


def test_home_is_warmed_without_its_buster(summary: Summary) -> None:
    """The home feed is predicted as the key without `_` (the key a cache would hold)."""
    targets = [p.target for p in predict(summary, parse_instant_s(AT), 6 * 3600, 400)]
    assert "/api/v1/home?lang=en" in targets
    assert not any("_=" in t for t in targets)


def test_hourly_index_stays_a_sequence(summary: Summary) -> None:
    """An hour number is not a request time in s/ms/µs: still a SEQUENCE."""
    hour = diagnose_all(summary)["/api/v1/stats/hourly?hour={}"].slots["hour"]
    assert hour.param_class is ParamClass.SEQUENCE


def test_yesterday_in_the_logs_zone(summary: Summary) -> None:
    """Reports ask for yesterday in +08:00: the zone is found from the dates, the offset is one
    number there, and the prediction at local midnight asks for the local yesterday."""
    date = diagnose_all(summary)["/api/v1/reports/daily?date={}&metric={}&region={}"].slots["date"]
    assert (date.param_class, date.date_offset_days, date.zone_h) == (
        ParamClass.DATE_RELATIVE, -1, 8)
    targets = [p.target for p in predict(summary, parse_instant_s(AT), 6 * 3600, 2_000)]
    reports = [t for t in targets if "/reports/daily" in t]
    assert reports and all("date=2026-10-13" in t for t in reports)


def test_zone_from_offsets_by_hour() -> None:
    """Offsets measured against the UTC date jump at the local midnight; the zone where they
    do not is the log's; with no jump the zone nearest UTC wins."""
    zone = timezone(timedelta(hours=-5))
    offsets: dict[tuple[int, int], int] = {}
    for hour in range(24):
        moment = datetime(2026, 1, 10, hour, tzinfo=UTC)
        local_yesterday = moment.astimezone(zone).date() - timedelta(days=1)
        offset = (local_yesterday - moment.date()).days
        offsets[(hour, offset)] = offsets.get((hour, offset), 0) + 10
    assert log_zone_h(Counter(offsets)) == -5
    assert local_offsets(Counter(offsets), -5) == Counter({-1: 240})
    assert log_zone_h(Counter({(h, 0): 1 for h in range(24)})) == 0


def test_predict_at_any_offset_and_explain_table(tmp_path: Path, capsys) -> None:
    """`warmd predict --at` with +08:00 or the same instant in UTC gives the same warm set;
    --explain puts the self-backtest's table on stderr; `analyze --budget` shows it too."""
    log = tmp_path / "api.log"
    small = ApiLogSpec(seed=5, days=3, requests_per_day=2_500, products=400, users=800)
    log.write_text("\n".join(generate_api_lines(small)) + "\n")
    outputs = []
    for at in (AT, "2026-10-13T16:00:00Z"):
        assert main(["predict", str(log), "--budget", "200", "--at", at, "--explain"]) == 0
        captured = capsys.readouterr()
        outputs.append([line.split("\t")[0] for line in captured.out.splitlines()])
        assert "winner" in captured.err and "/api/v1/products/{int}?lang={}" in captured.err
    assert outputs[0] == outputs[1] and len(outputs[0]) == 200
    assert main(["analyze", str(log), "--budget", "200", "--workers", "1"]) == 0
    assert "self-backtest on the same window yesterday" in capsys.readouterr().out


def test_a_user_named_value_new_on_every_request_stays_user_scoped() -> None:
    """NONCE runs before USER_SCOPED, but a `session` that changes every request is still the
    user's: never warmed, not dropped from the key and warmed for everyone."""
    records = [Record(1.79e9 + n, "GET", f"/api/cart?session=s{n:06d}", 200,
                      f"10.0.{n % 200}.1", "Mozilla") for n in range(400)]
    cart = diagnose_all(summarise(records))["/api/cart?session={}"].slots["session"]
    assert cart.param_class is ParamClass.USER_SCOPED and cart.never_warm
