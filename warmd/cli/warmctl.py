"""The `warmctl` command: operate a running warmd over its admin socket."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from warmd.admin.client import add_socket_argument, add_token_argument
from warmd.cli import command
from warmd.cli.command import CommandModule

# One module per subcommand group; each has register(subparsers), imported only when chosen.
COMMAND_MODULES: tuple[CommandModule, ...] = (
    CommandModule("warmd.cli.version", (("version", "print the warmctl version"),)),
    CommandModule("warmd.cli.ping", (("ping", "check that the local warmd answers"),)),
    CommandModule("warmd.cli.cluster", (
        ("status", "show this node's Raft role, term, leader and indexes"),
        ("members", "list the cluster's voters and learners"),
        ("add-learner", "add a non-voting member"),
        ("promote", "make a caught-up learner a voter"),
        ("remove", "remove a member from the cluster"),
        ("transfer-leader", "hand leadership to another voter"),
        ("snapshot", "snapshot and compact the log now; `snapshot save FILE` also writes it"),
        ("check-write", "replicate COUNT heartbeats of this node and report the rate"),
        ("plugins", "list the plugins this node loaded, with their versions"),
        ("health", "check the quorum and every member; exit 1 if one is unhealthy"),
    )),
    CommandModule("warmd.cli.rules", (("rules", "check, format and test rule files"),)),
    CommandModule("warmd.cli.tasks", (
        ("tasks", "submit, list, show, cancel and retry tasks"),
        ("nodes", "list executor nodes: capacity, load, liveness"),
        ("drain", "stop assigning new tasks to a node"),
    )),
    CommandModule("warmd.cli.warmup", (
        ("explain", "why a request would or would not be warmed: template, diagnoses with "
                    "evidence, owning rule, expected hits"),
        ("plans", "the newest warm-up plans: trigger, rules, tasks by state, effect; "
                  "`plans cancel PLAN` cancels a plan's unfinished tasks; `plans run` makes "
                  "one now (on the leader)"),
        ("summaries", "the analysis summary each node shipped, per log source"),
    )),
    CommandModule("warmd.cli.top", (("top", "the node's metrics, refreshing (like htop)"),)),
    CommandModule("warmd.cli.access", (
        ("token", "add, list and revoke named console/API tokens"),
        ("audit", "who did what, newest first (filters below)"),
        ("login-link", "a one-time console login link for this node (single use, short expiry)"),
    )),
)


def _global_options(parser: argparse.ArgumentParser) -> None:
    """`warmctl --socket PATH --token SECRET COMMAND`."""
    add_socket_argument(parser)
    add_token_argument(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return command.main(
        "warmctl", "Operate a running warmd cluster through the local admin socket.",
        COMMAND_MODULES, argv, configure=_global_options,
    )
