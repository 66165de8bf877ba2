"""Block parsing (one regex pass over many lines) counts exactly what line-by-line parsing does."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from warmd.analysis.formats import COMBINED, LineParser, parse_text
from warmd.analysis.summary import SummaryConfig
from warmd.runtime.ingest import worker as analysis_worker
from warmd.testing.loggen import generate_lines


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
