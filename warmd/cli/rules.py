"""`warmctl rules`: check, format and unit-test rule files, without a running daemon.

`check` prints compiler-style errors and exits 0 (valid) or 2 (errors), like
`promtool check rules` and `nginx -t`. `test` runs rule unit tests, with
`must`/`must_not` checked against real engine predictions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
import zoneinfo
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from warmd.analysis.formats import Record
from warmd.cli.cluster import _call, _command, _print
from warmd.errors import WarmdError
from warmd.rules.apply import predict_records
from warmd.rules.compile import KnownNames, check_files
from warmd.rules.compiled import CompiledRuleSet
from warmd.rules.errors import render_all
from warmd.rules.parser import parse_recovering
from warmd.rules.pretty import pretty
from warmd.rules.ruletest import EnginePredictor, RuleTestError, parse_spec, run, summary_line

EXIT_OK = 0
EXIT_ERRORS = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rules", help="check, format and test rule files")
    commands = parser.add_subparsers(dest="rules_command", metavar="ACTION")
    commands.required = True
    checker = commands.add_parser("check", help="check rule files (exit 0 valid, 2 errors)")
    checker.add_argument("files", nargs="+", metavar="FILE")
    checker.add_argument("--json", action="store_true",
                         help="print each file's diagnostics as JSON (same exit status)")
    _known_arguments(checker)
    checker.set_defaults(handler=_check)
    formatter = commands.add_parser("fmt", help="print a rule file in canonical form")
    formatter.add_argument("file", metavar="FILE")
    formatter.add_argument("--write", action="store_true", help="rewrite the file in place")
    formatter.set_defaults(handler=_fmt)
    tester = commands.add_parser("test", help="run rule unit tests from a TOML test file")
    tester.add_argument("file", metavar="FILE")
    tester.add_argument("--json", action="store_true",
                        help="print each check's outcome as JSON (same exit status)")
    _known_arguments(tester)
    tester.set_defaults(handler=_test)
    reloader = _command(commands, "reload", "check rule files on the daemon's node, then commit "
                        "them cluster-wide (default: the files of [rules] in its config)", _reload)
    reloader.add_argument("files", nargs="*", metavar="FILE")
    _command(commands, "show", "print the committed rule set: version and text", _show)
    _command(commands, "history", "list the committed rule set's versions (newest first) "
             "and the disabled rules", _history)
    for action, help_text in (("enable", "switch a disabled rule back on, cluster-wide"),
                              ("disable", "switch one rule off cluster-wide: it plans nothing")):
        switch = _command(commands, action, help_text, _switch)
        switch.add_argument("name", metavar="NAME", help="the rule's name in the committed set")


class RuleFilesError(WarmdError):
    """Rule files given to predict/backtest do not check (exit 2, like `rules check`)."""

    exit_status = EXIT_ERRORS


def add_rule_arguments(parser: argparse.ArgumentParser) -> None:
    """`--rules FILE` (repeatable) and the names rule files may use, for predict/backtest."""
    parser.add_argument("--rules", action="append", default=[], metavar="FILE",
                        help="rule files (one set); only requests a rule selects are warmed")
    _known_arguments(parser)


def load_rule_files(args: argparse.Namespace) -> CompiledRuleSet | None:
    """The checked rule set of `--rules`, or None when none were given.

    Raises:
        RuleFilesError: a file is missing or fails a check (every error in the message).
    """
    if not args.rules:
        return None
    ruleset, reports = check_paths([Path(name) for name in args.rules], known_names(args))
    if ruleset is None:
        raise RuleFilesError("bad rule files:\n" + "\n".join(
            text for valid, text in reports if not valid))
    return ruleset


def _known_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="TOML",
                        help="warmd.toml whose [caches.NAME] tables are known backends")
    parser.add_argument("--backends", default="", metavar="NAME[:KIND],...",
                        help="extra known backend names, e.g. redis-main:redis,pages")
    parser.add_argument("--plugins", default="", metavar="NAME,...",
                        help="installed plugin hooks and loaders")


def known_names(args: argparse.Namespace) -> KnownNames:
    """Backends from --config and --backends, plugins from --plugins, the tz database.

    Raises:
        RuleTestError: the config file cannot be read or is not TOML.
    """
    backends: dict[str, str] = {}
    if args.config:
        backends.update(_config_backends(Path(args.config)))
    for entry in filter(None, (part.strip() for part in args.backends.split(","))):
        name, _, kind = entry.partition(":")
        backends[name] = kind
    plugins = frozenset(filter(None, (part.strip() for part in args.plugins.split(","))))
    zones = frozenset(zoneinfo.available_timezones()) | {"UTC"}
    return KnownNames(backends, plugins, zones if len(zones) > 1 else None)


def _config_backends(path: Path) -> dict[str, str]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise RuleTestError(f"cannot read config {path}: {error}") from None
    caches = document.get("caches", {})
    if not isinstance(caches, dict):
        raise RuleTestError(f"{path}: [caches] must be a table of [caches.NAME] tables")
    return {name: str(table.get("kind", "")) if isinstance(table, dict) else ""
            for name, table in caches.items()}


def read_source(path: Path) -> tuple[str | None, str]:
    """The file's text, or None and a one-line reason (missing, unreadable, not UTF-8)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"{path}: error: cannot read: {error.strerror or error}"
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as error:
        return None, f"{path}: error: not UTF-8 text (byte {error.start})"


def check_paths(paths: Sequence[Path],
                known: KnownNames) -> tuple[CompiledRuleSet | None, list[tuple[bool, str]]]:
    """Check files as one rule set.

    Returns the merged set when every file is valid, and for each file (in the
    order given) whether it is valid and the text to print for it.
    """
    texts = {str(path): read_source(path) for path in paths}
    readable = [(name, text) for name, (text, _) in texts.items() if text is not None]
    result = check_files(readable, known)
    reports: list[tuple[bool, str]] = []
    for name, (text, problem) in texts.items():
        if text is None:
            reports.append((False, problem))
            continue
        diagnostics = result.diagnostics[name]
        if not diagnostics:
            rules = len(parse_recovering(text).tree.blocks("rule"))
            reports.append((True, f"{name}: ok ({rules} rules)"))
            continue
        errors = sum(1 for d in diagnostics if d.severity == "error")
        summary = f"{name}: {errors} error{'s' if errors != 1 else ''}"
        reports.append((False, render_all(name, text, diagnostics) + "\n\n" + summary))
    ruleset = result.ruleset if len(readable) == len(texts) else None
    return ruleset, reports


def check_file(path: Path, known: KnownNames) -> tuple[CompiledRuleSet | None, str]:
    """Check one file: the rule set when valid, and the text to print."""
    ruleset, ((_, text),) = check_paths([path], known)
    return ruleset, text


def check_document(paths: Sequence[Path], known: KnownNames) -> dict[str, object]:
    """`rules check --json`: per file, valid or not, its rule count or read problem, and
    every diagnostic as fields (line, column, severity, message, expected, suggestion)."""
    texts = {str(path): read_source(path) for path in paths}
    result = check_files([(name, text) for name, (text, _) in texts.items() if text is not None],
                         known)
    files: list[dict[str, object]] = []
    for name, (text, problem) in texts.items():
        if text is None:
            files.append({"file": name, "valid": False, "problem": problem, "diagnostics": []})
            continue
        diagnostics = [asdict(diagnostic) for diagnostic in result.diagnostics[name]]
        valid = not any(d["severity"] == "error" for d in diagnostics)
        files.append({"file": name, "valid": valid, "diagnostics": diagnostics,
                      "rules": len(parse_recovering(text).tree.blocks("rule"))})
    return {"valid": all(entry["valid"] for entry in files), "files": files}


def _check(args: argparse.Namespace) -> int:
    if args.json:
        document = check_document([Path(name) for name in args.files], known_names(args))
        print(json.dumps(document, indent=2))
        return EXIT_OK if document["valid"] else EXIT_ERRORS
    _, reports = check_paths([Path(name) for name in args.files], known_names(args))
    for valid, text in reports:
        print(text, file=sys.stdout if valid else sys.stderr)
    return EXIT_OK if all(valid for valid, _ in reports) else EXIT_ERRORS


def _fmt(args: argparse.Namespace) -> int:
    path = Path(args.file)
    text, problem = read_source(path)
    if text is None:
        print(problem, file=sys.stderr)
        return EXIT_ERRORS
    parsed = parse_recovering(text)
    if parsed.diagnostics:
        print(render_all(str(path), text, parsed.diagnostics), file=sys.stderr)
        return EXIT_ERRORS
    canonical = pretty(parsed.tree)
    if args.write:
        path.write_text(canonical, encoding="utf-8")
    else:
        sys.stdout.write(canonical)
    return EXIT_OK


def engine_predictor(budget: int = 1000) -> EnginePredictor:
    """The prediction engine for `must`/`must_not` checks: the same path as
    `warmd predict --rules` (selection, overrides, per-rule budgets) on the sample log."""

    def predicted_lines(ruleset: CompiledRuleSet, records: Sequence[Record], at_s: float,
                        horizon_s: float) -> list[str]:
        predictions, _ = predict_records(ruleset, records, at_s, horizon_s, budget)
        return [prediction.request_line for prediction in predictions]

    return predicted_lines


def _test(args: argparse.Namespace) -> int:
    path = Path(args.file)
    text, problem = read_source(path)
    if text is None:
        print(problem, file=sys.stderr)
        return EXIT_ERRORS
    spec = parse_spec(text)
    known = known_names(args)
    known = KnownNames({**known.backends, **dict.fromkeys(spec.backends, "")}, known.hooks,
                       known.timezones)
    ruleset, reports = check_paths([path.parent / name for name in spec.rule_files], known)
    if ruleset is None:
        for valid, report in reports:
            print(report, file=sys.stdout if valid else sys.stderr)
        return EXIT_ERRORS
    outcomes = run(spec, ruleset, engine_predictor())
    failed = any(outcome.status == "fail" for outcome in outcomes)
    if args.json:
        print(json.dumps({"file": str(path), "passed": not failed,
                          "outcomes": [asdict(outcome) for outcome in outcomes]}, indent=2))
        return EXIT_ERRORS if failed else EXIT_OK
    for outcome in outcomes:
        line = f"{outcome.status.upper():7} {outcome.case}: {outcome.check}"
        print(line + (f" -- {outcome.detail}" if outcome.detail else ""))
    print(f"{path}: {summary_line(outcomes)}")
    return EXIT_ERRORS if failed else EXIT_OK


def _reload(args: argparse.Namespace) -> int:
    """Send the files' texts (or nothing: the daemon's configured files) to be checked and
    committed; a refused set prints the checker's errors and exits 2, the old set stays."""
    files = []
    for name in args.files:
        text, problem = read_source(Path(name))
        if text is None:
            print(problem, file=sys.stderr)
            return EXIT_ERRORS
        files.append([Path(name).name, text])
    reply = _call(args, "rules-reload", timeout_s=30.0, **({"files": files} if files else {}))
    if not reply["ok"]:
        print(reply["errors"], file=sys.stderr)
        print(f"rules not reloaded: the committed set stays "
              f"(version {reply['version'] or 'none'})", file=sys.stderr)
        return EXIT_ERRORS
    return _print(args, reply, lambda r: f"rules version {r['version']} committed "
                                         f"({', '.join(r['files'])}; was {r['previous'] or 'none'})")


def _show(args: argparse.Namespace) -> int:
    return _print(args, _call(args, "rules-show"), format_rules)


def _history(args: argparse.Namespace) -> int:
    return _print(args, _call(args, "rules-history"), format_history)


def format_history(reply: dict) -> str:
    """One line per kept version, then the disabled rules."""
    lines = [f"{v['version'][:12]}  index {v['index']}  {_iso(v['set_ms'])}  "
             f"{v['actor'] or '-'}  {', '.join(v['files'])}" for v in reply["versions"]]
    lines = lines or ["no rule set committed"]
    lines += [f"disabled: {d['name']} (index {d['index']}, {_iso(d['set_ms'])}, {d['actor'] or '-'})"
              for d in reply["disabled"]]
    return "\n".join(lines)


def _iso(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _switch(args: argparse.Namespace) -> int:
    reply = _call(args, f"rules-{args.rules_command}", name=args.name)
    return _print(args, reply, lambda r: f"rule {r['name']} "
                                         f"{'enabled' if r['enabled'] else 'disabled'}")


def format_rules(reply: dict) -> str:
    """The human form of `warmctl rules show`: the version, then each file's text."""
    if reply["version"] is None:
        return "no rule set committed"
    lines = [f"version {reply['version']} (log index {reply['index']})"]
    for entry in reply["files"]:
        lines += [f"# --- {entry['name']}", entry["text"].rstrip("\n")]
    return "\n".join(lines)
