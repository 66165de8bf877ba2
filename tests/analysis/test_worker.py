"""The analysis worker process and the parallel file summariser match in-process results."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from warmd.analysis.formats import COMBINED, Columns, LineParser
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


def test_until_summarises_only_the_requests_before_it(tmp_path: Path) -> None:
    """`until_s` (what `warmd predict --at` passes) gives the summary of the log cut just
    before that time, to the last sketch entry (one process; two cut the file elsewhere, so
    their parts merge to the same counts); the malformed lines after it still count."""
    lines = list(generate_lines(SPEC))
    parser = LineParser(COMBINED)
    times = [record.time_s if record else None for record in map(parser.parse, lines)]
    cut = next(i for i, t in enumerate(times) if t is not None and i > len(lines) * 2 // 3)
    until_s = times[cut]
    assert until_s is not None and all(t is None or t < until_s for t in times[:cut])
    whole, head = tmp_path / "access.log", tmp_path / "head.log"
    whole.write_text("\n".join(lines) + "\n")
    head.write_text("\n".join(lines[:cut]) + "\n")
    expected = summarise_files([str(head)], "combined", workers=1)
    until = summarise_files([str(whole)], "combined", workers=1, until_s=until_s)
    assert 0 < until.lines < len(lines) * 0.7
    assert until.malformed == parser.malformed > expected.malformed
    until.malformed = expected.malformed
    assert summary_to_plain(until) == summary_to_plain(expected)
    split = summarise_files([str(whole)], "combined", workers=2, until_s=until_s)
    assert (split.lines, split.excluded) == (until.lines, until.excluded)
    assert {p: t.count for p, t in split.templates.items()} == {
        p: t.count for p, t in until.templates.items()}


def test_columns_before_keeps_the_earlier_requests_in_order() -> None:
    """Columns.before cuts every column alike and keeps the order; None keeps all."""
    columns = Columns(["/a", "/b", "/c", "/d"], [3.0, 1.0, 5.0, 2.0], ["GET"] * 4,
                      [200, 201, 202, 203], ["x", "y", "z", "w"], ["", "", "", ""])
    assert columns.before(None) is columns and columns.before(6.0) is columns
    assert columns.before(3.0) == Columns(["/b", "/d"], [1.0, 2.0], ["GET"] * 2, [201, 203],
                                          ["y", "w"], ["", ""])
    assert columns.before(0.5).targets == []
