"""`warmctl version`: print the client version."""

from __future__ import annotations

import argparse

import warmd


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("version", help="print the warmctl version")
    parser.set_defaults(handler=_version)


def _version(args: argparse.Namespace) -> int:
    print(f"warmctl {warmd.__version__}")
    return 0
