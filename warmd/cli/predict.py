"""`warmd predict LOG... --budget N`: the requests warmd would warm at --at, best first."""

from __future__ import annotations

import argparse
import os
import sys

from warmd.cli.analyze import add_format_argument, parse_duration_s, parse_instant_s
from warmd.cli.progress import Progress
from warmd.errors import ConfigError
from warmd.rules.engine import predict
from warmd.runtime.analysis_worker import read_records, summarise_records


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="print the requests to warm, best first")
    parser.add_argument("logs", nargs="+", metavar="LOG", help="access log files (.gz ok)")
    parser.add_argument("--budget", type=int, required=True, help="at most N requests")
    parser.add_argument("--at", default=None,
                        help="ISO 8601 warm-up time; only lines before it are used "
                             "(default: the last timestamp of the log)")
    parser.add_argument("--horizon", default="6h", help="window after --at (default 6h)")
    add_format_argument(parser)
    parser.add_argument("--explain", action="store_true",
                        help="append expected hits and source after a tab")
    parser.set_defaults(handler=_predict)


def _predict(args: argparse.Namespace) -> int:
    if args.budget < 0:
        raise ConfigError("--budget must be >= 0")
    horizon_s = parse_duration_s(args.horizon)
    if horizon_s <= 0:
        raise ConfigError("--horizon must be positive")
    progress = Progress()
    parsed = read_records(args.logs, args.log_format, progress=progress)
    progress.close()
    if not parsed.records:
        raise ConfigError("no parsable request in the logs")
    at_s = parse_instant_s(args.at) if args.at else parsed.records[-1].time_s
    history = [r for r in parsed.records if r.time_s < at_s] if args.at else parsed.records
    summary = summarise_records(history, malformed=parsed.malformed,
                                samples=parsed.malformed_samples)
    out = sys.stdout
    try:
        for prediction in predict(summary, at_s, horizon_s, args.budget):
            if args.explain:
                out.write(f"{prediction.request_line}\t{prediction.score:.4f}\t"
                          f"{prediction.expected_hits:.3f}\t{prediction.source}\n")
            else:
                out.write(prediction.request_line + "\n")
        out.flush()
    except BrokenPipeError:
        # `warmd predict ... | head`: the reader has what it wanted; exit quietly.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    return 0
