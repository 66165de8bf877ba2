"""The `warmctl` command: operate a running warmd over its admin socket."""

from __future__ import annotations

from collections.abc import Sequence

from warmd.admin.client import add_socket_argument
from warmd.cli import command

# One module per subcommand group; each has register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "warmd.cli.version",
    "warmd.cli.ping",
    "warmd.cli.cluster",
    "warmd.cli.rules",
    "warmd.cli.tasks",
    "warmd.cli.warmup",
    "warmd.cli.top",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = command.build_parser(
        "warmctl", "Operate a running warmd cluster through the local admin socket.", COMMAND_MODULES
    )
    add_socket_argument(parser)  # `warmctl --socket PATH COMMAND`
    return command.run(parser, argv)
