"""`warmd analyze LOG...`: templates, every parameter's diagnosis with evidence, bad lines."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import asdict
from datetime import UTC, datetime

from warmd.analysis.formats import TimeParser
from warmd.analysis.summary import Summary
from warmd.cli.command import positive_int
from warmd.cli.progress import Progress
from warmd.cli.shares_view import render_shares
from warmd.errors import ConfigError
from warmd.rules.engine import diagnose_all, rank
from warmd.rules.ranking import TemplateShare
from warmd.runtime.ingest.worker import estimate_lines, summarise_files

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])\Z")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration_s(text: str) -> float:
    """`90s`, `15m`, `6h`, `1d` (or plain seconds) in seconds.

    Raises:
        ConfigError: any other form.
    """
    match = _DURATION.match(text.strip())
    if match:
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"bad duration {text!r}: use e.g. 90s, 15m, 6h, 1d") from None


def parse_instant_s(text: str) -> float:
    """An ISO 8601 instant (UTC when no offset is given) in epoch seconds.

    Raises:
        ConfigError: not a timestamp.
    """
    try:
        return TimeParser().parse(text)
    except ValueError:
        raise ConfigError(f"bad time {text!r}: use ISO 8601, e.g. 2016-05-18T00:00:00") from None


def iso(time_s: float) -> str:
    """Epoch seconds as ISO 8601 UTC."""
    return datetime.fromtimestamp(time_s, tz=UTC).isoformat()


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    """The shared --format option."""
    parser.add_argument("--format", dest="log_format", default=None,
                        help="combined|common|nginx|json|json:time=KEY,...|regex:PATTERN "
                             "(default: detect)")


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """The shared --workers option: processes reading the logs."""
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="processes reading the logs (default: cores)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("analyze", help="diagnose the parameters of access logs")
    parser.add_argument("logs", nargs="+", metavar="LOG", help="access log files (.gz ok)")
    add_format_argument(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_workers_argument(parser)
    parser.add_argument("--budget", type=int, default=0,
                        help="also show the self-backtest's split of N keys per template, "
                             "for the window after the log's end")
    parser.add_argument("--horizon", default="6h", help="that window (default 6h)")
    parser.set_defaults(handler=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    progress = Progress(estimate_lines(args.logs))
    summary = summarise_files(args.logs, args.log_format, workers=args.workers,
                              progress=progress)
    progress.close()
    report = analysis_report(summary)
    shares = _shares(summary, args.budget, args.horizon)
    if args.json:
        text = json.dumps({**report, "self_backtest": [asdict(s) for s in shares]}, indent=2) \
            if args.budget > 0 else json.dumps(report, indent=2)
    else:
        text = render_text(report)
        if args.budget > 0:
            text += "\n" + render_shares(shares)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # `warmd analyze ... | head`: the reader has what it wanted; exit quietly.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    return 0


def _shares(summary: Summary, budget: int, horizon: str) -> list[TemplateShare]:
    """The self-backtest's decision per template at the log's end (none for no budget)."""
    if budget <= 0 or summary.landmark_s is None:
        return []
    horizon_s = parse_duration_s(horizon)
    if horizon_s <= 0:
        raise ConfigError("--horizon must be positive")
    return rank(summary, summary.last_s, horizon_s, budget)[1]


def analysis_report(summary: Summary) -> dict:
    """The analysis as plain data (the JSON contract of `warmd analyze --json`)."""
    diagnoses = diagnose_all(summary)
    templates = []
    for pattern, stats in sorted(summary.templates.items(), key=lambda kv: -kv[1].count):
        slots = [{
            "slot": d.slot, "class": d.param_class.value,
            "date_offset_days": d.date_offset_days, "date_format": d.date_format,
            "drop_from_key": d.drop_from_key, "never_warm": d.never_warm,
            "evidence": [str(e) for e in d.evidence],
        } for d in diagnoses[pattern].slots.values()]
        templates.append({"template": pattern, "count": stats.count, "parameters": slots})
    in_templates = sum(stats.count for stats in summary.templates.values())
    return {
        "lines": summary.lines + summary.malformed, "parsed": summary.lines,
        "malformed": summary.malformed, "malformed_samples": summary.malformed_samples,
        "excluded": dict(summary.excluded),
        "first": iso(summary.first_s) if summary.lines else None,
        "last": iso(summary.last_s) if summary.lines else None,
        "templates": templates,
        # Cacheable requests whose templates were dropped to bound memory (the lightest).
        "outside_templates": {"requests": summary.lines - sum(summary.excluded.values())
                              - in_templates, "templates": summary.dropped_templates},
    }


def render_text(report: dict) -> str:
    """The human form of the analysis."""
    lines = [f"{report['parsed']:,} requests parsed, {report['malformed']:,} malformed, "
             f"excluded {report['excluded'] or 'none'}; {report['first']} .. {report['last']}"]
    for sample in report["malformed_samples"]:
        lines.append(f"  malformed: {sample}")
    for template in report["templates"]:
        lines.append(f"{template['count']:>9,}  {template['template']}")
        for slot in template["parameters"]:
            extra = ""
            if slot["class"] == "date_relative":
                extra = f" offset {slot['date_offset_days']:+d}d {slot['date_format']}"
            lines.append(f"{'':>11}{slot['slot']}: {slot['class']}{extra}  "
                         f"[{slot['evidence'][-1] if slot['evidence'] else ''}]")
    outside = report["outside_templates"]
    lines.append(f"{outside['requests']:>9,}  requests outside the templates shown "
                 f"({outside['templates']:,} light templates dropped to bound memory)")
    return "\n".join(lines)
