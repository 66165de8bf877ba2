"""`warmctl version`: print the client version."""

from __future__ import annotations

import argparse
import json

import warmd


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("version", help="print the warmctl version")
    parser.add_argument("--json", action="store_true", help='print {"version": ...}')
    parser.set_defaults(handler=_version)


def _version(args: argparse.Namespace) -> int:
    print(json.dumps({"version": warmd.__version__}) if args.json
          else f"warmctl {warmd.__version__}")
    return 0
