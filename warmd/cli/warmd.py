"""The `warmd` command: the daemon, the demo, and offline analysis tools."""

from __future__ import annotations

from collections.abc import Sequence

from warmd.cli import command

# One module per subcommand; each has register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "warmd.cli.demo",
    "warmd.cli.run",
    "warmd.cli.recover",
    "warmd.cli.check_config",
    "warmd.cli.analyze",
    "warmd.cli.predict",
    "warmd.cli.backtest",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = command.build_parser(
        "warmd", "Distributed cache warm-up daemon and its offline tools.", COMMAND_MODULES
    )
    return command.run(parser, argv)
