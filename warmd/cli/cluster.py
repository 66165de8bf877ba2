"""warmctl's cluster commands: status, members, add-learner, promote, remove, transfer-leader,
snapshot [save FILE], check-write, plugins. Human output by default, `--json` for scripts.

Errors come back from the daemon with a code; command.run prints them and exits with the
code's status (75 for not_leader and timeout: retry, at the leader the message names).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from warmd.admin.client import add_socket_argument, client_from_args
from warmd.cli.command import positive_int
from warmd.cli.plans_view import format_warm_up
from warmd.config_table import parse_address

SLOW_CALL_TIMEOUT_S = 60.0  # membership changes and snapshots wait for a commit
PAGE_ITEMS_MAX = 1000  # asked per page; the daemon may cut a page shorter to fit its line limit


def register(subparsers: argparse._SubParsersAction) -> None:
    _command(subparsers, "status", "show this node's Raft role, term, leader and indexes", _status)
    _command(subparsers, "members", "list the cluster's voters and learners", _members)
    parser = _command(subparsers, "add-learner", "add a non-voting member", _add_learner)
    parser.add_argument("node_id", type=positive_int, metavar="ID")
    parser.add_argument("address", type=_address, metavar="HOST:PORT")
    parser = _command(subparsers, "promote", "make a caught-up learner a voter", _promote)
    parser.add_argument("node_id", type=positive_int, metavar="ID")
    parser = _command(subparsers, "remove", "remove a member from the cluster", _remove)
    parser.add_argument("node_id", type=positive_int, metavar="ID")
    parser = _command(subparsers, "transfer-leader", "hand leadership to another voter",
                      _transfer)
    parser.add_argument("node_id", type=positive_int, nargs="?", metavar="ID",
                        help="the new leader (default: the most caught-up voter)")
    parser = _command(subparsers, "snapshot",
                      "snapshot and compact the log now; `snapshot save FILE` also writes it",
                      _snapshot)
    parser.add_argument("action", nargs="?", choices=["save"])
    parser.add_argument("file", nargs="?", metavar="FILE")
    parser = _command(subparsers, "check-write",
                      "replicate COUNT heartbeats of this node and report the rate", _check_write)
    parser.add_argument("count", type=positive_int, nargs="?", default=100, metavar="COUNT")
    _command(subparsers, "plugins", "list the plugins this node loaded, with their versions",
             _plugins)
    _command(subparsers, "health", "check the quorum and every member; exit 1 if one is "
             "unhealthy", _health)


def _command(subparsers: argparse._SubParsersAction, name: str, help_text: str,
             handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    add_socket_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the reply as JSON")
    parser.set_defaults(handler=handler)
    return parser


def _address(text: str) -> str:
    try:
        return str(parse_address(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _call(args: argparse.Namespace, command: str, timeout_s: float = 10.0, **call_args: Any) -> Any:
    with client_from_args(args, timeout_s) as client:
        return client.call(command, **call_args)


def call_pages(args: argparse.Namespace, command: str, items: str, limit: int | None,
               cursor: str = "cursor", page_limit: str = "limit", **call_args: Any) -> Any:
    """Call a paged command until `limit` items (None: all) are in, following the reply's
    next cursor; the last reply with every page's `items` joined. Pages are the daemon's
    business (each reply stays under its line limit); the operator sees one list."""
    next_name = f"next_{cursor}"
    collected: list[Any] = []
    with client_from_args(args) as client:
        while True:
            wanted = PAGE_ITEMS_MAX if limit is None else min(PAGE_ITEMS_MAX, limit - len(collected))
            reply = client.call(command, **call_args, **{page_limit: wanted})
            page = _items(reply, items)
            collected.extend(page)
            done = reply.get(next_name) is None or (limit is not None and len(collected) >= limit)
            if done or not page:
                break
            call_args[cursor] = reply[next_name]
    _items_parent(reply, items)[items.rpartition(".")[2]] = collected
    return reply


def _items(reply: Any, path: str) -> list[Any]:
    return _items_parent(reply, path)[path.rpartition(".")[2]]


def _items_parent(reply: Any, path: str) -> Any:
    """The object holding the list at `path` (`tasks`, or `task.key_list`)."""
    parent = reply
    for name in path.split(".")[:-1]:
        parent = parent[name]
    return parent


def _print(args: argparse.Namespace, reply: Any, human: Callable[[Any], str]) -> int:
    print(json.dumps(reply, sort_keys=True) if args.json else human(reply))
    return 0


def _status(args: argparse.Namespace) -> int:
    return _print(args, _call(args, "status"), format_status)


def format_status(status: Mapping[str, Any]) -> str:
    """The human form of `warmctl status`."""
    leader = status["leader_id"] or "unknown"
    lines = [
        f"node {status['node_id']}: {status['role']}, term {status['term']}, leader {leader}",
        f"commit {status['commit_index']}, applied {status['applied_index']}, "
        f"last {status['last_index']}, snapshot {status['snapshot_index']}",
    ]
    if "stale_fence_rejections" in status:
        lines.append(f"stale-fence reports refused: {status['stale_fence_rejections']}")
    if status.get("removed"):
        lines.append("this node has been removed from the cluster")
    if "warm_up" in status:
        lines += format_warm_up(status["warm_up"], int(time.time() * 1000))
    lines += [_peer_line(peer) for peer in status["peers"]]
    if "plugins" in status:
        lines.append(f"plugins: {format_plugins_inline(status['plugins'])}")
    return "\n".join(lines)


def format_plugins_inline(plugins: list[Mapping[str, Any]]) -> str:
    """`reversed_path 0.1.0, env_flag 0.1.0, broken (failed)` for the status line."""
    if not plugins:
        return "none installed"
    return ", ".join(f"{p['entry_point']} (failed)" if p["error"] else f"{p['name']} {p['version']}"
                     for p in plugins)


def format_plugins(reply: Mapping[str, Any]) -> str:
    """The human form of `warmctl plugins`: one line per entry point."""
    plugins = reply["plugins"]
    if not plugins:
        return "no plugins installed (entry point group warmd.hooks)"
    lines = [f"{'PLUGIN':<20} {'KIND':<11} {'VERSION':<10} PACKAGE"]
    for plugin in plugins:
        if plugin["error"]:
            lines.append(f"{plugin['entry_point']:<20} {'-':<11} {plugin['version'] or '-':<10} "
                         f"{plugin['package'] or '-'}  FAILED: {plugin['error']}")
        else:
            lines.append(f"{plugin['name']:<20} {plugin['kind']:<11} {plugin['version'] or '-':<10} "
                         f"{plugin['package'] or '-'}")
    return "\n".join(lines)


def format_health(reply: Mapping[str, Any]) -> str:
    """One line for the quorum, one per member, and the verdict."""
    marks = {True: "healthy", False: "UNHEALTHY", None: "unknown"}
    quorum = reply["quorum"]
    lines = [f"quorum    {marks[quorum['healthy']]:<9}  {quorum['detail']}"]
    for member in reply["members"]:
        kind = "voter" if member["voter"] else "learner"
        lines.append(f"node {member['node_id']:<4} {marks[member['healthy']]:<9}  "
                     f"{kind} {member['address'] or '-'}: {member['detail']}")
    lines.append(f"cluster is {'healthy' if reply['healthy'] else 'UNHEALTHY'} "
                 f"(as node {reply['node_id']} sees it)")
    return "\n".join(lines)


def _health(args: argparse.Namespace) -> int:
    reply = _call(args, "health", SLOW_CALL_TIMEOUT_S)
    _print(args, reply, format_health)
    return 0 if reply["healthy"] else 1


def _plugins(args: argparse.Namespace) -> int:
    return _print(args, _call(args, "plugins"), format_plugins)


def _peer_line(peer: Mapping[str, Any]) -> str:
    kind = "voter" if peer["voter"] else "learner"
    line = f"  {peer['node_id']:>3} {kind:<7} {peer['address'] or '-'}"
    if peer["match_index"] is not None:
        line += (f"  match {peer['match_index']} next {peer['next_index']} "
                 f"inflight {peer['inflight']} ({peer['replication']})")
    if peer["last_contact_s"] is not None:
        line += f"  heard {peer['last_contact_s']:.1f}s ago"
    return line


def _members(args: argparse.Namespace) -> int:
    def human(reply: Mapping[str, Any]) -> str:
        lines = [f"leader {reply['leader_id'] or 'unknown'}, term {reply['term']}"]
        for member in reply["members"]:
            kind = "voter" if member["voter"] else "learner"
            mark = " (leader)" if member["node_id"] == reply["leader_id"] else ""
            lines.append(f"{member['node_id']:>3} {kind:<7} {member['address'] or '-'}{mark}")
        return "\n".join(lines)

    return _print(args, _call(args, "members"), human)


def _conf_line(reply: Mapping[str, Any]) -> str:
    return f"voters {reply['voters']}, learners {reply['learners']}"


def _add_learner(args: argparse.Namespace) -> int:
    reply = _call(args, "add-learner", SLOW_CALL_TIMEOUT_S, node_id=args.node_id,
                  address=args.address)
    return _print(args, reply, _conf_line)


def _promote(args: argparse.Namespace) -> int:
    return _print(args, _call(args, "promote", SLOW_CALL_TIMEOUT_S, node_id=args.node_id),
                  _conf_line)


def _remove(args: argparse.Namespace) -> int:
    return _print(args, _call(args, "remove", SLOW_CALL_TIMEOUT_S, node_id=args.node_id),
                  _conf_line)


def _transfer(args: argparse.Namespace) -> int:
    call_args = {} if args.node_id is None else {"node_id": args.node_id}
    reply = _call(args, "transfer-leader", SLOW_CALL_TIMEOUT_S, **call_args)
    return _print(args, reply, lambda reply: f"node {reply['leader_id']} now leads")


def _snapshot(args: argparse.Namespace) -> int:
    if args.action is None:
        if args.file is not None:
            raise SystemExit("warmctl snapshot: use `warmctl snapshot save FILE`")
        reply = _call(args, "snapshot", SLOW_CALL_TIMEOUT_S)
        return _print(args, reply, lambda r: f"snapshot at index {r['index']} term {r['term']} "
                                             f"({r['data_bytes']} bytes)")
    if args.file is None:
        raise SystemExit("warmctl snapshot save: FILE is required")
    reply = _call(args, "snapshot-save", SLOW_CALL_TIMEOUT_S, path=os.path.abspath(args.file))
    return _print(args, reply, lambda r: f"wrote {r['path']}: snapshot at index {r['index']} "
                                         f"term {r['term']} ({r['bytes']} bytes)")


def _check_write(args: argparse.Namespace) -> int:
    reply = _call(args, "check-write", SLOW_CALL_TIMEOUT_S, count=args.count)
    return _print(args, reply, lambda r: f"{r['count']} writes in {r['elapsed_s']} s "
                                         f"({r['per_second']}/s), applied {r['applied_index']}")
