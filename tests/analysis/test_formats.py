"""Log formats: combined/common/extended, JSON lines, named regexes, detection, bad lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.analysis.formats import (
    COMBINED,
    LineParser,
    TimeParser,
    detect_format,
    format_from_spec,
    parse_columns,
)
from warmd.errors import ConfigError
from warmd.runtime.ingest.worker import read_records

COMBINED_LINE = ('83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash/'
                 'kibana.png?x=1 HTTP/1.1" 200 203023 "http://semicomplete.com/" '
                 '"Mozilla/5.0 (Macintosh)"')
NASA_SPEC = (r"regex:^(?P<time>[^|]+)\|&\|(?P<client>[^|]*)\|&\|(?:[^|]*\|&\|){4}"
             r"(?P<target>[^|]*)\|&\|(?P<status>\d+)")


def test_combined_line_parses_every_field() -> None:
    """A combined line yields time, method, target, status, client and agent."""
    record = LineParser(COMBINED).parse(COMBINED_LINE)
    assert record is not None
    assert record.time_s == 1431857103.0
    assert (record.method, record.status, record.client) == ("GET", 200, "83.149.9.216")
    assert record.target == "/presentations/logstash/kibana.png?x=1"
    assert record.agent == "Mozilla/5.0 (Macintosh)"


def test_common_and_trailing_fields_parse() -> None:
    """Common format (no referer/agent) and combined with a trailing request time both parse."""
    parser = LineParser(COMBINED)
    common = parser.parse('1.2.3.4 - bob [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326')
    trailing = parser.parse(COMBINED_LINE + " 0.012 upstream=0.010")
    assert common is not None and common.time_s == 971211336.0
    assert trailing is not None and trailing.target.startswith("/presentations")


def test_netnea_extended_format_parses_with_iso_time() -> None:
    """The netnea extended format (country column, ISO time with microseconds) parses."""
    line = ('75.249.65.145 US - [2015-09-02 10:42:51.003372] "GET /cms/feed/ HTTP/1.1" 200 '
            '20 "-" "Mozilla/5.0" www.example.com 124.165.3.7 443 redirect-handler - + '
            '"-" VWazFn8AAQEAAAj@yQcAAAAA TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 701 1235')
    record = LineParser(COMBINED).parse(line)
    assert record is not None and record.target == "/cms/feed/"
    assert record.time_s == pytest.approx(1441190571.003372)


def test_json_lines_with_configured_field_names() -> None:
    """JSON lines parse with default names and with names given in the format spec."""
    default = LineParser(format_from_spec("json")).parse(json.dumps(
        {"time": "2024-01-02T03:04:05Z", "method": "GET", "uri": "/x?b=1", "status": 200}))
    custom = LineParser(format_from_spec("json:time=when,target=where")).parse(json.dumps(
        {"when": 1700000000, "where": "/y", "status": "404"}))
    assert default is not None and default.target == "/x?b=1"
    assert default.time_s == 1704164645.0
    assert custom is not None and (custom.target, custom.status) == ("/y", 404)


def test_named_regex_reads_the_opendap_export() -> None:
    """A named-group regex reads the LP DAAC export, including its 12-hour clock."""
    line = ("2016-05-17 12:01AM|&|65ff8b|&|MOD09CMG|&|6|&|574764|&|None|&|/opendap/hyrax/"
            "MOD09CMG.006/MOD09CMG.006.ncml.dods?QA[3059:1:3059][1996:1:2676]|&|200|&|574880")
    record = LineParser(format_from_spec(NASA_SPEC)).parse(line)
    assert record is not None
    assert record.time_s == 1463443260.0  # 00:01 UTC
    assert record.method == "GET" and record.client == "65ff8b"


def test_malformed_lines_are_counted_sampled_and_skipped() -> None:
    """Bad lines never raise: they are counted, a few are kept as samples, the rest parse."""
    parser = LineParser(COMBINED)
    lines = [COMBINED_LINE] + [f"garbage {n}" for n in range(9)] + [
        '1.2.3.4 - - [99/Foo/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1', "", COMBINED_LINE]
    records = parser.parse_many(lines)
    assert len(records) == 2
    assert parser.malformed == 10
    assert len(parser.malformed_samples) == LineParser.SAMPLE_LIMIT
    assert parser.malformed_samples[0] == "garbage 0"


def test_detection_picks_combined_or_json_and_refuses_noise() -> None:
    """Detection recognises combined and JSON samples and fails clearly on noise."""
    assert detect_format([COMBINED_LINE] * 3).name == "combined"
    assert detect_format(['{"time": 1, "path": "/a"}']).name == "json"
    with pytest.raises(ConfigError, match="could not detect"):
        detect_format(["hello world"] * 5)


def test_bad_format_specs_are_config_errors() -> None:
    """Unknown names, broken regexes and regexes missing groups are rejected with a reason."""
    for spec, reason in (("apache2", "unknown log format"), ("regex:(", "does not compile"),
                         ("regex:(?P<time>x)", "named groups"), ("json:nope=x", "bad field")):
        with pytest.raises(ConfigError, match=reason):
            format_from_spec(spec)


def test_time_parser_handles_offsets_and_epochs() -> None:
    """CLF offsets shift to UTC; epoch seconds and milliseconds are accepted."""
    times = TimeParser()
    assert times.parse("17/May/2015:12:05:03 +0200") == 1431857103.0
    assert times.parse("1431857103") == 1431857103.0
    assert times.parse("1431857103000") == 1431857103.0
    with pytest.raises(ValueError):
        times.parse("yesterday")


def test_gzip_logs_are_read_transparently(tmp_path: Path) -> None:
    """A gzip log reads like a plain one, sorted by time, with malformed lines counted."""
    later = COMBINED_LINE.replace("10:05:03", "11:00:00")
    path = tmp_path / "access.log.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(f"{later}\nnot a log line\n{COMBINED_LINE}\n")
    parsed = read_records([str(path)], "combined")
    assert [r.time_s for r in parsed.records] == [1431857103.0, 1431860400.0]
    assert parsed.malformed == 1


@given(st.lists(st.one_of(st.just(COMBINED_LINE), st.text(max_size=80).filter(
    lambda text: "\n" not in text and "\r" not in text)), max_size=30))
@settings(max_examples=200, deadline=None)
def test_fast_path_counts_every_line_once(lines: list[str]) -> None:
    """On any mix of good and bad lines, the fast path parses the good ones and counts the
    rest as malformed, like the line-by-line parser."""
    fast, slow = LineParser(COMBINED), LineParser(COMBINED)
    columns = parse_columns(fast, lines)
    records = slow.parse_many(lines)
    assert len(columns.targets) + fast.malformed == sum(1 for line in lines if line.strip())
    assert len(columns.targets) >= len(records)
    assert fast.malformed <= slow.malformed
