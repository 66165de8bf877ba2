"""warmctl's warm-up commands: `explain 'GET /path?q'`, `plans [--limit N]`, `summaries`.

Human output by default (plans_view.py), `--json` prints the daemon's reply as it came.
Errors exit as in cluster.py: 64 a malformed request line, 1 nothing to explain from yet
(no summary shipped), 69 no daemon or no quorum, 75 retry.
"""

from __future__ import annotations

import argparse

from warmd.cli.cluster import _call, _command, _positive_int, _print, call_pages
from warmd.cli.plans_view import format_explanation, format_plans, format_summaries

EXPLAIN_TIMEOUT_S = 60.0  # the first explain after new reports merges every summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = _command(subparsers, "explain",
                      "why a request would or would not be warmed: template, diagnoses with "
                      "evidence, owning rule, expected hits", _explain)
    parser.add_argument("request", metavar="REQUEST",
                        help="'GET /path?query' or a bare '/path?query' (quote it)")
    parser = _command(subparsers, "plans",
                      "the newest warm-up plans: trigger, rules, tasks by state, effect", _plans)
    parser.add_argument("--limit", type=_positive_int, default=20, metavar="N",
                        help="how many plans, newest first (default 20)")
    _command(subparsers, "summaries",
             "the analysis summary each node shipped, per log source", _summaries)


def _explain(args: argparse.Namespace) -> int:
    reply = _call(args, "explain", EXPLAIN_TIMEOUT_S, request=args.request)
    return _print(args, reply, format_explanation)


def _plans(args: argparse.Namespace) -> int:
    return _print(args, call_pages(args, "plans", "plans", args.limit or None), format_plans)


def _summaries(args: argparse.Namespace) -> int:
    return _print(args, _call(args, "summaries", EXPLAIN_TIMEOUT_S), format_summaries)
