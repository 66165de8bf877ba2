"""`warmctl ping`: check that the local warmd answers on its admin socket."""

from __future__ import annotations

import argparse
import json

from warmd.admin.client import add_socket_argument, client_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ping", help="check that the local warmd answers")
    add_socket_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the reply as JSON")
    parser.set_defaults(handler=_ping)


def _ping(args: argparse.Namespace) -> int:
    """An AdminClientError propagates to command.run, which prints it with its exit status."""
    with client_from_args(args) as client:
        reply = client.call("ping")
    if args.json:
        print(json.dumps(reply))
    else:
        print(f"warmd pid {reply['pid']} answers on {client.socket_path}")
    return 0
