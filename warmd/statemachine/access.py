"""Replicated access records (pure): named API tokens, kept only as hashes, and the audit trail.

A token's secret never enters the log: the node that creates it hashes it and proposes
`AddToken` with the hash, so neither the log, the snapshots nor any replica holds the
secret. Every mutation made through the admin path is followed by a `RecordAudit` entry;
the newest AUDIT_KEPT records are kept, whether or not their token still exists.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass

from warmd.access import Interface, Role
from warmd.statemachine.schema import Validated, check_min, check_name, check_text, fail

# Constants, not settings: replicas with different limits would diverge.
AUDIT_KEPT = 10_000
TOKENS_MAX = 1_000
HASH_CHARS = 64  # hex SHA-256
ROLE_NAMES = frozenset(role.name.lower() for role in Role)
INTERFACE_NAMES = frozenset(interface.value for interface in Interface)
RESULTS = frozenset({"ok", "error", "denied"})


def hash_secret(secret: str) -> str:
    """The stored form of a token's secret. One SHA-256 is enough: secrets are 256 random
    bits made by the daemon, so there is nothing for a slow hash to protect."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _check_role(where: str, role: str) -> None:
    if role not in ROLE_NAMES:
        fail(where, f"unknown role {role!r} (known: {', '.join(sorted(ROLE_NAMES))})")


@dataclass(frozen=True, slots=True, kw_only=True)
class AddToken(Validated):
    """Create (or re-create after a revoke) the token `name`; applied value: the name."""

    name: str
    role: str  # a Role's lower-case name
    secret_hash: str
    expires_ms: int  # 0: never
    created_by: str
    now_ms: int

    def _check_values(self) -> None:
        check_name("AddToken.name", self.name)
        _check_role("AddToken.role", self.role)
        if len(self.secret_hash) != HASH_CHARS:
            fail("AddToken.secret_hash", f"must be {HASH_CHARS} hex characters")
        check_min("AddToken.expires_ms", self.expires_ms, 0)
        check_text("AddToken.created_by", self.created_by)


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeToken(Validated):
    """Revoke the token `name` for good; applied value: the name."""

    name: str
    now_ms: int

    def _check_values(self) -> None:
        check_name("RevokeToken.name", self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordAudit(Validated):
    """One audited action: who did what through which interface, and how it ended."""

    actor: str
    role: str
    token_name: str  # "" when the actor used no token (the admin socket's uid)
    interface: str
    source: str
    action: str
    subject: str  # what the action was on (a task id, a node, a token name); may be ""
    result: str  # ok, error or denied
    error: str
    now_ms: int

    def _check_values(self) -> None:
        _check_role("RecordAudit.role", self.role)
        if self.interface not in INTERFACE_NAMES:
            fail("RecordAudit.interface", f"unknown interface {self.interface!r}")
        if self.result not in RESULTS:
            fail("RecordAudit.result", f"must be one of {', '.join(sorted(RESULTS))}")
        check_name("RecordAudit.action", self.action)
        for name in ("actor", "token_name", "source", "subject", "error"):
            check_text(f"RecordAudit.{name}", getattr(self, name))


@dataclass(slots=True)
class TokenRecord:
    """A named token as every replica holds it: its hash, never its secret."""

    name: str
    role: str
    secret_hash: str
    created_ms: int
    expires_ms: int  # 0: never
    created_by: str
    index: int  # log index of the AddToken
    revoked_ms: int = 0  # 0 while it is not revoked

    def refusal(self, now_ms: int) -> str:
        """Why the token may not be used at `now_ms` ("" when it may)."""
        if self.revoked_ms:
            return f"token {self.name!r} was revoked"
        if self.expires_ms and now_ms >= self.expires_ms:
            return f"token {self.name!r} has expired"
        return ""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One committed audit entry; `index` is its own log index, which follows the entries
    of the action it records."""

    index: int
    time_ms: int
    actor: str
    role: str
    token_name: str
    interface: str
    source: str
    action: str
    subject: str
    result: str
    error: str


class AccessState:
    """The tokens (by name) and the newest audit records, oldest first."""

    __slots__ = ("audit", "tokens")

    def __init__(self) -> None:
        self.tokens: dict[str, TokenRecord] = {}
        self.audit: deque[AuditRecord] = deque(maxlen=AUDIT_KEPT)

    def add_token(self, index: int, command: AddToken) -> str:
        """"" when added, else why it was refused."""
        current = self.tokens.get(command.name)
        if current is not None and not current.revoked_ms:
            return f"token {command.name!r} exists; revoke it first"
        live = sum(1 for token in self.tokens.values() if not token.revoked_ms)
        if current is None and len(self.tokens) >= TOKENS_MAX:
            if live >= TOKENS_MAX:
                return f"at most {TOKENS_MAX} tokens"
            self._forget_oldest_revoked()
        if any(token.secret_hash == command.secret_hash for token in self.tokens.values()):
            return "a token with this secret exists"
        self.tokens[command.name] = TokenRecord(
            command.name, command.role, command.secret_hash, command.now_ms,
            command.expires_ms, command.created_by, index)
        return ""

    def _forget_oldest_revoked(self) -> None:
        oldest = min((token for token in self.tokens.values() if token.revoked_ms),
                     key=lambda token: token.revoked_ms)
        del self.tokens[oldest.name]

    def revoke_token(self, command: RevokeToken) -> str:
        """"" when revoked, else why it was refused."""
        token = self.tokens.get(command.name)
        if token is None:
            return f"no token {command.name!r}"
        if token.revoked_ms:
            return f"token {command.name!r} is already revoked"
        token.revoked_ms = max(command.now_ms, 1)
        return ""

    def record(self, index: int, command: RecordAudit) -> None:
        self.audit.append(AuditRecord(
            index, command.now_ms, command.actor, command.role, command.token_name,
            command.interface, command.source, command.action, command.subject,
            command.result, command.error))
