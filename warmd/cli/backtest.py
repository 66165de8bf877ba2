"""`warmd backtest LOG... --capacity N`: train before the split, replay the rest through LRU."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict

from warmd.analysis.formats import Record
from warmd.cli.analyze import add_format_argument, iso, parse_duration_s, parse_instant_s
from warmd.cli.progress import Progress
from warmd.cli.rules import add_rule_arguments, load_rule_files
from warmd.cli.shares_view import render_shares
from warmd.errors import ConfigError
from warmd.rules.apply import make_plan, predict_with_rules, select_records, summarise_selected
from warmd.rules.backtest import BacktestReport, Predictor, backtest
from warmd.rules.compiled import CompiledRuleSet
from warmd.rules.engine import rank
from warmd.rules.tree import Overrides
from warmd.runtime.ingest.worker import estimate_lines, read_records, summarise_records


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backtest", help="measure warm-up hit rates on a log")
    parser.add_argument("logs", nargs="+", metavar="LOG", help="access log files (.gz ok)")
    parser.add_argument("--capacity", type=int, required=True, help="LRU cache size in keys")
    parser.add_argument("--split", default=None,
                        help="ISO 8601 split time (default: midnight UTC before the last "
                             "day of the log, or its middle when it spans one day)")
    parser.add_argument("--until", default=None, help="stop the replay at this ISO 8601 time")
    parser.add_argument("--horizon", default=None,
                        help="prediction window (default: the replayed span)")
    add_format_argument(parser)
    add_rule_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_backtest)


def default_split_s(records: list[Record]) -> float:
    """Midnight before the last day, or the middle of a log spanning less than two days."""
    first_s, last_s = records[0].time_s, records[-1].time_s
    midnight_s = math.floor(last_s / 86_400) * 86_400
    if midnight_s - first_s >= 86_400:
        return midnight_s
    return records[len(records) // 2].time_s


def _backtest(args: argparse.Namespace) -> int:
    if args.capacity < 1:
        raise ConfigError("--capacity must be at least 1")
    ruleset = load_rule_files(args)
    progress = Progress(estimate_lines(args.logs))
    parsed = read_records(args.logs, args.log_format, progress=progress)
    progress.close()
    if not parsed.records:
        raise ConfigError("no parsable request in the logs")
    split_s = parse_instant_s(args.split) if args.split else default_split_s(parsed.records)
    until_s = parse_instant_s(args.until) if args.until else math.inf
    history = [r for r in parsed.records if r.time_s < split_s]
    future = [r for r in parsed.records if split_s <= r.time_s < until_s]
    if not history or not future:
        raise ConfigError(f"the split {iso(split_s)} leaves no history or no future")
    summary = summarise_records(history)
    horizon_s = parse_duration_s(args.horizon) if args.horizon else None
    predictor, overrides = _rule_predictor(ruleset, history) if ruleset else (None, None)
    report = backtest(summary, history, future, args.capacity, horizon_s, overrides, predictor)
    window_s = horizon_s or max(3600.0, future[-1].time_s - split_s)
    shares = [] if ruleset else rank(summary, split_s, window_s, args.capacity)[1]
    if args.json:
        print(json.dumps({"split": iso(split_s), **asdict(report),
                          "templates": [asdict(share) for share in shares]}, indent=2))
    else:
        print(render_text(report, split_s))
        print(render_shares(shares))
    return 0


def _rule_predictor(ruleset: CompiledRuleSet, history: list[Record]
                    ) -> tuple[Predictor, Overrides]:
    """warmd's strategy under the rules, and the rules' overrides, so every strategy's cache
    keys leave out the parameters the rules drop (the cache the rules describe)."""
    selected = select_records(ruleset, history)
    summary = summarise_selected(selected)
    plan = make_plan(ruleset, summary, selected)

    def predictor(at_s: float, window_s: float, budget: int) -> list[str]:
        if not selected.records:
            return []
        return [p.target for p in predict_with_rules(summary, plan, at_s, window_s, budget)]

    return predictor, plan.overrides


def render_text(report: BacktestReport, split_s: float) -> str:
    """The human form of a backtest report."""
    lines = [f"split {iso(split_s)}: trained on {report.train_requests:,} requests, replayed "
             f"{report.replay_requests:,} ({report.replay_distinct_keys:,} distinct keys), "
             f"LRU capacity {report.capacity:,}",
             f"{'strategy':<14}{'warmed':>8}{'first 1000':>12}{'first 10%':>11}"
             f"{'all':>8}{'waste':>8}"]
    for r in report.results:
        lines.append(f"{r.name:<14}{r.warmed:>8}{r.hit_rate_first_1000:>12.1%}"
                     f"{r.hit_rate_first_10pct:>11.1%}{r.hit_rate_all:>8.1%}{r.waste:>8.1%}")
    lines.append(f"warmd's share of the oracle's gain over cold: "
                 f"{report.warmd_share_of_oracle_gain_first_10pct:.0%} (first 10 %), "
                 f"{report.warmd_share_of_oracle_gain_all:.0%} (all)")
    return "\n".join(lines)
