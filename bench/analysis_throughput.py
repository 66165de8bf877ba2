"""Log analysis throughput: warmd's parse + summarise against a bare loop and GoAccess, per core.

Logs: a synthetic combined log (`warmd.testing.loggen`) and the real NASA LP DAAC OPeNDAP
export in ../shared/data (read in place; repeated into a temporary file to reach the size), at
200k lines (`--quick`) and 2M lines. Contenders, each on ONE core and on TWO:
- warmd: `summarise_files` (what `warmd analyze` runs) with 1 and 2 worker processes;
- bare: one regex match per line and a `Counter` of paths; on two cores, two processes each
  on half of the file (byte ranges) and their Counters added;
- GoAccess: on the whole file, and two GoAccess processes at once on the two halves.

Every figure is measured in a fresh process (no cache or interpreter warmed by an earlier
round), rounds interleave the contenders, and the medians are printed with their spread
(min-max). Ratios compare medians of one log and size. The wall clock moves with other jobs'
load on a shared machine; the one-core runs also report CPU time. Peak RSS is that of a
separate `warmd analyze --json` process (default workers) on the largest log of each kind and
on the whole LP DAAC `.gz` as users have it: the largest process (main or pool worker), by
the VmHWM of each process of the tree.

The last line is `name=value ...`: `ratio_vs_bare` (synthetic, one core each),
`real_ratio_vs_bare` (LP DAAC, one core each), `real_gz_peak_rss_mb` (the whole LP DAAC
`.gz`) and `peak_rss_mb` (the largest of the peaks measured).
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from warmd.runtime.ingest.worker import summarise_files
from warmd.testing.loggen import LogSpec, generate_lines

REAL_LOG = Path(__file__).resolve().parents[2] / "shared" / "data" / "accesslogs" / \
    "lpdaac-opendap-2015-2017" / "logs_for_opendap.txt.gz"


@dataclass(frozen=True)
class LogKind:
    """One kind of log: how warmd, the bare loop and GoAccess are told to read it."""

    name: str
    spec: str  # warmd's --format
    bare: str  # the bare loop's regex; its group `path` is counted
    goaccess: tuple[str, ...]


SYNTHETIC = LogKind(
    "synthetic", "combined",
    r'(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (?P<path>\S+)[^"]*" (\d{3}) (\S+)',
    ("--log-format=COMBINED",))
# The LP DAAC export: no client address (GoAccess takes the hashed user id as its host).
LPDAAC = LogKind(
    "lpdaac",
    r"regex:^(?P<time>[^|]+)\|&\|(?P<client>[^|]*)\|&\|(?:[^|]*\|&\|){4}(?P<target>[^|]*)"
    r"\|&\|(?P<status>\d+)",
    r"^([^|]+)\|&\|([^|]*)\|&\|(?:[^|]*\|&\|){4}(?P<path>[^|]*)\|&\|(\d+)",
    ("--log-format=%d %t|&|%h|&|%^|&|%^|&|%^|&|%^|&|%U|&|%s|&|%b", "--date-format=%Y-%m-%d",
     "--time-format=%I:%M%p", "--no-ip-validation"))
KINDS = {kind.name: kind for kind in (SYNTHETIC, LPDAAC)}
CONTENDERS = ("warmd", "bare", "goaccess")


@dataclass(frozen=True)
class Run:
    """One timed run: wall-clock seconds, and CPU seconds of a one-process run (else 0)."""

    wall_s: float
    cpu_s: float


# -- the logs ---------------------------------------------------------------------------------

def write_synthetic(path: Path, lines: int, seed: int = 1) -> int:
    """A combined log of `lines` lines (several synthetic weeks end to end)."""
    days = max(1.0, lines / 200_000)
    written = 0
    with open(path, "w") as handle:
        for line in generate_lines(LogSpec(seed=seed, days=days, requests_per_day=200_000)):
            handle.write(line + "\n")
            written += 1
            if written == lines:
                break
    return written


def write_real(path: Path, lines: int) -> int:
    """The first `lines` lines of the LP DAAC export, repeated end to end when it is shorter
    (read from ../shared/data in place; the copy lives in the bench's temporary directory)."""
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < lines:
            with gzip.open(REAL_LOG, "rt", encoding="utf-8", errors="replace") as source:
                for line in source:
                    out.write(line)
                    written += 1
                    if written == lines:
                        break
    return written


def halves(path: Path) -> tuple[Path, Path]:
    """The file cut in two at the line boundary nearest the middle (for two GoAccess)."""
    data = path.read_bytes()
    middle = data.index(b"\n", len(data) // 2) + 1
    first, second = path.with_suffix(".1"), path.with_suffix(".2")
    first.write_bytes(data[:middle])
    second.write_bytes(data[middle:])
    return first, second


# -- one contender, run in a fresh process (`--one`) --------------------------------------------

def run_warmd(path: Path, kind: LogKind, cores: int) -> int:
    """warmd's parse + summarise with `cores` worker processes; the lines it accounted for."""
    summary = summarise_files([str(path)], kind.spec, workers=cores)
    return summary.lines + summary.malformed


def bare_range(job: tuple[str, str, int, int]) -> Counter[str]:
    """The bare loop over the lines that start in [start, end) of a file."""
    path, pattern, start, end = job
    regex = re.compile(pattern)
    paths: Counter[str] = Counter()
    with open(path, "rb") as handle:
        if start:
            handle.seek(start - 1)
            handle.readline()
        text = handle.read(max(0, end - handle.tell()))
        if text and not text.endswith(b"\n"):
            text += handle.readline()  # finish the last line that starts in the range
    for line in text.decode("utf-8", "replace").split("\n"):
        match = regex.match(line)
        if match:
            paths[match.group("path")] += 1
    return paths


def bare_whole(path: Path, pattern: str) -> Counter[str]:
    """The bare loop on one core: a regex match per line of the file, a Counter of paths."""
    regex = re.compile(pattern)
    paths: Counter[str] = Counter()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = regex.match(line)
            if match:
                paths[match.group("path")] += 1
    return paths


def run_bare(path: Path, kind: LogKind, cores: int) -> int:
    """The bare loop on one core, or two processes on the two halves; the paths counted."""
    if cores == 1:
        return sum(bare_whole(path, kind.bare).values())
    size = path.stat().st_size
    jobs = [(str(path), kind.bare, size * part // cores, size * (part + 1) // cores)
            for part in range(cores)]
    with multiprocessing.get_context("forkserver").Pool(cores) as pool:
        total: Counter[str] = Counter()
        for part in pool.map(bare_range, jobs):
            total.update(part)
    return sum(total.values())


def one(contender: str, path: Path, kind: LogKind, cores: int) -> None:
    """Time one contender in this (fresh) process and print `wall cpu count` (warmd's
    modules are imported before the clock starts, as a daemon or `warmd analyze` has them)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    count = (run_warmd if contender == "warmd" else run_bare)(path, kind, cores)
    print(time.perf_counter() - started, time.process_time() - cpu_started, count)


def timed(contender: str, path: Path, kind: LogKind, cores: int,
          parts: tuple[Path, Path] | None) -> Run:
    """One run of a contender on `cores` cores, in fresh processes."""
    if contender == "goaccess":
        return goaccess_run(path, kind, cores, parts)
    out = subprocess.run([sys.executable, __file__, "--one", contender, str(path), kind.name,
                          str(cores)], check=True, capture_output=True, text=True).stdout
    wall, cpu, _count = out.split()
    return Run(float(wall), float(cpu) if cores == 1 else 0.0)


def goaccess_run(path: Path, kind: LogKind, cores: int,
                 parts: tuple[Path, Path] | None) -> Run:
    """GoAccess (JSON report to a temporary file) on the file, or two at once on its halves."""
    binary = shutil.which("goaccess")
    if binary is None:
        return Run(0.0, 0.0)
    files = [path] if cores == 1 or parts is None else list(parts)
    started = time.perf_counter()
    running = [subprocess.Popen([binary, str(name), *kind.goaccess, "--no-progress", "-o",
                                 str(name.with_suffix(".json"))],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for name in files]
    for process in running:
        if process.wait() != 0:
            raise RuntimeError(f"goaccess failed on {path} ({kind.name})")
    return Run(time.perf_counter() - started, 0.0)


def _descendants(root: int) -> list[int]:
    """The process ids under `root` (from /proc: pool workers are the forkserver's children,
    not the analysing process's)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_probe(command: list[str]) -> None:
    """Run `command` and print the peak RSS (kB) of its largest process: the VmHWM of the
    command and every process under it, sampled every 0.2 s, or the rusage maximum of the
    waited children when that is larger (a process that peaked just before it ended)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max([peak, _hwm_kb(process.pid)] + [_hwm_kb(pid) for pid in
                                                    _descendants(process.pid)])
        time.sleep(0.2)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    print(max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))


def peak_rss_mb(path: Path, kind: LogKind) -> float:
    """Peak RSS of the largest process (main, or a pool worker) of a `warmd analyze --json`
    run on the file, measured by a fresh probe process, so that no earlier child counts."""
    probe = subprocess.run(
        [sys.executable, __file__, "--rss-probe", sys.executable, "-m", "warmd", "analyze",
         str(path), "--format", kind.spec, "--json"], check=True, capture_output=True, text=True)
    return int(probe.stdout.split()[-1]) / 1024


# -- the bench --------------------------------------------------------------------------------

Key = tuple[str, int, str, int]  # log kind, lines, contender, cores


def rates(runs: list[Run], lines: int) -> tuple[float, float, float]:
    """Median, min and max lines/s of the runs."""
    values = [lines / run.wall_s for run in runs if run.wall_s > 0]
    if not values:
        return 0.0, 0.0, 0.0
    return statistics.median(values), min(values), max(values)


def cpu_rate(runs: list[Run], lines: int) -> float:
    """Median CPU-time lines/s of one-process runs."""
    values = [lines / run.cpu_s for run in runs if run.cpu_s > 0]
    return statistics.median(values) if values else 0.0


def measure(logs: dict[tuple[str, int], Path], rounds: int,
            core_counts: tuple[int, ...]) -> dict[Key, list[Run]]:
    """Every contender on every log, on one and on two cores, rounds interleaved."""
    parts = {key: halves(path) for key, path in logs.items()}
    results: dict[Key, list[Run]] = {}
    for number in range(rounds):
        load = os.getloadavg()[0]
        print(f"round {number + 1}/{rounds} (load average {load:.1f})", flush=True)
        for (name, lines), path in logs.items():
            for contender in CONTENDERS:
                for cores in core_counts:
                    run = timed(contender, path, KINDS[name], cores, parts[(name, lines)])
                    results.setdefault((name, lines, contender, cores), []).append(run)
    return results


def ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def report(results: dict[Key, list[Run]], sizes: list[int], names: list[str],
           core_counts: tuple[int, ...]) -> dict[str, float]:
    """Print the table; the ratios of the largest size, one core each, for the last line."""
    print(f"{'log':<10} {'lines':>9} {'contender':<9} {'cores':>5} {'median lines/s':>15} "
          f"{'min-max':>23} {'CPU lines/s':>12}")
    for (name, lines, contender, cores), runs in results.items():
        median, low, high = rates(runs, lines)
        cpu = cpu_rate(runs, lines)
        print(f"{name:<10} {lines:>9,} {contender:<9} {cores:>5} {median:>15,.0f} "
              f"{f'{low:,.0f}-{high:,.0f}':>23} {cpu:>12,.0f}")
    figures: dict[str, float] = {}
    for name in names:
        for lines in sizes:
            def med(contender: str, cores: int, name: str = name, lines: int = lines) -> float:
                return rates(results[(name, lines, contender, cores)], lines)[0]
            line = {f"{cores}core_vs_{peer}": ratio(med("warmd", cores), med(peer, cores))
                    for cores in core_counts for peer in ("bare", "goaccess")}
            cpu = ratio(cpu_rate(results[(name, lines, "warmd", 1)], lines),
                        cpu_rate(results[(name, lines, "bare", 1)], lines))
            print(f"{name} {lines:,} lines: " + "  ".join(
                f"warmd/{key.split('_vs_')[1]} on {key[0]} core(s) {value:.3f}"
                for key, value in line.items()) + f"  (CPU time, 1 core: {cpu:.3f})")
            if lines == sizes[-1]:
                figures.update({f"{name}_{key}": value for key, value in line.items()})
                figures[f"{name}_cpu_ratio_vs_bare"] = cpu
                figures[f"{name}_lines_s"] = med("warmd", 1)
                figures[f"{name}_bare_lines_s"] = med("bare", 1)
                figures[f"{name}_goaccess_lines_s"] = med("goaccess", 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="200k lines only (make bench)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logs", nargs="+", choices=sorted(KINDS), default=sorted(KINDS,
                        reverse=True))
    parser.add_argument("--cores", type=int, nargs="+", choices=(1, 2), default=[1, 2],
                        help="one core, two, or both (default)")
    parser.add_argument("--one", nargs=4, metavar=("CONTENDER", "PATH", "KIND", "CORES"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--rss-probe", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_probe:
        rss_probe(args.rss_probe)
        return
    if args.one:
        contender, path, kind, cores = args.one
        one(contender, Path(path), KINDS[kind], int(cores))
        return
    if 1 not in args.cores:
        parser.error("--cores must include 1 (the last line's ratios are one core each)")
    sizes = [200_000] if args.quick else sorted(args.sizes)
    if "lpdaac" in args.logs and not REAL_LOG.exists():
        sys.exit(f"the LP DAAC log is not at {REAL_LOG}")
    with tempfile.TemporaryDirectory() as directory:
        logs: dict[tuple[str, int], Path] = {}
        for name in args.logs:
            for lines in sizes:
                path = Path(directory, f"{name}-{lines}.log")
                written = (write_synthetic if name == "synthetic" else write_real)(path, lines)
                assert written == lines, f"{name}: {written} lines, wanted {lines}"
                logs[(name, lines)] = path
        print(f"logs: {', '.join(f'{n} {s:,}' for n, s in logs)}; {os.cpu_count()} cores, "
              f"{args.rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f}")
        results = measure(logs, args.rounds, tuple(args.cores))
        rss = {name: peak_rss_mb(logs[(name, sizes[-1])], KINDS[name]) for name in args.logs}
        if "lpdaac" in args.logs:  # the whole export as users have it: gzip, read in place
            rss["lpdaac .gz, all"] = peak_rss_mb(REAL_LOG, LPDAAC)
    figures = report(results, sizes, args.logs, tuple(args.cores))
    for name, value in rss.items():
        lines = "478,755" if name.endswith("all") else f"{sizes[-1]:,}"
        print(f"peak RSS of `warmd analyze` on {name} {lines} lines: {value:.0f} MB")
    fields = {"lines": sizes[-1], "load_1m": round(os.getloadavg()[0], 2)}
    fields.update({key: round(value, 3) for key, value in figures.items()})
    if "synthetic" in args.logs:
        fields["ratio_vs_bare"] = round(figures["synthetic_1core_vs_bare"], 3)
        fields["ratio_vs_goaccess"] = round(figures["synthetic_1core_vs_goaccess"], 3)
        for key in ("lines_s", "bare_lines_s", "goaccess_lines_s"):  # what bench/report.py reads
            fields[key] = round(figures[f"synthetic_{key}"])
    if "lpdaac" in args.logs:
        fields["real_ratio_vs_bare"] = round(figures["lpdaac_1core_vs_bare"], 3)
    if "lpdaac" in args.logs:
        fields["real_gz_peak_rss_mb"] = round(rss["lpdaac .gz, all"])
    fields["peak_rss_mb"] = round(max(rss.values()))
    print(" ".join(f"{key}={value}" for key, value in fields.items()))


if __name__ == "__main__":
    main()
