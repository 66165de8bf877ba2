"""`warmd check-config`: validate a config file without starting the daemon (like `nginx -t`).

It runs every check `warmd run` makes before it binds anything (runtime/preflight.py), so a
file accepted here does not fail at start-up on a setting only the daemon looked at.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from warmd.config import Config, load

DEFAULT_CONFIG = Path("/etc/warmd/warmd.toml")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-config", help="validate a config file and exit (status 78 if it is wrong)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"the TOML config (default {DEFAULT_CONFIG})",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    """Load and check the file; a ConfigError propagates to command.run, which prints it and
    exits 78."""
    from warmd.runtime import preflight  # imported here: the other commands need no runtime

    config = load(args.config)
    preflight.check(config)
    summary = summarize(config)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.config}: ok")
        for key, value in summary.items():
            print(f"  {key}: {value}")
    return 0


def summarize(config: Config) -> dict[str, object]:
    """What an operator wants to confirm at a glance; no secrets."""
    return {
        "node_id": config.node.node_id,
        "listen": str(config.node.listen),
        "advertise": str(config.node.advertise),
        "data_dir": str(config.node.data_dir),
        "cluster_id": config.cluster.cluster_id,
        "peers": {str(peer.node_id): str(peer.address) for peer in config.peers},
        "tls": config.cluster.tls is not None,
        "admin_socket": str(config.admin.socket_path),
        "web": str(config.web.listen) if config.web.enabled else "disabled",
        "caches": [f"{cache.name} ({cache.kind})" for cache in config.caches],
        "sources": [f"{source.name} ({source.format})" for source in config.sources],
    }
