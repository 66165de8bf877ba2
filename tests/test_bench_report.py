"""bench/report.py: last lines in, one table out, old reports to History (no bench is run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPORT_PATH = Path(__file__).resolve().parent.parent / "bench" / "report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", REPORT_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


WARM_LINE = (
    "redis_runner_keys_s=350000 redis_benchmark_ttl_keys_s=500000 "
    "redis_runner_ratio_vs_redis_benchmark_ttl=0.712 redis_runner_ratio_vs_redis_benchmark_ttl_low"
    "=0.5 redis_runner_ratio_vs_redis_benchmark_ttl_high=0.9 redis_keys_s=400000 "
    "redis_py_keys_s=50000 redis_ratio_vs_redis_py=8.000 memcached_keys_s=nan "
    "memcslap_keys_s=100000 memcached_ratio_vs_memcslap=nan")
RAFT_LINE = ("warmd_ops_s=4000 pysyncobj_ops_s=2000 etcd_ops_s=1000 ratio_vs_pysyncobj=2.00 "
             "ratio_vs_etcd=4.00 warmd_p99_ms=30.0 etcd_p99_ms=60.0 path=follower_client")


def rows_by_metric(report, run):
    return {row.metric: row for row in report.table_rows(run)}


def test_parse_keeps_numbers_and_text(report):
    """Numbers become floats, other values stay text, tokens without '=' are skipped."""
    figures = report.parse_last_line("a=1.5 b=nan path=follower_client junk c=")
    assert figures["a"] == 1.5
    assert figures["b"] != figures["b"]  # NaN
    assert figures["path"] == "follower_client"
    assert "junk" not in figures and figures["c"] == ""


def test_last_line_skips_trailing_blank_lines(report):
    """The last non-empty line is the contract line."""
    assert report.last_line("# table\nx=1 y=2\n\n  \n") == "x=1 y=2"
    assert report.last_line("") == ""


def test_rows_take_the_bench_ratio_and_its_spread(report):
    """A row shows ours, the peer, the bench's own ratio and its low-high range."""
    rows = rows_by_metric(report, report.BenchRun("warm_throughput", 0, WARM_LINE))
    redis = rows["Redis fill: runner vs `redis-benchmark -P 64 SET … EX` (keys/s)"]
    assert (redis.ours, redis.peer, redis.ratio, redis.spread, redis.target) == (
        "350,000", "500,000", "0.712", "0.5-0.9", "≥ 0.5")
    redis_py = rows["Redis: backend vs redis-py at its best (keys/s)"]
    assert (redis_py.ratio, redis_py.spread) == ("8", "—")


def test_missing_or_nan_figures_show_a_dash(report):
    """A NaN figure (a missing peer) or an absent key is a dash, not a number."""
    rows = rows_by_metric(report, report.BenchRun("warm_throughput", 0, WARM_LINE))
    memcached = rows["Memcached vs memcaslap, equal sizes (keys/s)"]
    assert (memcached.ours, memcached.peer, memcached.ratio) == ("—", "100,000", "—")
    assert rows["HTTP replay vs wrk, both pipelined 16 deep, nginx origin (req/s)"].ours == "—"


def test_ratio_computed_when_the_bench_prints_none(report):
    """Without a ratio key the ratio is ours / peer; alternatives after '|' are tried."""
    rows = rows_by_metric(report, report.BenchRun("raft_throughput", 0, RAFT_LINE))
    assert rows["Raft p99 vs etcd (ms, lower is better)"].ratio == "0.5"
    failover = report.BenchRun("failover", 0, "warmd_failover_ms_median=700 "
                               "etcd_failover_ms_median=1400")
    row = rows_by_metric(report, failover)[
        "Failover median vs etcd, same settings (ms, lower is better)"]
    assert (row.peer, row.ratio) == ("1,400", "0.5")


def test_failed_bench_rows_say_so(report):
    """A bench that exited non-zero keeps its rows, each saying it failed."""
    rows = report.table_rows(report.BenchRun("raft_throughput", 2, ""))
    assert len(rows) == 3
    assert all(row.ours == "failed (exit 2)" and row.ratio == "" for row in rows)


def test_bench_without_figures_or_spec(report):
    """Prose for a last line, or a bench no row describes, still gets a row."""
    silent = report.table_rows(report.BenchRun("metrics_scrape", 0, "on-loop median: 0.3"))
    assert [row.ours for row in silent] == ["no figures in its last line"]
    unknown = report.table_rows(report.BenchRun("new_bench", 0, "x=1"))
    assert [(row.bench, row.metric) for row in unknown] == [("new_bench", "(no headline)")]


def test_render_puts_machine_and_date_on_every_row(report):
    """One markdown table; each row carries the machine and date."""
    runs = [report.BenchRun("warm_throughput", 0, WARM_LINE),
            report.BenchRun("failover", 1, "")]
    table = report.render(runs, "2 cores", "2026-12-06 18:00 UTC")
    lines = table.splitlines()
    assert lines[0].startswith("| Bench | Metric | Ours | Peer | Ratio | Spread |")
    body = lines[2:]
    assert len(body) == 6 + 2  # the six warm_throughput rows, two for the failed failover
    assert all(line.endswith("| 2 cores | 2026-12-06 18:00 UTC |") for line in body)
    assert sum("failed (exit 1)" in line for line in body) == 2


DOC = "# Benchmarks\n\nIntro line one\nline two.\n\n## Warm-up throughput\n\n### History\n\nold\n"


def test_first_report_goes_after_the_intro(report):
    """Without markers the block lands after the title's paragraph; nothing else moves."""
    text = report.update_doc(DOC, "| t |", "## Latest report (A)")
    assert text.startswith("# Benchmarks\n\nIntro line one\nline two.\n\n<!-- report:begin -->\n"
                           "## Latest report (A)\n\n| t |\n<!-- report:end -->\n\n"
                           "## Warm-up throughput\n")
    assert "\n## History\n" not in text


def test_next_report_moves_the_old_one_to_history(report):
    """The replaced table moves under '## History' (newest first), not under a section's
    own '### History'."""
    first = report.update_doc(DOC, "| one |", "## Latest report (A)")
    second = report.update_doc(first, "| two |", "## Latest report (B)")
    third = report.update_doc(second, "| three |", "## Latest report (C)")
    head, _, history = third.partition("\n## History\n")
    assert "| three |" in head and "| one |" not in head and "| two |" not in head
    assert history.index("### Report (B)") < history.index("### Report (A)")
    assert history.index("| two |") < history.index("| one |")
    assert "### History\n\nold\n" in head


def test_saved_output_reads_back_as_it_ran(report, tmp_path, monkeypatch):
    """run_bench keeps exit status, last line, machine and date in its log, and --from-logs
    reads the same back; a script exiting non-zero is recorded, not raised (a stand-in
    script, no bench runs)."""
    monkeypatch.setattr(report, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(report, "LOG_DIR", tmp_path / "logs")
    (tmp_path / "fake.py").write_text(
        'import sys\nprint("# table")\nprint("a=1 b=2")\nprint("oops", file=sys.stderr)\n'
        "sys.exit(3)\n")
    ran = report.run_bench("fake", quick=True, machine="2 cores")
    assert (ran.returncode, ran.last_line) == (3, "a=1 b=2")
    saved = report.from_log("fake")
    assert (saved.returncode, saved.last_line, saved.machine) == (3, "a=1 b=2", "2 cores")
    assert saved.date.endswith(" UTC") and saved.date[:2] == "20"
    assert report.from_log("never_ran").returncode == -1


def test_rerunning_one_bench_keeps_the_other_rows(report):
    """--only: the rerun bench's rows replace its old ones in place; the others, with their
    own dates, stay; a bench new to the table goes last."""
    old_runs = [report.BenchRun("warm_throughput", 0, WARM_LINE),
                report.BenchRun("raft_throughput", 0, RAFT_LINE),
                report.BenchRun("failover", 0, "warmd_failover_ms_median=700")]
    doc = report.update_doc(DOC, report.render(old_runs, "2 cores", "OLD"), "## Latest report")
    kept = report.current_table(doc)
    assert len(kept) == 6 + 3 + 2
    faster = RAFT_LINE.replace("ratio_vs_etcd=4.00", "ratio_vs_etcd=5.00")
    fresh = report.render([report.BenchRun("raft_throughput", 0, faster),
                           report.BenchRun("new_bench", 0, "x=1")], "2 cores", "NEW")
    lines = report.splice(fresh, kept).splitlines()
    benches = [report.row_bench(line) for line in lines[2:]]
    assert benches == ["warm_throughput"] * 6 + ["raft_throughput"] * 3 + ["failover"] * 2 + [
        "new_bench"]
    assert all(line.endswith("| OLD |") for line in lines[2:8] + lines[11:13])
    assert all(line.endswith("| NEW |") for line in lines[8:11] + lines[13:])
    assert "| 5 |" in lines[8] and "| 4 |" not in "".join(lines[8:11])
