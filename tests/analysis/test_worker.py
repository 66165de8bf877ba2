"""The analysis worker process and the parallel file summariser match in-process results."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from warmd.analysis.formats import COMBINED, LineParser
from warmd.analysis.summary import summarise
from warmd.runtime.ingest.worker import AnalysisWorker, summarise_files
from warmd.testing.loggen import LogSpec, generate_lines

SPEC = LogSpec(seed=31, days=1.0, requests_per_day=4_000, malformed_share=0.01)


def test_worker_process_summarises_fed_lines() -> None:
    """Lines fed to the worker process give the same counts as summarising in-process."""
    lines = list(generate_lines(SPEC))
    worker = AnalysisWorker(COMBINED)
    try:
        assert worker.pid is not None and worker.pid != os.getpid()
        for start in range(0, len(lines), 1000):
            worker.feed(lines[start:start + 1000])
        remote = worker.snapshot()
    finally:
        worker.stop()
    parser = LineParser(COMBINED)
    local = summarise(parser.parse_many(lines))
    assert remote.lines == local.lines
    assert remote.malformed == parser.malformed > 0
    assert {p: t.count for p, t in remote.templates.items()} == {
        p: t.count for p, t in local.templates.items()}


@pytest.mark.parametrize("compressed", [False, True])
def test_parallel_summary_matches_a_single_process(tmp_path: Path, compressed: bool) -> None:
    """Two worker processes (byte ranges, or chunks of a gzip file) merge to the same counts
    as one process: no line lost or counted twice at the range boundaries."""
    text = "\n".join(generate_lines(SPEC)) + "\n"
    path = tmp_path / ("access.log.gz" if compressed else "access.log")
    if compressed:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    single = summarise_files([str(path)], workers=1)
    parallel = summarise_files([str(path)], workers=2)
    assert parallel.lines + parallel.malformed == len(text.splitlines())
    assert parallel.lines == single.lines and parallel.malformed == single.malformed
    assert parallel.excluded == single.excluded
    assert sum(t.count for t in parallel.templates.values()) == sum(
        t.count for t in single.templates.values())
