"""`warmd predict LOG... --budget N`: the requests warmd would warm at --at, best first."""

from __future__ import annotations

import argparse
import json
import os
import sys

from warmd.analysis.summary import Summary
from warmd.cli.analyze import (
    add_format_argument,
    add_workers_argument,
    parse_duration_s,
    parse_instant_s,
)
from warmd.cli.progress import Progress
from warmd.cli.rules import add_rule_arguments, load_rule_files
from warmd.cli.shares_view import render_shares
from warmd.errors import ConfigError
from warmd.rules.apply import predict_records
from warmd.rules.engine import Prediction, rank
from warmd.runtime.ingest.worker import estimate_lines, read_records, summarise_files


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="print the requests to warm, best first")
    parser.add_argument("logs", nargs="+", metavar="LOG", help="access log files (.gz ok)")
    parser.add_argument("--budget", type=int, required=True, help="at most N requests")
    parser.add_argument("--at", default=None,
                        help="ISO 8601 warm-up time; only lines before it are used "
                             "(default: the last timestamp of the log)")
    parser.add_argument("--horizon", default="6h", help="window after --at (default 6h)")
    add_format_argument(parser)
    add_workers_argument(parser)
    add_rule_arguments(parser)
    parser.add_argument("--explain", action="store_true",
                        help="append score, expected hits and source after tabs; the "
                             "self-backtest's table per template goes to stderr")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list: request, target, template, score, "
                             "expected hits, expected first use (seconds after --at) and source")
    parser.set_defaults(handler=_predict)


def _predict(args: argparse.Namespace) -> int:
    if args.budget < 0:
        raise ConfigError("--budget must be >= 0")
    horizon_s = parse_duration_s(args.horizon)
    if horizon_s <= 0:
        raise ConfigError("--horizon must be positive")
    ruleset = load_rule_files(args)
    at_s = parse_instant_s(args.at) if args.at else None
    if ruleset is None:
        summary = _summarise_until(args.logs, args.log_format, at_s, args.workers)
        predictions, shares = rank(summary, summary.last_s if at_s is None else at_s,
                                   horizon_s, args.budget)
        if args.explain:
            print(render_shares(shares), file=sys.stderr)
    else:
        progress = Progress(estimate_lines(args.logs))
        parsed = read_records(args.logs, args.log_format, progress=progress)
        progress.close()
        if not parsed.records:
            raise ConfigError("no parsable request in the logs")
        at_s = parsed.records[-1].time_s if at_s is None else at_s
        history = [r for r in parsed.records if r.time_s < at_s] if args.at else parsed.records
        predictions, selected = predict_records(ruleset, history, at_s, horizon_s, args.budget)
        print(f"rules: {len(selected.records):,} requests selected, {selected.unmatched:,} "
              f"matched no rule (never warmed)", file=sys.stderr)
    _write(predictions, args.explain, args.json)
    return 0


def _summarise_until(paths: list[str], spec: str | None, at_s: float | None,
                     workers: int | None = None) -> Summary:
    """The summary of the requests before `at_s` (all when None): what `warmd analyze`
    builds (one process per core, memory that of the summary however long the logs), cut
    at `at_s`.

    Raises:
        ConfigError: no parsable request in the logs (before `at_s`).
    """
    progress = Progress(estimate_lines(paths))
    summary = summarise_files(paths, spec, workers=workers, progress=progress, until_s=at_s)
    progress.close()
    if summary.lines == 0:
        raise ConfigError("no parsable request in the logs" +
                          ("" if at_s is None else " before --at"))
    summary.malformed_samples = summary.malformed_samples[:5]
    return summary


def _plain(prediction: Prediction) -> dict:
    """One prediction as the JSON fields of `warmd predict --json`."""
    return {"request": prediction.request_line, "target": prediction.target,
            "template": prediction.template, "score": prediction.score,
            "expected_hits": prediction.expected_hits,
            "first_use_after_s": prediction.first_use_s, "source": prediction.source}


def _write(predictions: list[Prediction], explain: bool, as_json: bool = False) -> None:
    """Print the predictions; a closed pipe (`| head`) ends the output quietly."""
    if as_json:
        text = json.dumps([_plain(p) for p in predictions], indent=2) + "\n"
    elif explain:
        text = "".join(f"{p.request_line}\t{p.score:.4f}\t{p.expected_hits:.3f}\t{p.source}\n"
                       for p in predictions)
    else:
        text = "".join(p.request_line + "\n" for p in predictions)
    out = sys.stdout
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        # `warmd predict ... | head`: the reader has what it wanted; exit quietly.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
