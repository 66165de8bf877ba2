"""`warmd recover --force-new-cluster`: turn a stopped survivor (or a snapshot file) into a
new one-voter cluster after the quorum is lost for good (docs/operations.md).

Refused without `--force-new-cluster` (exit 64, with an explanation) and while a daemon
answers on the configured admin socket (exit 75: stop it first).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from warmd import config as config_module
from warmd.admin.client import AdminClient, AdminClientError
from warmd.runtime.node.segment import DiskCorruption

EXIT_USAGE = 64
EXIT_DATA_ERROR = 65
EXIT_TEMPORARY = 75


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recover", help="make this stopped node a new one-voter cluster (lost quorum)")
    parser.add_argument("--config", default="/etc/warmd/warmd.toml", metavar="FILE")
    parser.add_argument("--from-snapshot", type=Path, metavar="FILE",
                        help="seed an empty data directory from `warmctl snapshot save` output")
    parser.add_argument("--force-new-cluster", action="store_true",
                        help="required: confirms that the other members are gone for good")
    parser.set_defaults(handler=_recover)


def _daemon_answers(socket_path: Path) -> bool:
    try:
        with AdminClient(socket_path, timeout_s=2.0) as client:
            client.call("ping")
    except AdminClientError:
        return False
    return True


def _recover(args: argparse.Namespace) -> int:
    from warmd.runtime import recovery  # the daemon stack, only for this command

    config = config_module.load(args.config)
    if not args.force_new_cluster:
        print("warmd recover: refused. This rewrites the membership to this node alone and "
              "loses whatever the other members committed that this node never received. "
              "If the other members are lost for good, stop this daemon and run again with "
              "--force-new-cluster.", file=sys.stderr)
        return EXIT_USAGE
    if _daemon_answers(config.admin.socket_path):
        print(f"warmd recover: a daemon answers on {config.admin.socket_path}; stop it first.",
              file=sys.stderr)
        return EXIT_TEMPORARY
    try:
        result = recovery.force_new_cluster(config, args.from_snapshot)
    except DiskCorruption as error:
        print(f"warmd recover: {error}", file=sys.stderr)
        return EXIT_DATA_ERROR
    print(f"node {result.node_id} is now a one-voter cluster: state from {result.source} up "
          f"to index {result.recovered_index} ({result.dropped_entries} uncommitted entries "
          f"dropped), new snapshot at index {result.new_index}, term {result.new_term}. "
          "Start it, then add the other hosts back with empty data directories.")
    return 0
