"""How a CLI command module plugs into `warmd` or `warmctl`.

Each command lives in its own module with `register(subparsers)`, which adds its
parser and sets `handler` to a function `(args) -> int` (the exit status). The
entry points list the modules, so adding a command is one line there.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from warmd.errors import WarmdError

EXIT_BROKEN_PIPE = 141  # as a shell reports a process killed by SIGPIPE (128 + 13)


def build_parser(prog: str, description: str, modules: Sequence[str]) -> argparse.ArgumentParser:
    """An argparse parser with one subcommand per registered module."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of the unread output does
    not raise again at exit (the recipe in Python's signal module documentation)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse `argv`, run the chosen handler, and turn operating errors into exit statuses."""
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `warmctl tasks ls | head -1`: the reader left, nothing to say
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except WarmdError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return int(getattr(error, "exit_status", 1))
