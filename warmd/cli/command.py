"""How a CLI command module plugs into `warmd` or `warmctl`, imported only when chosen.

Each command lives in its own module with `register(subparsers)`, which adds its
parser and sets `handler` to a function `(args) -> int` (the exit status). The
entry points list the modules with their subcommands' names and one-line help, so
`--help` and the choice of a subcommand need no import: only the chosen module is
imported (the demo alone pulls in aiohttp and redis). tests/test_cli.py checks that
each listing matches what its module registers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from warmd.errors import WarmdError

Configure = Callable[[argparse.ArgumentParser], None]

EXIT_BROKEN_PIPE = 141  # as a shell reports a process killed by SIGPIPE (128 + 13)



@dataclass(frozen=True, slots=True)
class CommandModule:
    """A module's name and the (subcommand, help) pairs its `register()` adds, in order."""

    module: str
    commands: tuple[tuple[str, str], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.commands)


def int_at_least(minimum: int, meaning: str = "") -> Callable[[str], int]:
    """An argparse type: an integer of at least `minimum` (`meaning` says what the
    smallest stands for, e.g. "0 (all)")."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be {meaning or minimum} or more")
        return value
    return parse


positive_int = int_at_least(1)  # counts, ids, processes
page_limit = int_at_least(0, "0 (all)")  # rows a listing shows


def build_parser(prog: str, description: str, modules: Sequence[CommandModule],
                 chosen: str | None = None, configure: Configure | None = None,
                 ) -> argparse.ArgumentParser:
    """A parser with every subcommand: the `chosen` one's module registers its real parsers;
    the others are placeholders that only carry their help line."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    if configure is not None:
        configure(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for entry in modules:
        if chosen in entry.names:
            importlib.import_module(entry.module).register(subparsers)
            continue
        for name, help_text in entry.commands:
            placeholder = subparsers.add_parser(name, help=help_text, add_help=False)
            placeholder.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def chosen_command(prog: str, description: str, modules: Sequence[CommandModule],
                   argv: Sequence[str] | None, configure: Configure | None = None) -> str:
    """The subcommand `argv` names, found without importing any command module.

    `--help` without a subcommand and usage errors exit here (argparse's SystemExit).
    """
    parser = build_parser(prog, description, modules, None, configure)
    known, _ = parser.parse_known_args(argv)
    return str(known.command)


def main(prog: str, description: str, modules: Sequence[CommandModule],
         argv: Sequence[str] | None, configure: Configure | None = None) -> int:
    """Find the subcommand, import only its module, then parse and run it."""
    chosen = chosen_command(prog, description, modules, argv, configure)
    return run(build_parser(prog, description, modules, chosen, configure), argv)

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
