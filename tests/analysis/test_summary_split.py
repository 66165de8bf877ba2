"""`warmd analyze` gives one answer however the log is cut: plain or gzip, 1, 2 or 4 workers.

The log has what made answers differ: a heavy crawl early whose path position only becomes a
`{slug}` after a dozen tiles (each worker, each chunk learns it anew), then hundreds of light
one-off templates that overflow the template cap.
"""

from __future__ import annotations

import gzip
import random
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.analysis.formats import COMBINED, LineParser
from warmd.analysis.summary import Summary, SummaryConfig
from warmd.cli.analyze import analysis_report, render_text
from warmd.runtime.ingest import worker
from warmd.runtime.ingest.worker import summarise_files

CONFIG = SummaryConfig(max_templates=60)
START_S = 1_431_856_800  # 2015-05-17 10:00 UTC


def _line(time_s: int, target: str) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(time_s))
    return f'10.0.0.1 - - [{stamp}] "GET {target} HTTP/1.1" 200 10 "-" "curl/8"'


def _log(seed: int) -> list[str]:
    rng = random.Random(seed)
    tiles = [f"N{rng.randrange(90):02d}W{rng.randrange(180):03d}" for _ in range(200)]
    lines = [_line(START_S + n, f"/hyrax/ASTGTM/{rng.choice(tiles)}.nc?crs,lat,lon")
             for n in range(3_000)]
    lines += [_line(START_S + 3_000 + n, f"/api/item/{rng.randrange(50)}")
              for n in range(600)]
    lines += [_line(START_S + 4_000 + n, f"/x{n % 400}a/y{n % 400}b/page")
              for n in range(2_000)]
    return lines


def _counts(summary: Summary) -> dict[str, int]:
    return {pattern: stats.count for pattern, stats in summary.templates.items()}


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_same_summary_for_any_split(seed: int) -> None:
    """Every split gives the serial run's heavy templates with the same counts (a light
    template may differ within the cap's error bound), and the same requests outside."""
    lines = _log(seed)
    text = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        patch.setattr(worker, "CHUNK_LINES", 700)  # several chunks in the serial run
        plain = Path(directory, "access.log")
        plain.write_text(text)
        packed = Path(directory, "access.log.gz")
        with gzip.open(packed, "wt") as handle:
            handle.write(text)
        serial = summarise_files([str(plain)], "combined", CONFIG, workers=1)
        # a template dropped at the cap holds at most lines / (0.9 * cap) requests
        bound = len(lines) / (0.9 * CONFIG.max_templates)
        heavy = {p: c for p, c in _counts(serial).items() if c > 2 * bound}
        assert "/hyrax/ASTGTM/{slug}?crs,lat,lon" in heavy
        assert heavy["/hyrax/ASTGTM/{slug}?crs,lat,lon"] == 3_000
        for path in (plain, packed):
            for workers in (1, 2, 4):
                split = summarise_files([str(path)], "combined", CONFIG, workers=workers)
                counts = _counts(split)
                where = f"seed {seed}, {path.name}, {workers} workers"
                assert {p: counts.get(p) for p in heavy} == heavy, where
                assert split.lines == serial.lines == len(lines), where
                assert sum(counts.values()) + split.dropped_requests == len(lines), where


def test_report_says_how_many_requests_fell_outside() -> None:
    """The human and JSON outputs count the requests of the templates not shown."""
    summary = Summary(CONFIG)
    summary.add_records(LineParser(COMBINED).parse_many(_log(7)))
    report = analysis_report(summary)
    shown = sum(template["count"] for template in report["templates"])
    outside = report["outside_templates"]
    assert outside["requests"] == summary.dropped_requests == len(_log(7)) - shown > 0
    assert outside["templates"] == summary.dropped_templates > 0
    assert f"{outside['requests']:,}  requests outside the templates shown" in render_text(report)
