"""Console sessions and one-time login codes, kept in this node's memory.

A session is what a login turns a token into: a random id in an HttpOnly SameSite=Strict
cookie, the actor it stands for, and the CSRF token its forms must send back. Sessions are
per node and do not survive a restart (log in again); a session made from a token ends as
soon as the token is revoked or expires (the middleware asks the authority each time).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass

from warmd.access import Actor
from warmd.clock import Clock

SESSION_TTL_S = 8 * 3600
SESSIONS_MAX = 10_000  # the oldest is dropped first
CODE_TTL_S = 300  # a one-time login link is good for five minutes, once
CODES_MAX = 100


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    actor: Actor
    csrf_token: str
    expires_s: float  # on the node's monotonic clock
    token_created_ms: int | None  # the token's creation stamp; None: made without a token


@dataclass(frozen=True, slots=True)
class _Code:
    actor: Actor
    token_created_ms: int | None
    expires_s: float


class SessionStore:
    """Sessions by id and unused login codes, both bounded and expiring."""

    def __init__(self, clock: Clock, ttl_s: float = SESSION_TTL_S) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._codes: OrderedDict[str, _Code] = OrderedDict()

    def create(self, actor: Actor, token_created_ms: int | None) -> Session:
        session = Session(secrets.token_urlsafe(32), actor, secrets.token_urlsafe(32),
                          self._clock.monotonic() + self._ttl_s, token_created_ms)
        self._sessions[session.session_id] = session
        while len(self._sessions) > SESSIONS_MAX:
            self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str) -> Session | None:
        """The live session with this id, or None (an expired one is forgotten)."""
        session = self._sessions.get(session_id)
        if session is not None and session.expires_s <= self._clock.monotonic():
            del self._sessions[session_id]
            return None
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def issue_code(self, actor: Actor, token_created_ms: int | None) -> str:
        """A one-time login code for `actor`, good for CODE_TTL_S seconds."""
        code = secrets.token_urlsafe(32)
        self._codes[code] = _Code(actor, token_created_ms, self._clock.monotonic() + CODE_TTL_S)
        while len(self._codes) > CODES_MAX:
            self._codes.popitem(last=False)
        return code

    def redeem(self, code: str) -> Session | None:
        """A new session for an unused, unexpired code (which is then spent), else None."""
        issued = self._codes.pop(code, None)
        if issued is None or issued.expires_s <= self._clock.monotonic():
            return None
        return self.create(issued.actor, issued.token_created_ms)
