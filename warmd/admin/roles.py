"""Which role each admin command needs, and whether it changes anything (and is audited).

One table for every interface: the admin socket, `warmctl --token`, the console and its
API all reach commands through `AdminServer.invoke`, which checks it. A command missing
from the table needs ADMIN and is audited as a mutation (fail closed);
tests/ops/test_access_roles.py checks that every command the daemon registers is listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from warmd.access import Role


@dataclass(frozen=True, slots=True)
class CommandAccess:
    """The least role that may run a command, and whether it mutates (then it is audited)."""

    role: Role
    mutates: bool


_READ = CommandAccess(Role.VIEWER, mutates=False)
_OPERATE = CommandAccess(Role.OPERATOR, mutates=True)
_ADMINISTER = CommandAccess(Role.ADMIN, mutates=True)
UNLISTED = _ADMINISTER

COMMAND_ACCESS: dict[str, CommandAccess] = {
    # reads: anyone who may see the console
    **dict.fromkeys((
        "ping", "commands", "protocol", "status", "members", "read", "health", "plugins", "metrics",
        "nodes", "task-list", "task-show", "rules-show", "rules-history", "explain", "plans",
        "summaries",
    ), _READ),
    # who did what is for operators; the list of tokens for admins
    "audit": CommandAccess(Role.OPERATOR, mutates=False),
    "token-list": CommandAccess(Role.ADMIN, mutates=False),
    # snapshots are the node's own files and change no replicated state: an audit entry
    # after each would leave every snapshot one entry behind the state it was asked of
    **dict.fromkeys(("snapshot", "snapshot-save"), CommandAccess(Role.ADMIN, mutates=False)),
    # load generators for bench/: their heartbeat entries change no task, rule or member,
    # and an audit entry per write would double the log the benchmark measures; bench-gc
    # only reads the collector's counters
    **dict.fromkeys(("bench-propose", "bench-write", "bench-gc"),
                    CommandAccess(Role.ADMIN, mutates=False)),
    # tasks, nodes and plans: operators
    **dict.fromkeys((
        "task-submit", "task-cancel", "task-retry", "task-rerun", "plan-cancel", "plan-run", "drain",
        "rules-enable", "rules-disable",
    ), _OPERATE),
    # membership, leadership, the log, rule uploads, tokens, load generators: admins
    **dict.fromkeys((
        "add-learner", "promote", "remove", "transfer-leader", "check-write", "rules-reload",
        "bench-plan", "token-add", "token-revoke", "login-link",
    ), _ADMINISTER),
}


def command_access(command: str) -> CommandAccess:
    """The table's entry for `command`; an unlisted command needs ADMIN and is audited."""
    return COMMAND_ACCESS.get(command, UNLISTED)
