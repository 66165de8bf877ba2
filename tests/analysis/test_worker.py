"""The analysis worker process and the parallel file summariser match in-process results."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from warmd.analysis.formats import COMBINED, LineParser
from warmd.analysis.summary import summarise
from warmd.analysis.summary_plain import summary_to_plain
from warmd.errors import ConfigError
from warmd.runtime.ingest.worker import AnalysisWorker, file_ranges, summarise_files
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
    """Two worker processes (byte ranges of the file or of a gzip file's content) merge to the same counts
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


@pytest.mark.parametrize("workers", [2, 3])
def test_gzip_log_gives_the_plain_logs_summary(tmp_path: Path, workers: int) -> None:
    """A gzip log is cut by its content's size, so its summary is the plain log's, to the
    last sketch entry and tie-breaking order."""
    text = "\n".join(generate_lines(SPEC)) + "\n"
    plain, packed = tmp_path / "access.log", tmp_path / "access.log.gz"
    plain.write_text(text)
    with gzip.open(packed, "wt") as handle:
        handle.write(text)
    assert file_ranges(str(packed), workers)[:-1] == file_ranges(str(plain), workers)[:-1]
    assert file_ranges(str(packed), workers)[-1][1] is None  # the last runs to the end
    assert summary_to_plain(summarise_files([str(packed)], "combined", workers=workers)) == \
        summary_to_plain(summarise_files([str(plain)], "combined", workers=workers))


def test_gzip_of_several_members_is_read_to_its_end(tmp_path: Path) -> None:
    """Two gzip members end to end record only the last one's size: the last range still
    runs to the end of the content, so no line is lost."""
    lines = list(generate_lines(SPEC))
    packed = tmp_path / "access.log.gz"
    middle = len(lines) * 9 // 10
    packed.write_bytes(gzip.compress(("\n".join(lines[:middle]) + "\n").encode())
                       + gzip.compress(("\n".join(lines[middle:]) + "\n").encode()))
    summary = summarise_files([str(packed)], "combined", workers=2)
    assert summary.lines + summary.malformed == len(lines)


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_gzip_is_a_clear_error(tmp_path: Path, workers: int) -> None:
    """A gzip log cut short raises a ConfigError naming the file, not a traceback."""
    data = gzip.compress(("\n".join(generate_lines(SPEC)) + "\n").encode())
    packed = tmp_path / "cut.log.gz"
    packed.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match=r"cannot read log .*cut\.log\.gz"):
        summarise_files([str(packed)], "combined", workers=workers)
