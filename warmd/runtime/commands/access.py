"""The daemon's access commands on the admin socket: `token-add`, `token-list`,
`token-revoke` and `audit`.

A token's secret is made here, shown once in `token-add`'s reply, and only its hash is
proposed: no log entry, snapshot or listing ever holds it. `audit` lists the replicated
audit trail newest first, filtered and paged like `task-list`, after a ReadIndex read.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from warmd.access import Actor, Interface, Role
from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.errors import AdminError
from warmd.runtime.commands.errors import propose_applied, raft_errors
from warmd.runtime.commands.paging import page_request, take_page
from warmd.runtime.node.driver import Driver
from warmd.statemachine.access import (
    RESULTS,
    AddToken,
    AuditRecord,
    RevokeToken,
    TokenRecord,
    hash_secret,
)
from warmd.statemachine.commands import Command, InvalidCommand

SECRET_PREFIX = "wmd_"  # makes a leaked secret easy to recognise (and to grep for)
TTL_S_MAX = 10 * 366 * 24 * 3600
AUDIT_LIMIT_DEFAULT = 100
AUDIT_LIMIT_MAX = 10_000
AUDIT_FILTERS = ("actor", "action", "interface", "result", "token")


def new_secret() -> str:
    """A fresh token secret: 256 random bits."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def token_document(token: TokenRecord, now_ms: int) -> dict[str, Any]:
    """A token as listed: never its secret, nor its hash."""
    refusal = token.refusal(now_ms)
    state = "revoked" if token.revoked_ms else "expired" if refusal else "active"
    return {"name": token.name, "role": token.role, "state": state,
            "created_ms": token.created_ms, "created_by": token.created_by,
            "expires_ms": token.expires_ms or None, "revoked_ms": token.revoked_ms or None}


def audit_document(record: AuditRecord) -> dict[str, Any]:
    document = asdict(record)
    document["target"] = document.pop("subject")
    document["token_name"] = record.token_name or None
    return document


def _text(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError(ErrorCode.BAD_REQUEST, f"{name} must be a non-empty string, got {value!r:.60}")
    return value


def _ttl_s(args: Mapping[str, Any]) -> int:
    ttl = args.get("ttl_s", 0)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 <= ttl <= TTL_S_MAX:
        raise AdminError(ErrorCode.BAD_REQUEST,
                         f"ttl_s must be an integer 0..{TTL_S_MAX} (0: never expires), got {ttl!r:.40}")
    return ttl


def _filters(args: Mapping[str, Any]) -> dict[str, str]:
    chosen = {}
    for name in AUDIT_FILTERS:
        if args.get(name) is not None:
            chosen[name] = _text(args, name)
    if chosen.get("result", "ok") not in RESULTS:
        raise AdminError(ErrorCode.BAD_REQUEST, f"result must be one of {sorted(RESULTS)}")
    if chosen.get("interface", "ui") not in {interface.value for interface in Interface}:
        raise AdminError(ErrorCode.BAD_REQUEST, "interface must be one of "
                         + ", ".join(interface.value for interface in Interface))
    return chosen


def _matches(record: AuditRecord, filters: Mapping[str, str], since_ms: int) -> bool:
    fields = {"actor": record.actor, "action": record.action, "interface": record.interface,
              "result": record.result, "token": record.token_name}
    return record.time_ms >= since_ms and all(
        fields[name] == value for name, value in filters.items())


def _before(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise AdminError(ErrorCode.BAD_REQUEST, f"cursor {cursor!r:.40} is not one this daemon gave")
    return int(cursor)


class AccessCommands:
    """Handlers bound to one driver; `register(server)` adds them to the admin server."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    def register(self, server: AdminServer) -> None:
        server.register("token-add", self.add, with_actor=True,
                        summary="create a named token with a role; its secret is shown once")
        server.register("token-list", self.list_tokens, summary="the named tokens (never secrets)")
        server.register("token-revoke", self.revoke, summary="revoke a named token for good")
        server.register("audit", self.audit, summary="who did what, newest first")

    async def _write(self, command: Command) -> Any:
        return await propose_applied(self._driver, command)

    async def add(self, args: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        name = _text(args, "name")
        try:
            role = Role.parse(_text(args, "role"))
        except ValueError as error:
            raise AdminError(ErrorCode.BAD_REQUEST, str(error)) from None
        ttl_s = _ttl_s(args)
        now_ms = self._driver.clock.wall_ms()
        secret = new_secret()
        try:
            command = AddToken(name=name, role=role.name.lower(), secret_hash=hash_secret(secret),
                               expires_ms=now_ms + ttl_s * 1000 if ttl_s else 0,
                               created_by=actor.name, now_ms=now_ms)
        except InvalidCommand as error:
            raise AdminError(ErrorCode.BAD_REQUEST, f"token refused: {error}") from None
        await self._write(command)
        return {"name": name, "role": command.role, "expires_ms": command.expires_ms or None,
                "secret": secret}

    async def list_tokens(self, args: Mapping[str, Any]) -> dict[str, Any]:
        async with raft_errors():
            read_index = await self._driver.read()
        tokens = self._driver.state.access.tokens
        now_ms = self._driver.clock.wall_ms()
        return {"read_index": read_index,
                "tokens": [token_document(tokens[name], now_ms) for name in sorted(tokens)]}

    async def revoke(self, args: Mapping[str, Any]) -> dict[str, Any]:
        name = _text(args, "name")
        await self._write(RevokeToken(name=name, now_ms=self._driver.clock.wall_ms()))
        return {"name": name, "revoked": True}

    async def audit(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Audit records newest first, filtered by actor, action, interface, result, token
        and `since_ms`, a page at a time (`limit`, `cursor` -> `next_cursor`)."""
        request = page_request(args, AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX, minimum=0)
        filters = _filters(args)
        since_ms = args.get("since_ms", 0)
        if not isinstance(since_ms, int) or isinstance(since_ms, bool):
            raise AdminError(ErrorCode.BAD_REQUEST, f"since_ms must be an integer, got {since_ms!r:.40}")
        before = _before(request.cursor)
        async with raft_errors():
            read_index = await self._driver.read()
        matching = [record for record in reversed(self._driver.state.access.audit)
                    if _matches(record, filters, since_ms)]
        after = matching if before is None else [r for r in matching if r.index < before]
        page = take_page(after, request, lambda record: str(record.index), audit_document)
        return {"read_index": read_index, "total": len(matching), "records": page.documents,
                "next_cursor": page.next_cursor}
