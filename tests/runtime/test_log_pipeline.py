"""The log pipeline: real files tailed into real analysis worker processes, summaries shipped."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from warmd.analysis.summary import Summary
from warmd.config import AnalysisConfig, SourceConfig
from warmd.runtime.ingest.pipeline import LogPipeline, source_format
from warmd.statemachine.summaries import ReportSummary

SETTINGS = AnalysisConfig(ship_interval_ms=50, poll_interval_ms=10, from_start=True)


def combined_line(number: int) -> str:
    """One nginx combined-format request for /api/item/<number>."""
    return (f'10.0.0.{number % 250} - - [28/Nov/2026:05:{number // 60 % 60:02d}:'
            f'{number % 60:02d} +0000] "GET /api/item/{number} HTTP/1.1" 200 512 "-" "curl/8"')


def append(path: Path, first: int, last: int, extra: tuple[str, ...] = ()) -> None:
    """Append requests first..last-1 (and any extra raw lines) to a log file."""
    with open(path, "a") as handle:
        handle.writelines(combined_line(number) + "\n" for number in range(first, last))
        handle.writelines(line + "\n" for line in extra)


def tiny_encode(summary: Summary) -> bytes:
    """A stand-in for the wire encoder: the counts the tests check, as JSON."""
    return json.dumps({"lines": summary.lines, "malformed": summary.malformed}).encode()


class Recorder:
    """A propose callable that records reports and fails the first `failures` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.accepted: list[ReportSummary] = []

    async def __call__(self, report: ReportSummary) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("no leader")
        self.accepted.append(report)
        return report.sequence


def source(name: str, *paths: Path | str, log_format: str = "combined",
           pattern: str | None = None, fields: tuple[tuple[str, str], ...] = ()) -> SourceConfig:
    """A configured source over the given paths or globs."""
    return SourceConfig(name, tuple(str(path) for path in paths), log_format, pattern, fields)


@pytest.fixture
def make_pipeline():
    """Build pipelines and close them all at the end, so no worker process outlives a test."""
    pipelines: list[LogPipeline] = []

    def build(*sources: SourceConfig, propose: Recorder | None = None,
              settings: AnalysisConfig = SETTINGS, **options: object) -> LogPipeline:
        pipeline = LogPipeline(7, sources, settings, propose or Recorder(), tiny_encode,
                               **options)
        pipelines.append(pipeline)
        return pipeline

    yield build
    for pipeline in pipelines:
        pipeline.close()


async def poll_and_ship(pipeline: LogPipeline, polls: int = 1) -> int:
    """Poll `polls` times, then ship; the number of reports accepted."""
    for _ in range(polls):
        await pipeline.poll_once()
    return await pipeline.ship_once()


async def test_appended_lines_reach_a_shipped_summary(tmp_path: Path, make_pipeline) -> None:
    """Lines in the log at start and appended later are counted in the shipped summaries."""
    log = tmp_path / "access.log"
    append(log, 0, 50)
    recorder = Recorder()
    pipeline = make_pipeline(source("web", log), propose=recorder)
    assert await poll_and_ship(pipeline) == 1
    append(log, 50, 80)
    assert await poll_and_ship(pipeline) == 1
    first, second = recorder.accepted
    assert (first.lines, second.lines) == (50, 80)
    assert json.loads(second.data) == {"lines": 80, "malformed": 0}
    assert (second.node_id, second.source) == (7, "web")
    (status,) = pipeline.status()
    assert status.files == (str(log),) and status.lines == 80 and status.lines_read == 80
    assert status.last_error is None and status.last_shipped_ms == second.now_ms


async def test_rename_rotation_loses_and_doubles_nothing(tmp_path: Path, make_pipeline) -> None:
    """Rotation by rename, with a glob that also matches the rotated copy, counts each line once."""
    log = tmp_path / "access.log"
    append(log, 0, 100)
    recorder = Recorder()
    pipeline = make_pipeline(source("web", tmp_path / "access.log*"), propose=recorder)
    await pipeline.poll_once()
    append(log, 100, 150)  # written after the poll, before the rename
    os.rename(log, tmp_path / "access.log.1")
    await pipeline.poll_once()
    append(log, 150, 220)
    assert await poll_and_ship(pipeline, polls=2) == 1
    assert recorder.accepted[-1].lines == 220
    assert pipeline.status()[0].files == (str(log),)


async def test_copytruncate_loses_and_doubles_nothing(tmp_path: Path, make_pipeline) -> None:
    """Rotation by copy then truncate counts every line once, the gap read from the copy."""
    log = tmp_path / "access.log"
    append(log, 0, 100)
    recorder = Recorder()
    pipeline = make_pipeline(source("web", log), propose=recorder)
    await pipeline.poll_once()
    append(log, 100, 130)
    shutil.copyfile(log, tmp_path / "access.log.1")
    with open(log, "r+") as handle:
        handle.truncate(0)
    append(log, 130, 140)
    await pipeline.poll_once()
    append(log, 140, 175)
    assert await poll_and_ship(pipeline) == 1
    assert recorder.accepted[-1].lines == 175


async def test_a_glob_picks_up_a_new_file(tmp_path: Path, make_pipeline) -> None:
    """A file that appears later and matches the glob is tailed from its first line."""
    append(tmp_path / "a.log", 0, 10)
    recorder = Recorder()
    pipeline = make_pipeline(source("web", tmp_path / "*.log"), propose=recorder,
                             settings=AnalysisConfig(50, 10, from_start=False))
    assert await poll_and_ship(pipeline) == 0  # from_start=False: a.log's old lines skipped
    append(tmp_path / "a.log", 10, 15)
    append(tmp_path / "b.log", 100, 120)
    assert await poll_and_ship(pipeline) == 1
    assert recorder.accepted[-1].lines == 5 + 20
    assert pipeline.status()[0].files == (str(tmp_path / "a.log"), str(tmp_path / "b.log"))


async def test_malformed_lines_are_counted_with_samples(tmp_path: Path, make_pipeline) -> None:
    """Malformed lines are skipped, counted in the report and sampled in the status."""
    log = tmp_path / "access.log"
    append(log, 0, 10, extra=("garbage one", "<html>not a log</html>", "GET / oops"))
    recorder = Recorder()
    pipeline = make_pipeline(source("web", log), propose=recorder)
    assert await poll_and_ship(pipeline) == 1
    report = recorder.accepted[-1]
    assert (report.lines, report.malformed) == (10, 3)
    (status,) = pipeline.status()
    assert status.malformed == 3 and "garbage one" in status.malformed_samples


async def test_a_failing_propose_is_retried_next_interval(tmp_path: Path, make_pipeline) -> None:
    """A propose that raises is reported in the status and the summary shipped the next time."""
    log = tmp_path / "access.log"
    append(log, 0, 5)
    recorder = Recorder(failures=2)
    pipeline = make_pipeline(source("web", log), propose=recorder)
    assert await poll_and_ship(pipeline) == 0
    assert "no leader" in (pipeline.status()[0].last_error or "")
    assert pipeline.status()[0].last_shipped_ms is None
    assert await pipeline.ship_once() == 0
    assert await pipeline.ship_once() == 1
    assert recorder.calls == 3 and recorder.accepted[0].lines == 5
    assert pipeline.status()[0].last_error is None


async def test_sequence_starts_at_the_wall_clock_and_grows(tmp_path: Path, make_pipeline) -> None:
    """Sequences start at the wall-clock ms and grow even when the clock stands still, so a
    node restarted later ships newer reports."""
    log = tmp_path / "access.log"
    wall = [1_000_000]
    recorder = Recorder()
    first = make_pipeline(source("web", log), propose=recorder, wall_ms=lambda: wall[0])
    for batch in range(3):
        append(log, batch * 10, batch * 10 + 10)
        assert await poll_and_ship(first) == 1
    assert [report.sequence for report in recorder.accepted] == [1_000_000, 1_000_001, 1_000_002]
    first.close()
    wall[0] += 1000  # restarted a second later
    restarted = make_pipeline(source("web", log), propose=recorder, wall_ms=lambda: wall[0])
    assert await poll_and_ship(restarted) == 1
    assert recorder.accepted[-1].sequence > 1_000_002 and recorder.accepted[-1].lines == 30


async def test_nothing_ships_when_nothing_changed(tmp_path: Path, make_pipeline) -> None:
    """Without new lines no report is proposed, and one new line is enough for the next one."""
    log = tmp_path / "access.log"
    append(log, 0, 5)
    recorder = Recorder()
    pipeline = make_pipeline(source("web", log), propose=recorder)
    assert await poll_and_ship(pipeline) == 1
    assert await poll_and_ship(pipeline, polls=3) == 0
    assert recorder.calls == 1
    append(log, 5, 6)
    assert await poll_and_ship(pipeline) == 1 and recorder.accepted[-1].lines == 6


def _process_gone(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


async def test_close_leaves_no_process(tmp_path: Path, make_pipeline) -> None:
    """Each source with lines has its own worker process; close() stops all of them."""
    append(tmp_path / "a.log", 0, 5)
    append(tmp_path / "b.log", 0, 5)
    pipeline = make_pipeline(source("a", tmp_path / "a.log"), source("b", tmp_path / "b.log"))
    await pipeline.poll_once()
    pids = pipeline.worker_pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids
    pipeline.close()
    assert all(_process_gone(pid) for pid in pids)
    assert pipeline.worker_pids() == [] and pipeline.status()[0].files == ()
    assert await pipeline.poll_once() == 0  # closed: polling starts no new worker
    assert pipeline.worker_pids() == []


async def test_a_big_backlog_is_read_in_bounded_chunks(tmp_path: Path, make_pipeline) -> None:
    """With a small read bound, a big file takes several polls and no line is lost."""
    log = tmp_path / "access.log"
    append(log, 0, 2000)
    recorder = Recorder()
    pipeline = make_pipeline(source("web", log), propose=recorder, read_chunk_bytes=2_000)
    per_poll = [await pipeline.poll_once() for _ in range(15)]
    assert per_poll[0] < 2000 and sum(per_poll) == 2000
    assert await pipeline.ship_once() == 1 and recorder.accepted[-1].lines == 2000


async def test_run_ships_on_its_own_and_survives_failures(tmp_path: Path, make_pipeline) -> None:
    """run() polls and ships on its intervals, riding out failing proposals, until cancelled."""
    log = tmp_path / "access.log"
    append(log, 0, 40)
    recorder = Recorder(failures=1)
    pipeline = make_pipeline(source("web", log), propose=recorder)
    task = asyncio.create_task(pipeline.run())
    try:
        await _until(lambda: bool(recorder.accepted) and recorder.accepted[-1].lines == 40)
        append(log, 40, 60)
        await _until(lambda: recorder.accepted[-1].lines == 60)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert recorder.calls >= 2
    sequences = [report.sequence for report in recorder.accepted]
    assert sequences == sorted(set(sequences))


async def _until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_auto_format_detects_json_lines(tmp_path: Path, make_pipeline) -> None:
    """A `format = "auto"` source detects JSON lines from its first lines and counts them all."""
    log = tmp_path / "app.log"
    log.write_text("".join(json.dumps({"time": 1_790_000_000 + n, "method": "GET",
                                       "uri": f"/p/{n}", "status": 200}) + "\n"
                           for n in range(30)))
    recorder = Recorder()
    pipeline = make_pipeline(source("app", log, log_format="auto"), propose=recorder)
    assert await poll_and_ship(pipeline) == 0  # too few lines yet: wait one poll for more
    assert await poll_and_ship(pipeline) == 1
    assert recorder.accepted[-1].lines == 30


async def test_auto_format_that_cannot_be_detected_is_reported(tmp_path: Path,
                                                               make_pipeline) -> None:
    """Lines of no known format leave an error in the status and start no worker."""
    log = tmp_path / "odd.log"
    log.write_text("".join(f"weird record {n}\n" for n in range(20)))
    pipeline = make_pipeline(source("odd", log, log_format="auto"))
    assert await poll_and_ship(pipeline, polls=2) == 0
    assert "could not detect" in (pipeline.status()[0].last_error or "")
    assert pipeline.worker_pids() == []


async def test_regex_and_json_sources_use_the_config_field_names(tmp_path: Path,
                                                                 make_pipeline) -> None:
    """A regex with a `path` group and JSON `fields = {path = ...}` parse their logs."""
    plain = tmp_path / "plain.log"
    plain.write_text("".join(f"2026-11-28T05:00:{n:02d}Z GET /x/{n}\n" for n in range(12)))
    shaped = tmp_path / "shaped.log"
    shaped.write_text("".join(json.dumps({"ts": 1_790_000_000 + n, "u": f"/y/{n}"}) + "\n"
                              for n in range(8)))
    recorder = Recorder()
    regex = source("plain", plain, log_format="regex",
                   pattern=r"(?P<time>\S+) (?P<method>[A-Z]+) (?P<path>\S+)")
    shaped_source = source("shaped", shaped, log_format="json",
                           fields=(("path", "u"), ("time", "ts")))
    pipeline = make_pipeline(regex, shaped_source, propose=recorder)
    assert await poll_and_ship(pipeline) == 2
    assert {report.source: report.lines for report in recorder.accepted} == {
        "plain": 12, "shaped": 8}
    assert source_format(regex) is not None and source_format(source("a", plain,
                                                                      log_format="auto")) is None


async def test_a_killed_worker_is_replaced(tmp_path: Path, make_pipeline) -> None:
    """A worker killed from outside is replaced at the next lines; the pipeline carries on."""
    log = tmp_path / "access.log"
    append(log, 0, 10)
    recorder = Recorder()
    pipeline = make_pipeline(source("web", log), propose=recorder)
    assert await poll_and_ship(pipeline) == 1
    (old_pid,) = pipeline.worker_pids()
    os.kill(old_pid, signal.SIGKILL)
    assert _process_gone(old_pid)
    append(log, 10, 15)
    await pipeline.poll_once()
    assert "exited; restarted" in (pipeline.status()[0].last_error or "")
    assert await pipeline.ship_once() == 1
    assert recorder.accepted[-1].lines == 5 and pipeline.worker_pids() != [old_pid]


async def test_an_unreadable_path_is_reported_not_raised(tmp_path: Path, make_pipeline) -> None:
    """A configured path that cannot be read leaves an error in the status; others go on."""
    (tmp_path / "dir.log").mkdir()
    append(tmp_path / "ok.log", 0, 4)
    recorder = Recorder()
    pipeline = make_pipeline(source("bad", tmp_path / "dir.log"), source("ok", tmp_path / "ok.log"),
                             propose=recorder)
    assert await poll_and_ship(pipeline) == 1
    bad, ok = pipeline.status()
    assert "dir.log" in (bad.last_error or "") and ok.lines == 4 and ok.last_error is None


async def test_the_wire_encoder_round_trips_a_shipped_summary(tmp_path: Path,
                                                              make_pipeline) -> None:
    """With the daemon's encoder, the leader decodes the same line count and templates."""
    from warmd.analysis.wire import decode_summary, encode_summary

    log = tmp_path / "access.log"
    append(log, 0, 60)
    reports: list[ReportSummary] = []

    async def propose(report: ReportSummary) -> None:
        reports.append(report)

    pipeline = LogPipeline(3, [source("web", log)], SETTINGS, propose, encode_summary)
    try:
        assert await poll_and_ship(pipeline) == 1
    finally:
        pipeline.close()
    decoded = decode_summary(reports[0].data)
    assert decoded.lines == reports[0].lines == 60
    assert sum(stats.count for stats in decoded.templates.values()) == 60



async def test_a_file_renamed_away_is_not_read_again(tmp_path: Path, make_pipeline) -> None:
    """A rotated file renamed to a name the glob still matches is recognised by its inode."""
    log = tmp_path / "access.log"
    append(log, 0, 100)
    recorder = Recorder()
    pipeline = make_pipeline(source("web", tmp_path / "*.log"), propose=recorder)
    await pipeline.poll_once()
    append(log, 100, 150)
    os.rename(log, tmp_path / "access-2026-11-28.log")
    append(log, 150, 220)
    assert await poll_and_ship(pipeline, polls=3) == 1
    assert recorder.accepted[-1].lines == 220
    assert pipeline.status()[0].files == (str(log),)
    append(tmp_path / "other.log", 0, 5)  # a genuinely new file is still picked up
    assert await poll_and_ship(pipeline) == 1 and recorder.accepted[-1].lines == 225


async def test_a_worker_that_cannot_start_fails_only_its_source(tmp_path: Path, make_pipeline,
                                                                monkeypatch) -> None:
    """If a worker process cannot be started, that source reports it and the next poll retries."""
    import warmd.runtime.ingest.pipeline as log_pipeline

    real_worker = log_pipeline.AnalysisWorker
    refusals = iter([True])

    def flaky_worker(*args: object) -> object:
        if next(refusals, False):
            raise OSError(11, "Resource temporarily unavailable")
        return real_worker(*args)

    monkeypatch.setattr(log_pipeline, "AnalysisWorker", flaky_worker)
    append(tmp_path / "a.log", 0, 3)
    recorder = Recorder()
    pipeline = make_pipeline(source("a", tmp_path / "a.log"), propose=recorder)
    assert await poll_and_ship(pipeline) == 0
    assert "Resource temporarily unavailable" in (pipeline.status()[0].last_error or "")
    append(tmp_path / "a.log", 3, 5)
    assert await poll_and_ship(pipeline) == 1 and recorder.accepted[-1].lines == 2
