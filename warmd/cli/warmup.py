"""warmctl's warm-up commands: `explain 'GET /path?q'`, `plans [--limit N]`, `summaries`.

Human output by default (plans_view.py), `--json` prints the daemon's reply as it came.
Errors exit as in cluster.py: 64 a malformed request line, 1 nothing to explain from yet
(no summary shipped), 69 no daemon or no quorum, 75 retry.
"""

from __future__ import annotations

import argparse

from warmd.cli.cluster import _call, _command, _print, call_pages
from warmd.cli.command import positive_int
from warmd.cli.plans_view import format_explanation, format_plans, format_summaries

EXPLAIN_TIMEOUT_S = 60.0
CANCEL_TIMEOUT_S = 60.0  # one Cancel per unfinished task, each committed  # the first explain after new reports merges every summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = _command(subparsers, "explain",
                      "why a request would or would not be warmed: template, diagnoses with "
                      "evidence, owning rule, expected hits", _explain)
    parser.add_argument("request", metavar="REQUEST",
                        help="'GET /path?query' or a bare '/path?query' (quote it)")
    parser = _command(subparsers, "plans",
                      "the newest warm-up plans: trigger, rules, tasks by state, effect; "
                      "`plans cancel PLAN` cancels a plan's unfinished tasks; `plans run` "
                      "makes one now (on the leader)", _plans)
    parser.add_argument("action", nargs="?", choices=["cancel", "run"])
    parser.add_argument("plan", nargs="?", metavar="PLAN")
    parser.add_argument("--limit", type=positive_int, default=20, metavar="N",
                        help="how many plans, newest first (default 20)")
    _command(subparsers, "summaries",
             "the analysis summary each node shipped, per log source", _summaries)


def _explain(args: argparse.Namespace) -> int:
    reply = _call(args, "explain", EXPLAIN_TIMEOUT_S, request=args.request)
    return _print(args, reply, format_explanation)


def _plans(args: argparse.Namespace) -> int:
    if args.action is None:
        if args.plan is not None:
            raise SystemExit("warmctl plans: use `warmctl plans cancel PLAN`")
        return _print(args, call_pages(args, "plans", "plans", args.limit or None), format_plans)
    if args.action == "run":
        reply = _call(args, "plan-run", CANCEL_TIMEOUT_S)
        return _print(args, reply, lambda r: f"plan {r['plan_id']}: {r['tasks']} tasks, "
                                             f"{r['requests']} requests"
                                             + (f" ({r['note']})" if r["note"] else ""))
    if args.plan is None:
        raise SystemExit("warmctl plans cancel: PLAN is required (warmctl plans lists them)")
    reply = _call(args, "plan-cancel", CANCEL_TIMEOUT_S, plan=args.plan)
    return _print(args, reply, lambda r: f"plan {r['plan']}: {len(r['cancelled'])} tasks "
                                         f"cancelled, {r['already_finished']} already finished")


def _summaries(args: argparse.Namespace) -> int:
    return _print(args, _call(args, "summaries", EXPLAIN_TIMEOUT_S), format_summaries)
