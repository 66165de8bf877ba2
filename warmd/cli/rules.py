"""`warmctl rules`: check, format and unit-test rule files, without a running daemon.

`check` prints compiler-style errors and exits 0 (valid) or 2 (errors), like
`promtool check rules` and `nginx -t`. `reload` and `show` need the daemon and
are added with the admin socket.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
import zoneinfo
from collections.abc import Sequence
from pathlib import Path

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
    _known_arguments(checker)
    checker.set_defaults(handler=_check)
    formatter = commands.add_parser("fmt", help="print a rule file in canonical form")
    formatter.add_argument("file", metavar="FILE")
    formatter.add_argument("--write", action="store_true", help="rewrite the file in place")
    formatter.set_defaults(handler=_fmt)
    tester = commands.add_parser("test", help="run rule unit tests from a TOML test file")
    tester.add_argument("file", metavar="FILE")
    _known_arguments(tester)
    tester.set_defaults(handler=_test)


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


def _check(args: argparse.Namespace) -> int:
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


def engine_predictor() -> EnginePredictor | None:
    """The prediction engine for `must`/`must_not` checks; None until the integration wires it."""
    return None


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
    for outcome in outcomes:
        line = f"{outcome.status.upper():7} {outcome.case}: {outcome.check}"
        print(line + (f" -- {outcome.detail}" if outcome.detail else ""))
    print(f"{path}: {summary_line(outcomes)}")
    return EXIT_ERRORS if any(o.status == "fail" for o in outcomes) else EXIT_OK
