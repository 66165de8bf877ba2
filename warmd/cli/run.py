"""`warmd run --config FILE`: run the daemon in the foreground (systemd's ExecStart).

Exit statuses: 0 after a clean stop, 78 for a bad config, 65 (EX_DATAERR) when the data
directory holds a corrupt record (the message names the file and offset; see
docs/operations.md for the repair), 74 (EX_IOERR) when it cannot be read, 70 when the
driver failed while running (e.g. a failed fsync).
"""

from __future__ import annotations

import argparse
import sys

from warmd import config as config_module
from warmd.runtime.node.segment import DiskCorruption, DiskFailed

EXIT_DATA_ERROR = 65
EXIT_OS_ERROR = 71
EXIT_IO_ERROR = 74


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the warmd daemon in the foreground")
    parser.add_argument("--config", default="/etc/warmd/warmd.toml", metavar="FILE",
                        help="the node's TOML config (default /etc/warmd/warmd.toml)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    """A ConfigError propagates to command.run, which prints it and exits 78. SIGHUP is
    already ignored (`warmd.cli.warmd.main`) until the daemon installs its reload handler."""
    from warmd.runtime import daemon  # imported here: the other commands need no asyncio stack

    config = config_module.load(args.config)
    try:
        return daemon.run(config)
    except DiskCorruption as error:
        print(f"warmd: refusing to start: {error}. The log is damaged before its tail, so it "
              "cannot be repaired safely: remove this node (warmctl remove ID on a healthy "
              "member), move its data directory aside and rejoin the host under a new node id; "
              "never restart it with a wiped data directory under the same id "
              "(docs/operations.md, 'Replacing a damaged node').", file=sys.stderr)
        return EXIT_DATA_ERROR
    except DiskFailed as error:
        print(f"warmd: cannot use the data directory: {error}", file=sys.stderr)
        return EXIT_IO_ERROR
    except OSError as error:
        print(f"warmd: cannot start: {error}", file=sys.stderr)
        return EXIT_OS_ERROR
