"""Who may do what: the roles of the console, the API and `warmctl`, and the actor of a call.

Kept in a module of its own that imports nothing of warmd, so the admin server, the web
console and the state machine's audit records can all speak of the same roles without
importing each other.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar


class Role(enum.IntEnum):
    """Ordered: a higher role may do all a lower one may."""

    VIEWER = 1  # read pages, the API and the event stream
    OPERATOR = 2  # tasks (cancel, retry, run), nodes (drain), rules on/off
    ADMIN = 3  # membership, leadership, rule upload, tokens

    @classmethod
    def parse(cls, text: str) -> Role:
        """`"operator"` -> Role.OPERATOR. Raises: ValueError naming the known roles."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            known = ", ".join(role.name.lower() for role in cls)
            raise ValueError(f"unknown role {text!r} (known: {known})") from None


class Interface(enum.StrEnum):
    """Through what a call came, as an audit record says."""

    UI = "ui"
    API = "api"
    WARMCTL = "warmctl"
    DAEMON = "daemon"  # the node itself (planner, executor): not a person


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a call: the name (a token's name, or `uid 1000 (alice)` on the admin
    socket), the role it holds, the interface and the source address."""

    name: str
    role: Role
    interface: Interface
    source: str = ""
    token_name: str | None = None


# The admin socket's peers were vouched for by the kernel (SO_PEERCRED and the socket's mode).
SYSTEM = Actor(name="daemon", role=Role.ADMIN, interface=Interface.DAEMON)

F = TypeVar("F", bound=Callable[..., Any])
_ROLE_ATTRIBUTE = "__warmd_role__"


def requires(role: Role) -> Callable[[F], F]:
    """Mark a web handler with the least role that may call it (checked by the server)."""

    def mark(handler: F) -> F:
        setattr(handler, _ROLE_ATTRIBUTE, role)
        return handler

    return mark


def required_role(handler: Callable[..., Any]) -> Role:
    """The role a handler was marked with; an unmarked handler needs ADMIN (fail closed)."""
    role = getattr(handler, _ROLE_ATTRIBUTE, None)
    return role if isinstance(role, Role) else Role.ADMIN


# Where the web server's auth middleware leaves its findings on each aiohttp request:
# `request[ACTOR_KEY]` is the Actor (absent: no one is logged in), and `request[CSRF_KEY]`
# the token every form of a cookie session must send back as its `csrf_token` field.
ACTOR_KEY = "warmd.actor"
CSRF_KEY = "warmd.csrf_token"
