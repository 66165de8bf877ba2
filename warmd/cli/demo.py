"""`warmd demo`: the end-to-end demonstration (see warmd.demo.runner)."""

from __future__ import annotations

import argparse

from warmd.demo import runner


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the local end-to-end demo (redis, a demo shop, warm-up, before/after)"
    )
    runner.add_arguments(parser)
    parser.set_defaults(handler=_demo, parser=parser)


def _demo(args: argparse.Namespace) -> int:
    runner.check_arguments(args.parser, args)
    return runner.run(args)
