"""Tokens and the audit trail in the replicated state: hashes only, revocation, retention."""

from __future__ import annotations

import pytest

from warmd.statemachine.access import (
    AUDIT_KEPT,
    AddToken,
    RecordAudit,
    RevokeToken,
    hash_secret,
)
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.schema import InvalidCommand
from warmd.statemachine.state import Applied, Rejected

SECRET = "wmd_the-secret-itself"


def add(name: str = "ci", secret: str = SECRET, role: str = "operator") -> AddToken:
    return AddToken(name=name, role=role, secret_hash=hash_secret(secret), expires_ms=0,
                    created_by="uid 0 (root)", now_ms=10)


def audit(action: str, now_ms: int = 20) -> RecordAudit:
    return RecordAudit(actor="ci", role="operator", token_name="ci", interface="api",
                       source="127.0.0.1", action=action, subject="task_id=t1", result="ok",
                       error="", now_ms=now_ms)


def test_a_token_is_kept_as_its_hash_and_never_as_its_secret() -> None:
    """The state and its snapshot hold the SHA-256 of the secret, not the secret."""
    machine = StateMachine()
    assert machine.apply(1, add()) == Applied("ci")
    snapshot = machine.snapshot()
    assert SECRET.encode() not in snapshot
    assert hash_secret(SECRET).encode() in snapshot
    restored = StateMachine()
    restored.restore(snapshot)
    assert restored.state.access.tokens["ci"].secret_hash == hash_secret(SECRET)
    assert restored.digest() == machine.digest()


def test_a_name_in_use_is_refused_until_revoked_and_a_revoke_is_final() -> None:
    """A live token's name cannot be taken; a revoked one can be re-added; revoking twice is
    refused."""
    machine = StateMachine()
    machine.apply(1, add())
    assert isinstance(machine.apply(2, add(secret="other")), Rejected)
    assert machine.apply(3, RevokeToken(name="ci", now_ms=30)) == Applied("ci")
    assert machine.state.access.tokens["ci"].refusal(31) == "token 'ci' was revoked"
    assert isinstance(machine.apply(4, RevokeToken(name="ci", now_ms=31)), Rejected)
    assert machine.apply(5, add(secret="other")) == Applied("ci")
    assert isinstance(machine.apply(6, RevokeToken(name="nobody", now_ms=31)), Rejected)


def test_a_token_expires_at_its_time() -> None:
    """`refusal` is empty before the expiry and names it from then on."""
    machine = StateMachine()
    machine.apply(1, AddToken(name="short", role="viewer", secret_hash=hash_secret("x"),
                              expires_ms=1_000, created_by="root", now_ms=0))
    token = machine.state.access.tokens["short"]
    assert token.refusal(999) == ""
    assert token.refusal(1_000) == "token 'short' has expired"


def test_bad_roles_and_hashes_are_refused_when_built() -> None:
    """An unknown role or a hash of the wrong length never reaches the log."""
    with pytest.raises(InvalidCommand, match="unknown role"):
        add(role="root")
    with pytest.raises(InvalidCommand, match="secret_hash"):
        AddToken(name="x", role="viewer", secret_hash="short", expires_ms=0, created_by="",
                 now_ms=0)


def test_audit_records_outlive_their_token_and_the_newest_are_kept() -> None:
    """Records stay after the token is revoked; past AUDIT_KEPT the oldest go first; the
    trail survives a snapshot."""
    machine = StateMachine()
    machine.apply(1, add())
    machine.apply(2, audit("task-cancel"))
    machine.apply(3, RevokeToken(name="ci", now_ms=30))
    trail = machine.state.access.audit
    assert [(record.index, record.action, record.token_name) for record in trail] == \
        [(2, "task-cancel", "ci")]
    for index in range(4, 4 + AUDIT_KEPT):
        machine.apply(index, audit("drain", now_ms=index))
    assert len(trail) == AUDIT_KEPT
    assert trail[0].index == 4 and trail[-1].index == 3 + AUDIT_KEPT
    restored = StateMachine()
    restored.restore(machine.snapshot())
    assert list(restored.state.access.audit) == list(trail)
