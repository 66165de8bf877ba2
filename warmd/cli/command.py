"""How a CLI command module plugs into `warmd` or `warmctl`.

Each command lives in its own module with `register(subparsers)`, which adds its
parser and sets `handler` to a function `(args) -> int` (the exit status). The
entry points list the modules, so adding a command is one line there.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from warmd.errors import WarmdError


def build_parser(prog: str, description: str, modules: Sequence[str]) -> argparse.ArgumentParser:
    """An argparse parser with one subcommand per registered module."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse `argv`, run the chosen handler, and turn operating errors into exit statuses."""
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except WarmdError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return int(getattr(error, "exit_status", 1))
