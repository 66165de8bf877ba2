"""warmctl's access commands: `token add --name N --role R [--ttl S] | list | revoke N`,
`audit [filters]` and `login-link`. The secret of a new token is printed once, by `token
add`; nothing lists it again. Human output by default, `--json` for scripts."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from warmd.access import Interface, Role
from warmd.cli.cluster import _call, _command, _print, call_pages
from warmd.cli.command import page_limit, positive_int
from warmd.cli.plans_view import local_time, when
from warmd.statemachine.access import RESULTS


def register(subparsers: argparse._SubParsersAction) -> None:
    token = subparsers.add_parser("token", help="add, list and revoke named console/API tokens",
                                  description="add, list and revoke named console/API tokens")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION")
    actions.required = True
    parser = _command(actions, "add", "create a token; its secret is printed once", _add)
    parser.add_argument("--name", required=True, help="the token's name (shown in the audit)")
    parser.add_argument("--role", required=True, choices=[role.name.lower() for role in Role])
    parser.add_argument("--ttl", type=positive_int, metavar="SECONDS",
                        help="expire after this many seconds (default: never)")
    _command(actions, "list", "the tokens: name, role, state, expiry (never the secret)", _list)
    parser = _command(actions, "revoke", "revoke a token for good", _revoke)
    parser.add_argument("name", metavar="NAME")
    parser = _command(subparsers, "audit", "who did what, newest first (filters below)", _audit)
    parser.add_argument("--actor", help="only this actor (a token name or `uid N (user)`)")
    parser.add_argument("--action", help="only this command, e.g. task-cancel")
    parser.add_argument("--by-token", dest="token_name", metavar="NAME",
                        help="only the calls made with this token")
    parser.add_argument("--interface", choices=[interface.value for interface in Interface])
    parser.add_argument("--result", choices=sorted(RESULTS))
    parser.add_argument("--since-s", type=positive_int, metavar="SECONDS",
                        help="only the last SECONDS")
    parser.add_argument("--limit", type=page_limit, default=100,
                        help="show at most N records (default 100; 0 for all)")
    parser = _command(subparsers, "login-link",
                      "a one-time console login link for this node (single use, short expiry)",
                      _login_link)


def _add(args: argparse.Namespace) -> int:
    call_args: dict[str, Any] = {"name": args.name, "role": args.role}
    if args.ttl:
        call_args["ttl_s"] = args.ttl
    reply = _call(args, "token-add", **call_args)

    def human(reply: Mapping[str, Any]) -> str:
        expiry = local_time(reply["expires_ms"]) if reply["expires_ms"] else "never"
        return (f"token {reply['name']} ({reply['role']}, expires {expiry}) created; its "
                f"secret, shown this once:\n{reply['secret']}")
    return _print(args, reply, human)


def _list(args: argparse.Namespace) -> int:
    reply = _call(args, "token-list")

    def human(reply: Mapping[str, Any]) -> str:
        now_ms = int(time.time() * 1000)
        lines = [f"{'NAME':<24} {'ROLE':<9} {'STATE':<8} {'EXPIRES':<32} CREATED BY"]
        for token in reply["tokens"]:
            lines.append(f"{token['name']:<24} {token['role']:<9} {token['state']:<8} "
                         f"{when(token['expires_ms'], now_ms):<32} {token['created_by']}")
        lines.append(f"{len(reply['tokens'])} tokens")
        return "\n".join(lines)
    return _print(args, reply, human)


def _revoke(args: argparse.Namespace) -> int:
    reply = _call(args, "token-revoke", name=args.name)
    return _print(args, reply, lambda r: f"token {r['name']} revoked")


def audit_line(record: Mapping[str, Any]) -> str:
    """One audit record: time, index, who (role, interface, source), what, result."""
    who = f"{record['actor']} ({record['role']}, {record['interface']})"
    target = f" {record['target']}" if record["target"] else ""
    error = f": {record['error']}" if record["error"] else ""
    return (f"{local_time(record['time_ms'])} #{record['index']:<8} {who:<44} "
            f"{record['action']}{target} -> {record['result']}{error}")


def _audit(args: argparse.Namespace) -> int:
    call_args: dict[str, Any] = {name: getattr(args, name) for name in
                                 ("actor", "action", "interface", "result")
                                 if getattr(args, name)}
    if args.token_name:
        call_args["token"] = args.token_name
    if args.since_s:
        call_args["since_ms"] = int(time.time() * 1000) - args.since_s * 1000
    reply = call_pages(args, "audit", "records", args.limit or None, **call_args)

    def human(reply: Mapping[str, Any]) -> str:
        lines = [audit_line(record) for record in reply["records"]]
        shown = f"{len(reply['records'])} shown of " if len(reply["records"]) < reply["total"] \
            else ""
        lines.append(f"{shown}{reply['total']} audit records")
        return "\n".join(lines)
    return _print(args, reply, human)


def _login_link(args: argparse.Namespace) -> int:
    reply = _call(args, "login-link")
    return _print(args, reply, lambda r: f"{r['url']}\n(single use, valid for "
                                         f"{r['valid_s']} s, logs in as {r['actor']})")
