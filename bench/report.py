"""One table of every bench's headline figures, read from the last line each bench prints.

`python bench/report.py [--quick] [--only NAME ...]` runs the benches (`make bench` runs
them all with `--quick`), keeps each one's output in build/bench/NAME.log, parses its last
line (`name=value ...`: the contracts of issue 18) and writes ONE table between the report
markers at the top of docs/benchmarks.md; the table it replaces moves to the History
section. `--from-logs` renders from the saved outputs without running anything. With
`--only`, the other benches' rows of the current table stay as they were (each keeps its own
machine and date), so one bench can be rerun without rerunning them all.

A bench that fails, times out or prints no figures still gets its rows, saying so. A ratio
is the bench's own (its key in the last line) or ours / peer; its spread is the
`<ratio>_low`-`<ratio>_high` pair when the bench prints one (the convention of
warm_throughput.py: the range of the per-round ratios).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LOG_DIR = REPO / "build" / "bench"
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- report:begin -->", "<!-- report:end -->"
HISTORY = "## History"
TIMEOUT_S = 20 * 60


@dataclass(frozen=True, slots=True)
class Row:
    """One headline figure of a bench: keys in its last line ("" when there is none)."""

    bench: str
    metric: str
    ours: str = ""
    peer: str = ""  # alternatives separated by "|": the first present is used
    ratio: str = ""  # the bench's own ratio key; "" computes ours / peer
    target: str = ""


ROWS = (
    Row("warm_throughput", "Redis fill: runner vs `redis-benchmark -P 64 SET … EX` (keys/s)",
        "redis_runner_keys_s", "redis_benchmark_ttl_keys_s",
        "redis_runner_ratio_vs_redis_benchmark_ttl", "≥ 0.5"),
    Row("warm_throughput", "Redis: backend vs redis-py at its best (keys/s)", "redis_keys_s",
        "redis_py_keys_s", "redis_ratio_vs_redis_py", "≥ 5"),
    Row("warm_throughput", "Memcached vs memcaslap, equal sizes (keys/s)", "memcached_keys_s",
        "memcslap_keys_s", "memcached_ratio_vs_memcslap", "≥ 1"),
    Row("warm_throughput", "Memcached vs pymemcache set_many pool (keys/s)",
        "memcached_keys_s", "pymemcache_keys_s", "memcached_ratio_vs_pymemcache", "≥ 0.8"),
    Row("warm_throughput", "HTTP replay vs wrk, both pipelined 16 deep, nginx origin (req/s)",
        "http_pipelined_keys_s", "wrk_pipelined_keys_s", "http_ratio_vs_wrk", "≥ 0.5"),
    Row("warm_throughput", "HTTP replay vs wrk, neither pipelined (warmd's default) (req/s)",
        "http_keys_s", "wrk_keys_s", "http_unpipelined_ratio_vs_wrk"),
    Row("raft_throughput", "Raft writes vs etcd (ops/s)", "warmd_ops_s", "etcd_ops_s",
        "ratio_vs_etcd", "≥ 2"),
    Row("raft_throughput", "Raft writes vs PySyncObj (ops/s)", "warmd_ops_s", "pysyncobj_ops_s",
        "ratio_vs_pysyncobj", "≥ 1"),
    Row("raft_throughput", "Raft p99 vs etcd (ms, lower is better)", "warmd_p99_ms",
        "etcd_p99_ms", target="≤ 1"),
    Row("failover", "Failover median vs etcd, same settings (ms, lower is better)",
        "warmd_failover_ms_median", "etcd_same_settings_ms_median|etcd_failover_ms_median",
        target="≤ 1"),
    Row("failover", "Failover median vs etcd defaults (ms)", "warmd_failover_ms_median",
        "etcd_default_ms_median"),
    Row("analysis_throughput", "Analysis vs the bare loop, synthetic (lines/s)", "lines_s",
        "bare_lines_s", "ratio_vs_bare", "≥ 0.5"),
    Row("analysis_throughput", "Analysis vs the bare loop, real log", ratio="real_ratio_vs_bare",
        target="≥ 0.5"),
    Row("analysis_throughput", "Analysis vs GoAccess (lines/s)", "lines_s", "goaccess_lines_s",
        "ratio_vs_goaccess"),
    Row("analysis_throughput", "Analysis peak RSS (MB)", "peak_rss_mb"),
    Row("first_screen", "Origin queries, warmd / naive warmer",
        ratio="warmd_vs_naive_origin_ratio", target="< 1"),
    Row("prediction", "First-10 % hit rate vs best naive warmer", "warmd_first10",
        "best_naive_first10"),
    Row("cli_startup", "`warmctl status` vs bare interpreter start (ms)", "status_ms",
        "floor_ms"),
    Row("disk_fsync", "Group commit of 64 vs fsync each (entries/s)", "disk_entries_s_group64",
        "disk_entries_s_fsync_each", "group_commit_ratio"),
    Row("task_failover", "Task resume after owner killed, median (ms)", "resume_ms_median"),
    Row("idle_pickup", "Task pick-up median (ms)", "pickup_ms_median"),
    Row("raft_core", "Pure Raft core (entries per CPU second)", "entries_per_cpu_s"),
    Row("raft_memory", "Raft RSS max (MB)", "warmd_rss_mb_max"),
    Row("snapshot_stall", "Loop lag max while snapshotting (ms)", "snapshot_forked_lag_max_ms"),
    Row("big_state_cluster", "Elections while a big state is snapshotted", "elections"),
    Row("scale", "End to end keys/s through 3 nodes vs the bare runner (`--quick`: 100k keys)",
        "e2e_keys_s", "runner_keys_s", "ratio_vs_runner", "≥ 0.5 (at 1M)"),
    Row("scale", "Largest Raft record (bytes)", "max_entry_bytes", target="≤ 1 MiB"),
    Row("scale", "Leader RSS (MB)", "leader_rss_mb", target="≤ 500"),
    Row("scale", "Keys lost (missing, wrong value, task not SUCCEEDED)", "lost", target="0"),
    Row("scale", "Tasks started more than once", "duplicated", target="0"),
    Row("summary_traffic", "Replicated log growth, 100 hosts (MB/h)", "fleet_log_mb_h",
        target="< 100"),
    Row("console_load", "Slowest console page over 10,000 tasks, median (ms)", "worst_page_ms",
        target="≤ 300"),
    Row("console_load", "Leader CPU with 50 open event streams (% of a core)",
        "streams_cpu_pct", target="< 5"),
    Row("membership", "Commits/s with 24 learners / without (simulated, worst of 3-7 voters)",
        ratio="ratio_24_learners", target="≥ 0.8"),
    Row("membership", "p99 commit, 7 voters / 3 (simulated, worst of 0-24 learners)",
        ratio="p99_ratio_7_vs_3", target="≤ 2"),
    Row("membership", "Real: ops/s with 6 learners / without (3 voters, one machine)",
        "real_ops_s_6l", "real_ops_s_0l", "real_ratio_6_learners"),
)


@dataclass(frozen=True, slots=True)
class BenchRun:
    """What one bench left: its exit status and its last non-empty line of output."""

    bench: str
    returncode: int
    last_line: str
    machine: str = ""  # where and when it ran ("": the report's own)
    date: str = ""


@dataclass(frozen=True, slots=True)
class TableRow:
    bench: str
    metric: str
    ours: str
    peer: str
    ratio: str
    spread: str
    target: str


def parse_last_line(line: str) -> dict[str, float | str]:
    """`name=value` tokens; numbers as floats, anything else (e.g. `path=follower_client`)
    kept as text. Tokens without `=` are ignored."""
    figures: dict[str, float | str] = {}
    for token in line.split():
        name, sep, value = token.partition("=")
        if not sep or not name:
            continue
        try:
            figures[name] = float(value)
        except ValueError:
            figures[name] = value
    return figures


def last_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def number(figures: dict[str, float | str], keys: str) -> float | None:
    """The first of the `|`-separated keys that holds a number (NaN counts as absent)."""
    for key in keys.split("|") if keys else ():
        value = figures.get(key)
        if isinstance(value, float) and value == value:
            return value
    return None


def show(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table_rows(run: BenchRun, rows: tuple[Row, ...] = ROWS) -> list[TableRow]:
    """The rows of one bench's figures; a failed or silent bench gets its rows marked."""
    specs = [row for row in rows if row.bench == run.bench] or [Row(run.bench, "(no headline)")]
    figures = parse_last_line(run.last_line)
    numeric = any(isinstance(value, float) for value in figures.values())
    problem = (f"failed (exit {run.returncode})" if run.returncode != 0
               else "" if numeric else "no figures in its last line")
    result = []
    for spec in specs:
        if problem:
            result.append(TableRow(run.bench, spec.metric, problem, "", "", "", spec.target))
            continue
        ours, peer = number(figures, spec.ours), number(figures, spec.peer)
        ratio = number(figures, spec.ratio)
        if ratio is None and ours is not None and peer:
            ratio = ours / peer
        low, high = (number(figures, f"{spec.ratio}_low"), number(figures, f"{spec.ratio}_high")
                     ) if spec.ratio else (None, None)
        spread = f"{show(low)}-{show(high)}" if low is not None and high is not None else "—"
        result.append(TableRow(run.bench, spec.metric, show(ours), show(peer), show(ratio),
                               spread, spec.target))
    return result


def render(runs: list[BenchRun], machine: str, date: str) -> str:
    """The markdown table, machine and date on every row (rows get copied around alone)."""
    lines = ["| Bench | Metric | Ours | Peer | Ratio | Spread | Target | Machine | Date |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for row in table_rows(run):
            lines.append(f"| {row.bench} | {row.metric} | {row.ours} | {row.peer} | "
                         f"{row.ratio} | {row.spread} | {row.target} | "
                         f"{run.machine or machine} | {run.date or date} |")
    return "\n".join(lines)


def current_table(text: str) -> list[str]:
    """The rows (markdown lines) of the report table now between the markers."""
    if BEGIN not in text or END not in text:
        return []
    block = text.partition(BEGIN)[2].partition(END)[0]
    return [line for line in block.splitlines()
            if line.startswith("| ") and not line.startswith("| Bench |")]


def row_bench(line: str) -> str:
    return line.split("|")[1].strip()


def splice(table: str, kept: list[str]) -> str:
    """`table` (fresh rows of some benches) merged into the `kept` rows of the current
    table: a rerun bench's rows take the place of its old ones, a new bench's go last."""
    header, fresh = table.splitlines()[:2], table.splitlines()[2:]
    rerun = {row_bench(line) for line in fresh}
    lines: list[str] = []
    for line in kept:
        bench = row_bench(line)
        if bench not in rerun:
            lines.append(line)
        elif not any(row_bench(done) == bench for done in lines):
            lines.extend(row for row in fresh if row_bench(row) == bench)
    lines.extend(row for row in fresh if row not in lines)
    return "\n".join(header + lines)


def update_doc(text: str, table: str, heading: str) -> str:
    """Put `table` between the markers (right after the title's paragraph when there are
    none yet); the report found there before moves to the top of the History section
    (created at the end of the document when missing)."""
    block = f"{BEGIN}\n{heading}\n\n{table}\n{END}"
    if BEGIN not in text or END not in text:
        title, _, body = text.partition("\n\n")
        intro, _, rest = body.partition("\n\n")
        return f"{title}\n\n{intro}\n\n{block}\n\n{rest}"
    before, _, rest = text.partition(BEGIN)
    old, _, after = rest.partition(END)
    text = before + block + after
    if not old.strip():
        return text
    history = re.search(rf"^{HISTORY}\n", text, re.MULTILINE)
    if history is None:
        return text.rstrip("\n") + f"\n\n{HISTORY}\n\n{_demote(old.strip())}\n"
    return (text[:history.end()] + "\n" + _demote(old.strip()) + "\n"
            + text[history.end():])


def _demote(old_block: str) -> str:
    """An old report under History: its heading one level down."""
    return old_block.replace("## Latest report", "### Report", 1)


def machine_description() -> str:
    """Cores, Python and the 1-minute load average when a bench starts: the benches' own
    work raises it too, so only a figure well above that (other work) marks a loaded run."""
    load = os.getloadavg()[0]
    return (f"{os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load {load:.1f} at its start")


def run_bench(name: str, quick: bool, machine: str) -> BenchRun:
    """Run one bench, save its output, return its last line; never raises for a failure."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"{name}.py"
    # A bench without a --quick mode (its defaults are already short) runs as it is.
    quick_flag = ["--quick"] if quick and '"--quick"' in path.read_text() else []
    command = [sys.executable, str(path), *quick_flag]
    print(f"== {name} {' '.join(quick_flag)}", flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                              cwd=REPO, check=False)
        output, returncode = done.stdout + done.stderr, done.returncode
        line = last_line(done.stdout)
    except subprocess.TimeoutExpired as error:
        output, returncode, line = str(error.stdout or ""), -1, ""
    header = f"# exit {returncode}\n# last: {line}\n# machine: {machine}\n# date: {now()}\n"
    (LOG_DIR / f"{name}.log").write_text(header + output)
    print(f"   exit {returncode} after {time.monotonic() - started:.0f} s: {line[:120]}",
          flush=True)
    return BenchRun(name, returncode, line)


def from_log(name: str) -> BenchRun:
    """A bench's saved output (as run_bench wrote it)."""
    path = LOG_DIR / f"{name}.log"
    if not path.exists():
        return BenchRun(name, -1, "")
    header = re.match(r"# exit (-?\d+)\n# last: (.*)\n# machine: (.*)\n# date: (.*)\n",
                      path.read_text())
    if header is None:
        return BenchRun(name, -1, "")
    return BenchRun(name, int(header.group(1)), header.group(2), header.group(3),
                    header.group(4))


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def bench_names() -> list[str]:
    """Every script in bench/ that runs (a `__main__` block; not a helper module such as
    svg_plot), but this one and the probes (`*_probe.py`: measurements run by hand that
    need libraries warmd does not depend on, e.g. polars)."""
    return sorted(path.stem for path in BENCH_DIR.glob("[a-z]*.py")
                  if path.stem != "report" and not path.stem.endswith("_probe")
                  and 'if __name__ == "__main__":' in path.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run every bench with --quick")
    parser.add_argument("--only", action="append", choices=bench_names(),
                        help="run only these benches (repeatable)")
    parser.add_argument("--from-logs", action="store_true",
                        help="render from build/bench/*.log instead of running")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()
    names = args.only or bench_names()
    text = args.doc.read_text()  # before the benches run: a wrong path fails at once
    machine = machine_description()
    runs = [from_log(name) if args.from_logs
            else run_bench(name, args.quick, machine_description()) for name in names]
    date = now()
    mode = ("from saved outputs" if args.from_logs else "`--quick`" if args.quick
            else "full runs")
    table = render(runs, machine, date)
    if args.only:
        table = splice(table, current_table(text))
        mode += f" of {', '.join(names)}; the other rows as they were, each with its date"
    heading = f"## Latest report ({date}, {mode}, `make bench` / `bench/report.py`)"
    args.doc.write_text(update_doc(text, table, heading))
    failed = [run.bench for run in runs if run.returncode != 0]
    print(f"wrote {args.doc}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
