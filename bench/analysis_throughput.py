"""Log analysis throughput: warmd's parse + summarise against GoAccess and a bare baseline.

Generates a combined log (2M lines by default) in a temporary directory, then measures in the
same run: warmd (`summarise_files`, one worker per core), a bare single-process Python loop
(one regex match per line + a Counter of paths), and GoAccess on the same file. Peak RSS is
that of a separate `warmd analyze` process on the file. The last line is `name=value ...`.

On a shared machine the wall-clock figures move with other jobs' load (printed), so the run
also reports CPU-time rates: the bare loop's, and one warmd worker's on a quarter of the file
(`core_lines_s`); their ratio times the core count is what an idle machine would give.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from warmd.analysis.formats import COMBINED
from warmd.analysis.summary import SummaryConfig
from warmd.runtime.ingest.worker import _summarise_range, summarise_files
from warmd.testing.loggen import LogSpec, generate_lines

BARE = re.compile(r'(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+)[^"]*" (\d{3}) (\S+)')


def write_log(path: Path, lines: int, seed: int) -> int:
    """A combined log of about `lines` lines (several synthetic weeks end to end)."""
    days = max(1.0, lines / 200_000)
    written = 0
    with open(path, "w") as handle:
        for line in generate_lines(LogSpec(seed=seed, days=days, requests_per_day=200_000)):
            handle.write(line + "\n")
            written += 1
    return written


def bare_lines_s(path: Path) -> tuple[float, float]:
    """The bare baseline: one regex match per line and a Counter of paths (wall-clock and
    CPU-time lines/s)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    paths: Counter[str] = Counter()
    lines = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            lines += 1
            match = BARE.match(line)
            if match:
                paths[match.group(4)] += 1
    return (lines / (time.perf_counter() - started),
            lines / (time.process_time() - cpu_started))


def core_lines_s(path: Path) -> float:
    """CPU-time lines/s of one warmd worker (the byte-range path of summarise_files) on the
    first quarter of the file, in this process."""
    started = time.process_time()
    part = _summarise_range((str(path), 0, path.stat().st_size // 4, COMBINED, SummaryConfig()))
    return (part.lines + part.malformed) / (time.process_time() - started)


def warmd_lines_s(path: Path, lines: int, workers: int) -> float:
    """warmd's parse + summarise, one worker process per core."""
    started = time.perf_counter()
    summary = summarise_files([str(path)], "combined", workers=workers)
    elapsed = time.perf_counter() - started
    assert summary.lines + summary.malformed == lines, "warmd lost lines"
    return lines / elapsed


def goaccess_lines_s(path: Path, lines: int, workdir: Path) -> float:
    """GoAccess 1.x on the same file (JSON report to a temporary file), or 0 if missing."""
    binary = shutil.which("goaccess")
    if binary is None:
        return 0.0
    started = time.perf_counter()
    subprocess.run([binary, str(path), "--log-format=COMBINED", "-o", str(workdir / "r.json"),
                    "--no-progress"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return lines / (time.perf_counter() - started)


_RSS_PROBE = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def peak_rss_mb(path: Path) -> float:
    """Peak RSS of a `warmd analyze` process (and the workers it waits for) on the file.

    Measured from a fresh probe process: RUSAGE_CHILDREN of this process would also count
    GoAccess, which ran before."""
    probe = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, sys.executable, "-m", "warmd", "analyze", str(path),
         "--json"], check=True, capture_output=True, text=True)
    return int(probe.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--quick", action="store_true", help="200k lines (make bench)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    wanted = 200_000 if args.quick else args.lines
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        path = workdir / "access.log"
        lines = write_log(path, wanted, args.seed)
        load = os.getloadavg()[0]
        print(f"log: {lines:,} lines, {path.stat().st_size / 1e6:.0f} MB, "
              f"{args.workers} workers, {os.cpu_count()} cores, load average {load:.2f}")
        bare, bare_cpu = bare_lines_s(path)
        warmd = warmd_lines_s(path, lines, args.workers)
        core = core_lines_s(path)
        goaccess = goaccess_lines_s(path, lines, workdir)
        rss = peak_rss_mb(path)
    ratio_goaccess = warmd / goaccess if goaccess else 0.0
    print(f"warmd     {warmd:>12,.0f} lines/s")
    print(f"bare      {bare:>12,.0f} lines/s   warmd/bare     = {warmd / bare:.2f}")
    print(f"goaccess  {goaccess:>12,.0f} lines/s   warmd/goaccess = {ratio_goaccess:.2f}")
    print(f"peak RSS of `warmd analyze`: {rss:.0f} MB")
    print(f"CPU time: one warmd worker {core:,.0f} lines/s, bare {bare_cpu:,.0f} lines/s "
          f"(x {os.cpu_count()} cores = {core / bare_cpu * (os.cpu_count() or 1):.2f} of bare "
          "on an idle machine)")
    print(f"lines={lines} lines_s={warmd:.0f} goaccess_lines_s={goaccess:.0f} "
          f"ratio_vs_goaccess={ratio_goaccess:.2f} bare_lines_s={bare:.0f} "
          f"ratio_vs_bare={warmd / bare:.2f} peak_rss_mb={rss:.0f} load_1m={load:.2f} "
          f"core_lines_s={core:.0f} bare_cpu_lines_s={bare_cpu:.0f}")


if __name__ == "__main__":
    main()
