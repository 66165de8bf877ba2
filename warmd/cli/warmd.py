"""The `warmd` command: the daemon, the demo, and offline analysis tools.

`warmd run` ignores SIGHUP before anything else happens (the daemon installs its reload
handler once it serves): a reload sent by a config-management run or a log-rotation hook
right after start must not kill it. Only `signal` and `sys` are imported before that.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

TYPE_CHECKING = False  # not typing's: importing typing would delay ignoring SIGHUP
if TYPE_CHECKING:
    from warmd.cli.command import CommandModule


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["run"]:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from warmd.cli import command  # after the signal: every import widens the window

    return command.main("warmd", "Distributed cache warm-up daemon and its offline tools.",
                        command_modules(), arguments)


def command_modules() -> tuple[CommandModule, ...]:
    """One module per subcommand; each has register(subparsers), imported only when chosen."""
    from warmd.cli.command import CommandModule

    return (
        CommandModule("warmd.cli.demo", (("demo", "run the local end-to-end demo (redis, a demo "
                                                  "shop, warm-up, before/after)"),)),
        CommandModule("warmd.cli.run", (("run", "run the warmd daemon in the foreground"),)),
        CommandModule("warmd.cli.recover", (("recover", "make this stopped node a new one-voter "
                                                        "cluster (lost quorum)"),)),
        CommandModule("warmd.cli.check_config", (("check-config", "validate a config file and "
                                                                  "exit (status 78 if it is wrong)"),)),
        CommandModule("warmd.cli.analyze", (("analyze", "diagnose the parameters of access logs"),)),
        CommandModule("warmd.cli.predict", (("predict", "print the requests to warm, best first"),)),
        CommandModule("warmd.cli.backtest", (("backtest", "measure warm-up hit rates on a log"),)),
    )
