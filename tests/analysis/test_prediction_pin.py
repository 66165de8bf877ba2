"""Pinned summaries and predictions: speed work on the analysis must not change what it says.

The golden file holds, for a generated log analysed three ways, a digest of the summary's
plain form (every count, sketch entry and tie-breaking order) and the predictions it gives.
It was written by the code before the hot path was rebuilt; regenerate it only for an
intended change of behaviour: `WARMD_REWRITE_GOLDEN=1 pytest tests/analysis/test_prediction_pin.py`.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import msgpack

from warmd.analysis.summary import Summary
from warmd.analysis.summary_plain import summary_to_plain
from warmd.rules.engine import predict
from warmd.runtime.ingest.worker import read_records, summarise_files, summarise_records
from warmd.testing.loggen import LogSpec, generate_lines

GOLDEN = Path(__file__).parent / "testdata" / "pinned_predictions.txt"
HORIZON_S = 6 * 3600
BUDGET = 150


def write_mixed_log(path: Path, seed: int = 11) -> None:
    """A loggen log with the awkward cases: malformed and common-format lines, other
    methods, and a stretch whose lines are shuffled (hours that go back within a block)."""
    rng = random.Random(seed)
    lines = list(generate_lines(LogSpec(seed=seed, days=2.5, requests_per_day=16_000)))
    start = len(lines) // 2
    stretch = lines[start:start + 6_000]
    rng.shuffle(stretch)
    lines[start:start + 6_000] = stretch
    for number, line in enumerate(lines):
        draw = rng.random()
        if draw < 0.01:
            lines[number] = "garbage line é " + line[:40]
        elif draw < 0.02:
            lines[number] = line.split(' "-" ')[0]  # common format: no referer or agent
        elif draw < 0.03:
            lines[number] = line.replace('"GET', '"HEAD', 1)
    path.write_text("\n".join(lines) + "\n")


def _digest(summary: Summary) -> str:
    return hashlib.sha256(msgpack.packb(summary_to_plain(summary))).hexdigest()


def pinned_lines(log: Path) -> list[str]:
    """The golden lines: per way of analysing, the summary digest, then the predictions."""
    parsed = read_records([str(log)])
    ways = {
        "files_serial": summarise_files([str(log)], "combined", workers=1),
        "files_ranges": summarise_files([str(log)], None, workers=2),
        "records": summarise_records(parsed.records, malformed=parsed.malformed,
                                     samples=parsed.malformed_samples),
    }
    out = []
    for way, summary in ways.items():
        out.append(f"{way} lines={summary.lines} malformed={summary.malformed} "
                   f"excluded={dict(summary.excluded)} digest={_digest(summary)}")
        for prediction in predict(summary, summary.last_s, HORIZON_S, BUDGET):
            out.append(f"{way} {prediction.score:.12g} {prediction.source} {prediction.target}")
    return out


def test_summaries_and_predictions_match_the_pinned_ones(tmp_path: Path) -> None:
    """Serial, byte-range and record summaries, and their predictions, equal the golden file."""
    log = tmp_path / "access.log"
    write_mixed_log(log)
    lines = pinned_lines(log)
    if os.environ.get("WARMD_REWRITE_GOLDEN"):
        GOLDEN.write_text("\n".join(lines) + "\n")
    golden = GOLDEN.read_text().splitlines()
    assert len(lines) == len(golden)
    for got, want in zip(lines, golden, strict=True):
        assert got == want
