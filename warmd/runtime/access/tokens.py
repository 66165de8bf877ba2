"""Who a token is: presented secrets checked against the replicated tokens (hashes only),
with this node's clock for expiry."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from warmd.access import Actor, Interface, Role
from warmd.admin.protocol import ErrorCode
from warmd.clock import Clock
from warmd.errors import AdminError, WarmdError
from warmd.statemachine.access import TokenRecord, hash_secret
from warmd.statemachine.state import MachineState

UNKNOWN_TOKEN = "unknown token (mistyped, or never added: `warmctl token list` shows the names)"


class AccessRefused(WarmdError):
    """A presented token may not be used: unknown, expired or revoked (the message says)."""


class TokenAuthority:
    """Checks presented secrets against the replicated tokens."""

    def __init__(self, state: Callable[[], MachineState], clock: Clock) -> None:
        self._state = state
        self._clock = clock

    def token(self, secret: str) -> TokenRecord:
        """The token whose hash matches `secret`, usable now.

        Raises:
            AccessRefused: no such token, or it expired or was revoked.
        """
        digest = hash_secret(secret)
        found = None
        for record in self._state().access.tokens.values():
            if hmac.compare_digest(record.secret_hash, digest):
                found = record
        if found is None:
            raise AccessRefused(UNKNOWN_TOKEN)
        refusal = found.refusal(self._clock.wall_ms())
        if refusal:
            raise AccessRefused(refusal)
        return found

    def actor(self, secret: str, interface: Interface, source: str) -> Actor:
        """The Actor a secret stands for. Raises: AccessRefused."""
        record = self.token(secret)
        return Actor(name=record.name, role=Role.parse(record.role), interface=interface,
                     source=source, token_name=record.name)

    def refusal(self, token_name: str, created_ms: int) -> str:
        """Why a session made from the token `token_name` (created at `created_ms`, so a
        token revoked and re-added under the same name does not revive it) must end ("" while
        it may go on)."""
        record = self._state().access.tokens.get(token_name)
        if record is None or record.created_ms != created_ms:
            return f"token {token_name!r} no longer exists"
        return record.refusal(self._clock.wall_ms())

    def token_created_ms(self, token_name: str) -> int | None:
        """When the token `token_name` was created (None: there is none)."""
        record = self._state().access.tokens.get(token_name)
        return record.created_ms if record is not None else None

    def for_socket(self, secret: str, actor: Actor) -> Actor:
        """The admin server's authenticator: the token's actor, on the socket's connection.

        Raises:
            AdminError: (permission_denied) the token is refused, with the reason.
        """
        try:
            return self.actor(secret, Interface.WARMCTL, actor.source)
        except AccessRefused as error:
            raise AdminError(ErrorCode.PERMISSION_DENIED, str(error)) from None
