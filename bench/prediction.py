"""Prediction against naive warmers on a held-out-style API log (warmd/testing/apilog.py).

Writes the seeded 8-day e-commerce API log (+08:00), then, as a new user would, runs
`warmd predict LOG --budget B --at <local midnight of the last day> --horizon 6h` in its own
process (wall time and peak RSS measured) and replays the last day through an LRU of B keys
preloaded with each warm set, scoring the first 10 % of the day:

* cold (nothing warmed), oracle (the day's B most requested keys);
* naive: the last day's top keys, decayed frequency (half-life one day), the same window
  yesterday (the keys asked in [at - 24h, at - 24h + horizon), most asked first);
* warmd.

B is a fifth of the last day's distinct keys unless --budget says otherwise. The cache keys on
the request with its query sorted and the `_` cache-buster left out (what the service's cache
does), for every warm set alike. The last line is `name=value ...`.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from warmd.analysis.formats import COMBINED, LineParser, Record
from warmd.rules.backtest import simulate_lru
from warmd.testing.apilog import ZONE, ApiLogSpec, generate_api_lines

HALF_LIFE_S = 86_400.0


def cache_key(target: str) -> str:
    """The service's cache key: the path and the sorted query without the `_` buster."""
    path, _, query = target.partition("?")
    kept = sorted(p for p in query.split("&") if p and not p.startswith("_="))
    return path + ("?" + "&".join(kept) if kept else "")


def cacheable(record: Record) -> bool:
    return record.method == "GET" and 200 <= record.status < 300


def naive_sets(history: list[Record], at_s: float, horizon_s: float,
               budget: int) -> dict[str, list[str]]:
    """The naive warm sets a shell script could compute from the same history."""
    last_day = Counter(cache_key(r.target) for r in history if r.time_s >= at_s - 86_400)
    same_window = Counter(cache_key(r.target) for r in history
                          if at_s - 86_400 <= r.time_s < at_s - 86_400 + horizon_s)
    decayed: Counter[str] = Counter()
    for r in history:
        decayed[cache_key(r.target)] += 2.0 ** ((r.time_s - at_s) / HALF_LIFE_S)
    return {name: [k for k, _ in counter.most_common(budget)]
            for name, counter in (("last_day_top", last_day), ("decayed_frequency", decayed),
                                  ("same_window_yesterday", same_window))}


def run_predict(log: Path, budget: int, at: str, horizon: str) -> tuple[list[str], float, float]:
    """warmd's warm set (cache keys, best first), its wall time and the child's peak RSS."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "warmd", "predict", str(log), "--budget",
                           str(budget), "--at", at, "--horizon", horizon],
                          capture_output=True, text=True, check=True)
    wall_s = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    keys = [cache_key(line.split(" ", 1)[1]) for line in done.stdout.splitlines() if line]
    return list(dict.fromkeys(keys)), wall_s, rss_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--budget", type=int, default=0, help="default: 1/5 of distinct keys")
    parser.add_argument("--horizon", default="6h")
    parser.add_argument("--log", type=Path, default=None, help="keep the log here")
    args = parser.parse_args()
    spec = ApiLogSpec(seed=args.seed, days=args.days)
    with tempfile.TemporaryDirectory(prefix="warmd-prediction-") as tmp:
        log = args.log or Path(tmp) / "api.log"
        log.write_text("\n".join(generate_api_lines(spec)) + "\n")
        records = LineParser(COMBINED).parse_many(log.read_text().splitlines())
        at_local = spec.start.replace(tzinfo=ZONE) + (spec.days - 1) * (
            datetime(2000, 1, 2) - datetime(2000, 1, 1))
        at_s = at_local.timestamp()
        horizon_s = float(args.horizon.rstrip("h")) * 3600
        history = [r for r in records if r.time_s < at_s and cacheable(r)]
        future = [cache_key(r.target) for r in records if r.time_s >= at_s and cacheable(r)]
        budget = args.budget or round(len(set(future)) / 5)
        warm_sets = {"cold": [], **naive_sets(history, at_s, horizon_s, budget)}
        warm_sets["warmd"], wall_s, rss_mb = run_predict(log, budget, at_local.isoformat(),
                                                         args.horizon)
        warm_sets["oracle"] = [k for k, _ in Counter(future).most_common(budget)]
    rates = {name: simulate_lru(budget, keys, future, name).hit_rate_first_10pct
             for name, keys in warm_sets.items()}
    print(f"log: seed {args.seed}, {len(records):,} lines, {spec.days} days; at "
          f"{at_local.isoformat()}, horizon {args.horizon}; next day {len(future):,} requests, "
          f"{len(set(future)):,} distinct keys; budget {budget:,}")
    print(f"{'warm set':<24}{'first 10 %':>11}")
    for name, rate in rates.items():
        print(f"{name:<24}{rate:>11.3f}")
    gain = rates["oracle"] - rates["cold"]
    share = (rates["warmd"] - rates["cold"]) / gain if gain > 0 else 1.0
    best_naive = max(rates[n] for n in ("last_day_top", "decayed_frequency",
                                         "same_window_yesterday"))
    print(f"warmd_share_of_oracle_gain={share:.3f} warmd_first10={rates['warmd']:.3f} "
          f"best_naive_first10={best_naive:.3f} oracle_first10={rates['oracle']:.3f} "
          f"cold_first10={rates['cold']:.3f} budget={budget} predict_s={wall_s:.1f} "
          f"predict_rss_mb={rss_mb:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
