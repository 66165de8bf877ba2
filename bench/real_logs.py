"""`warmd backtest` on the real logs in ../shared/data: warmd against the naive warm sets.

For each log and replayed day it runs what `warmd backtest LOG --capacity C --split DAY
--until NEXT_DAY` runs (the same functions, the log parsed once per log): an LRU of C keys
preloaded with each warm set (cold, most frequent, most recent, warmd, oracle) replays the
day; the figure is the hits in its first 10 %. C is a fifth of the day's distinct keys
unless the row says otherwise. The logs are read where they are, never copied. Hit counts
are deterministic (no timing), so nothing is interleaved; the last line is `name=value ...`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from warmd.analysis.formats import Record
from warmd.cli.analyze import parse_instant_s
from warmd.rules.backtest import backtest
from warmd.runtime.ingest.worker import read_records, summarise_records

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "accesslogs"
NASA_FORMAT = (r"regex:^(?P<time>[^|]+)\|&\|(?P<client>[^|]*)\|&\|(?:[^|]*\|&\|){4}"
               r"(?P<target>[^|]*)\|&\|(?P<status>\d+)")
NAIVE = ("most_frequent", "most_recent")


@dataclass(frozen=True)
class Row:
    """One replayed day of one log (capacity 0: a fifth of the day's distinct keys)."""

    log: str
    path: str
    day: str
    capacity: int = 0
    horizon_s: float | None = None


def _days(first: str, count: int) -> list[str]:
    start = datetime.fromisoformat(first)
    return [(start + timedelta(days=n)).date().isoformat() for n in range(count)]


ROWS = (
    *[Row("netnea", "netnea-wordpress-2015/labor-04-example-access.log.gz", day)
      for day in _days("2015-09-20", 10)],
    Row("elastic", "elastic-apache-2015/apache_logs.gz", "2015-05-19", 97),
    Row("elastic", "elastic-apache-2015/apache_logs.gz", "2015-05-20", 80),
    Row("lpdaac", "lpdaac-opendap-2015-2017/logs_for_opendap.txt.gz", "2016-05-18", 986, 86_400),
    Row("lpdaac", "lpdaac-opendap-2015-2017/logs_for_opendap.txt.gz", "2016-05-18", 1_971),
    Row("lpdaac", "lpdaac-opendap-2015-2017/logs_for_opendap.txt.gz", "2016-05-14", 1_738),
    Row("lpdaac", "lpdaac-opendap-2015-2017/logs_for_opendap.txt.gz", "2016-05-19", 1_400),
)


def replay_day(records: list[Record], row: Row) -> dict[str, int | str]:
    """Hits in the first 10 % of the day per strategy, as `warmd backtest` counts them."""
    split_s = parse_instant_s(f"{row.day}T00:00:00+00:00")
    history = [r for r in records if r.time_s < split_s]
    future = [r for r in records if split_s <= r.time_s < split_s + 86_400]
    summary = summarise_records(history)
    capacity = row.capacity or max(1, len({r.target for r in future}) // 5)
    report = backtest(summary, history, future, capacity, row.horizon_s)
    first = max(1, report.replay_requests // 10)
    hits = {r.name: round(r.hit_rate_first_10pct * first) for r in report.results}
    return {"log": row.log, "day": row.day, "capacity": capacity, "first": first, **hits}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", nargs="*", default=["netnea", "elastic", "lpdaac"])
    args = parser.parse_args()
    records: dict[str, list[Record]] = {}
    print("| log | day | capacity | first 10 % | cold | most frequent | most recent | "
          "**warmd** | oracle |")
    print("|---|---|---|---|---|---|---|---|---|")
    below = 0
    for row in ROWS:
        if row.log not in args.logs:
            continue
        if row.path not in records:
            log_format = NASA_FORMAT if row.log == "lpdaac" else None
            records[row.path] = read_records([str(DATA / row.path)], log_format).records
        out = replay_day(records[row.path], row)
        best = max(int(out[name]) for name in NAIVE)
        below += int(out["warmd"]) < best
        print(f"| {out['log']} | {out['day']} | {out['capacity']:,} | {out['first']:,} | "
              f"{out['cold']} | {out['most_frequent']} | {out['most_recent']} | "
              f"**{out['warmd']}**{' (below)' if int(out['warmd']) < best else ''} | "
              f"{out['oracle']} |", flush=True)
    print(f"days_below_best_naive={below}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
