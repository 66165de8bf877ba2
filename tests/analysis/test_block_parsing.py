"""Block parsing (one regex pass over many lines) gives exactly what line-by-line parsing does."""

from __future__ import annotations

import hashlib
import itertools
import random
import time
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.analysis.formats import (
    COMBINED,
    Columns,
    LineParser,
    format_from_spec,
    parse_columns,
    parse_text,
)
from warmd.analysis.summary import Summary, SummaryConfig
from warmd.analysis.summary_plain import summary_to_plain
from warmd.runtime.ingest import worker as analysis_worker
from warmd.runtime.ingest.worker import astuple_shallow
from warmd.testing.loggen import LogSpec, generate_lines


def _damaged_log(path: Path, line_count: int, seed: int) -> None:
    rng = random.Random(seed)
    lines = []
    for line in list(generate_lines())[:line_count]:
        draw = rng.random()
        if draw < 0.02:
            line = "garbage line é " + line[:30]
        elif draw < 0.03:
            line = ""
        elif draw < 0.04:
            line = line.replace("[", "[xx", 1)
        lines.append(line)
    path.write_text("\n".join(lines))  # deliberately no final newline


@pytest.mark.parametrize("block_bytes", [97, 1000, 4_000_000])
@pytest.mark.parametrize("parts", [1, 3, 7])
def test_byte_ranges_and_blocks_match_serial_counts(tmp_path: Path, block_bytes: int,
                                                    parts: int) -> None:
    """Any split into byte ranges and blocks yields the serial line and malformed counts."""
    path = tmp_path / "access.log"
    _damaged_log(path, 2000, seed=3)
    serial = analysis_worker._summarise_serially([str(path)], COMBINED, SummaryConfig(), None)
    assert serial.malformed > 0
    size = path.stat().st_size
    bounds = [size * k // parts for k in range(parts + 1)]
    lines = malformed = 0
    for start, end in itertools.pairwise(bounds):
        parser = LineParser(COMBINED)
        for text in analysis_worker._range_blocks(str(path), start, end, block_bytes):
            lines += len(parse_text(parser, text).targets)
        malformed += parser.malformed
    assert (lines, malformed) == (serial.lines, serial.malformed)


# Fragments a line may be built from: a whole good line, one cut short, one with a field
# broken, blank lines, and text with the characters the patterns' classes stop at.
_GOOD = list(itertools.islice(generate_lines(), 40))
_BROKEN = st.one_of(
    st.sampled_from(_GOOD),
    st.sampled_from(_GOOD).flatmap(lambda line: st.integers(0, len(line)).map(
        lambda cut: line[:cut])),
    st.sampled_from(_GOOD).map(lambda line: line.replace('"', "", 1)),
    st.sampled_from(_GOOD).map(lambda line: line.split(' "-" ')[0]),  # common format
    st.sampled_from(["", " ", "]", '"', '""', "[x] \"GET / H\" 200 1"]),
    st.text(alphabet=' "[]-/:GET0123456789\tx', max_size=60))


@given(st.lists(_BROKEN, max_size=40), st.booleans())
@settings(max_examples=150, deadline=None)
def test_a_block_parses_as_its_lines_do(lines: list[str], final_newline: bool) -> None:
    """One `findall` over a block gives the columns, malformed count and samples of
    matching its lines one by one (no match may run across a newline)."""
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    by_block, by_line = LineParser(COMBINED), LineParser(COMBINED)
    cut = text.split("\n")
    if cut and not cut[-1]:
        cut.pop()
    assert parse_text(by_block, text) == parse_columns(by_line, cut)
    assert (by_block.malformed, by_block.malformed_samples) == (
        by_line.malformed, by_line.malformed_samples)


_OPENDAP = format_from_spec(
    r"regex:^(?P<time>[^|]+)\|&\|(?P<client>[^|]*)\|&\|(?:[^|]*\|&\|){4}(?P<target>[^|]*)"
    r"\|&\|(?P<status>[^|]*)(?:\|&\|(?P<method>[A-Z]*))?")
_FIELDS = st.tuples(
    st.sampled_from(["2015-02-20 02:33AM", "2015-02-20 11:59PM", "1431857103", "not a time",
                     "2015-13-45 02:33AM", ""]),
    st.sampled_from(["ab12", "", "x"]),
    st.sampled_from(["/opendap/a.nc?crs,lat", "/x/1", "", "opendap", "http://h/p", "*",
                     "/p?x=é"]),
    st.sampled_from(["200", "404", "", "2x0", "301"]),
    st.sampled_from(["", "GET", "HEAD", None]))


def _opendap_line(fields: tuple[str, str, str, str, str | None]) -> str:
    stamp, client, target, status, method = fields
    line = f"{stamp}|&|{client}|&|A|&|2|&|7|&|9|&|{target}|&|{status}"
    return line + ("" if method is None else f"|&|{method}") + "\n"


@given(st.lists(st.one_of(_FIELDS.map(_opendap_line), st.sampled_from(["\n", "  \n", "x\n"])),
                max_size=40))
@settings(max_examples=150, deadline=None)
def test_named_regex_columns_equal_records_line_by_line(lines: list[str]) -> None:
    """The columnar path of a named regex keeps, converts and rejects exactly the lines
    LineParser does, and counts and samples the rejected ones the same."""
    columnar, by_line = LineParser(_OPENDAP), LineParser(_OPENDAP)
    columns = parse_columns(columnar, lines)
    records = by_line.parse_many(lines)
    assert columns == Columns([r.target for r in records], [r.time_s for r in records],
                              [r.method for r in records], [r.status for r in records],
                              [r.client for r in records], [r.agent for r in records])
    assert (columnar.malformed, columnar.malformed_samples) == (
        by_line.malformed, by_line.malformed_samples)


def _summary_digest(summary: Summary) -> str:
    return hashlib.sha256(msgpack.packb(summary_to_plain(summary))).hexdigest()


def _opendap_form(line: str) -> str:
    """A combined line rewritten in the OPeNDAP export's `|&|` form (the time to the minute,
    as the export writes it), so a named-regex log has the loggen log's traffic."""
    record = LineParser(COMBINED).parse(line)
    if record is None:
        return line + "\n"  # a malformed line stays malformed
    stamp = time.strftime("%Y-%m-%d %I:%M%p", time.gmtime(record.time_s))
    return (f"{stamp}|&|{record.client}|&|A|&|2|&|7|&|9|&|{record.target}|&|"
            f"{record.status}\n")


@given(st.integers(0, 2**16), st.sampled_from(["combined", "regex"]))
@settings(max_examples=4, deadline=None)
def test_block_parsed_summary_equals_the_line_by_line_one(seed: int, kind: str) -> None:
    """Chunk by chunk, the summary of the block-parsed columns (findall over a combined
    block, the columnar named regex) is the summary of the records LineParser parses line
    by line: every count, sketch entry and order (the plain form's digest)."""
    lines = list(generate_lines(LogSpec(seed=seed, days=0.4, requests_per_day=12_000,
                                        malformed_share=0.01)))
    if kind == "combined":
        log_format, chunks = COMBINED, [lines[n:n + 1_500] for n in range(0, len(lines), 1_500)]
    else:
        log_format = _OPENDAP
        chunks = [[_opendap_form(line) for line in lines[n:n + 1_500]]
                  for n in range(0, len(lines), 1_500)]
    by_block, by_line = Summary(), Summary()
    block_parser, line_parser = LineParser(log_format), LineParser(log_format)
    for chunk in chunks:
        text = "".join(line if line.endswith("\n") else line + "\n" for line in chunk)
        by_block.add_columns(*astuple_shallow(parse_text(block_parser, text)))
        by_line.add_records(line_parser.parse_many(chunk))
    assert by_block.lines == by_line.lines > 0
    assert block_parser.malformed == line_parser.malformed > 0
    assert _summary_digest(by_block) == _summary_digest(by_line), f"seed {seed}, {kind}"
