"""Summary traffic through Raft per host per hour, and what a fleet's log gains from it.

One host's real log pipeline (a real analysis worker process, the real wire encoder) tails a
generated e-commerce API log (warmd.testing.apilog) on a manual clock: the history is in the
file at start, then the lines of one busy hour are appended second by second, in their own
time order, while the pipeline polls every second and ships as its cadence says. Every
`ReportSummary` it proposes is counted: entries, and bytes (summary plus the command's
envelope as the log stores it). Each host ships on its own, so a fleet's log grows by hosts
x one host's bytes; the state keeps only the newest report per (host, source), so snapshots
hold hosts x one summary whatever the hour's traffic.

The peer is our previous policy (ship every `ship_interval_ms` whenever a line came in,
`ship_change_ratio = 0`), run on the same lines: there is no external peer for this. Virtual
time makes both runs exact; the machine's load changes only how long the bench takes.

Last line: `hosts=100 per_host_mb_h=... fleet_log_mb_h=... ships_per_h=... summary_kb=...
previous_fleet_log_mb_h=... ratio_vs_previous=...`

Usage: python bench/summary_traffic.py [--quick] [--per-day N] [--history-days D] [--hosts H]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warmd.clock import ManualClock
from warmd.config import AnalysisConfig, SourceConfig
from warmd.runtime.ingest.pipeline import LogPipeline
from warmd.statemachine.commands import encode_command
from warmd.statemachine.summaries import ReportSummary
from warmd.testing.apilog import ZONE, ApiLogSpec, generate_api_lines

BUSY_HOUR = 14  # local hour measured (the log's afternoon peak)


@dataclass
class Traffic:
    ships: int = 0
    entry_bytes: int = 0
    last_summary_bytes: int = 0

    def restart(self) -> None:
        """Count from here on (the summary's size is kept: the last one still stands)."""
        self.ships = self.entry_bytes = 0

    async def propose(self, report: ReportSummary) -> int:
        self.ships += 1
        self.entry_bytes += len(encode_command(report))
        self.last_summary_bytes = len(report.data)
        return report.sequence


def _stamp(line: str) -> float:
    """The line's time (combined format, +0800) as epoch seconds."""
    text = line.split("[", 1)[1].split("]", 1)[0]
    return datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z").timestamp()


def split_log(spec: ApiLogSpec, hour_start: datetime) -> tuple[list[str], list[list[str]]]:
    """The history before `hour_start`, and the hour's lines per second."""
    begin_s, history, seconds = hour_start.timestamp(), [], [[] for _ in range(3600)]
    for line in generate_api_lines(spec):
        at_s = _stamp(line)
        if at_s < begin_s:
            history.append(line)
        elif at_s < begin_s + 3600:
            seconds[int(at_s - begin_s)].append(line)
        else:
            break
    return history, seconds


async def one_hour(history: list[str], seconds: list[list[str]], settings: AnalysisConfig,
                   directory: Path) -> Traffic:
    """The pipeline reads the history, ships once, then lives through the hour."""
    log = directory / "access.log"
    log.write_text("\n".join(history) + "\n")
    clock = ManualClock()
    traffic = Traffic()
    source = SourceConfig("api", (str(log),), "combined", None, ())
    pipeline = LogPipeline(1, [source], settings, traffic.propose, clock=clock)
    try:
        while await pipeline.poll_once():
            pass
        await pipeline.ship_once()  # the history's report: what a running host already has
        traffic.restart()
        with log.open("a") as handle:
            for lines in seconds:
                handle.writelines(line + "\n" for line in lines)
                handle.flush()
                clock.advance(1.0)
                await pipeline.poll_once()
                await pipeline.ship_due()
        return traffic
    finally:
        pipeline.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k requests a day, one day")
    parser.add_argument("--per-day", type=int, default=300_000, help="requests a day per host")
    parser.add_argument("--history-days", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--skip-previous", action="store_true",
                        help="only the cadence (the previous policy encodes 360 summaries)")
    args = parser.parse_args()
    if args.quick:
        args.per_day, args.history_days = 100_000, 1
    spec = ApiLogSpec(days=args.history_days + 1, requests_per_day=args.per_day)
    start = spec.start.astimezone(ZONE)
    hour = (start + timedelta(days=args.history_days)).replace(hour=BUSY_HOUR)
    history, seconds = split_log(spec, hour)
    print(f"history {len(history):,} lines; the hour {hour:%Y-%m-%d %H:00 %z}: "
          f"{sum(map(len, seconds)):,} lines", flush=True)
    default = AnalysisConfig()
    previous = AnalysisConfig(ship_interval_ms=default.ship_interval_ms,
                              poll_interval_ms=default.poll_interval_ms,
                              ship_change_ratio=0.0)
    results = {}
    policies = [("cadence", default)] + ([] if args.skip_previous else [("previous", previous)])
    for name, settings in policies:
        with tempfile.TemporaryDirectory() as directory:
            traffic = asyncio.run(one_hour(history, seconds, settings, Path(directory)))
        results[name] = traffic
        print(f"{name:9} ships={traffic.ships} entry_mb={traffic.entry_bytes / 1e6:.2f} "
              f"summary_kb={traffic.last_summary_bytes / 1e3:.1f}", flush=True)
    ours, before = results["cadence"], results.get("previous")
    per_host_mb = ours.entry_bytes / 1e6
    compared = "" if before is None else (
        f" previous_fleet_log_mb_h={before.entry_bytes * args.hosts / 1e6:.1f} "
        f"ratio_vs_previous={ours.entry_bytes / max(before.entry_bytes, 1):.3f}")
    print(f"hosts={args.hosts} per_host_mb_h={per_host_mb:.2f} "
          f"fleet_log_mb_h={per_host_mb * args.hosts:.1f} ships_per_h={ours.ships} "
          f"summary_kb={ours.last_summary_bytes / 1e3:.1f} "
          f"snapshot_summaries_mb={ours.last_summary_bytes * args.hosts / 1e6:.1f}{compared}")


if __name__ == "__main__":
    main()
