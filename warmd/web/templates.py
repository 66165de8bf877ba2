"""Jinja2 templates of the web server: `setup_templates(app)` once per app (idempotent).

Templates live in warmd/web/templates/ and extend base.html (blocks `title` and `content`);
autoescaping is on for every template, and the filters below format times and ratios the
same way on every page. Every template, whoever renders it, gets from the request what
base.html shows: the actor, the CSRF token for its forms, the path, a notice, and whether
to show operator and admin forms.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from warmd.access import ACTOR_KEY, CSRF_KEY, Actor, Role

_INSTALLED = web.AppKey("warmd.templates", bool)


def setup_templates(app: web.Application) -> None:
    """Install the package's templates and filters on `app` (a second call does nothing)."""
    if app.get(_INSTALLED):
        return
    environment = aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("warmd.web", "templates"),
        context_processors=[request_context],
        autoescape=jinja2.select_autoescape(default=True),
        trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(when=when, age=age, percent=percent)
    app[_INSTALLED] = True


async def request_context(request: web.Request) -> dict[str, Any]:
    """What base.html reads from the request (the auth layer leaves the actor and token)."""
    actor = request.get(ACTOR_KEY)
    actor = actor if isinstance(actor, Actor) else None
    return {"actor": actor, "csrf_token": request.get(CSRF_KEY, ""), "path": request.path,
            "notice": request.query.get("notice", ""),
            "can_operate": _may(actor, Role.OPERATOR), "can_admin": _may(actor, Role.ADMIN)}


def _may(actor: Actor | None, role: Role) -> bool:
    """Whether to show a form: with no auth layer every form shows (the server decides)."""
    return actor is None or actor.role >= role


def when(at_ms: int | None) -> str:
    """`1765043401000` -> `2025-12-06 17:50:01` (UTC); "—" for none."""
    if not at_ms:
        return "—"
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(at_ms: int | None, now_ms: int) -> str:
    """How long ago, in the largest fitting unit: `4 s ago`, `12 min ago`, `3 h ago`."""
    if not at_ms:
        return "—"
    seconds = max(0, now_ms - at_ms) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def percent(ratio: float | None, digits: int = 1) -> str:
    return "—" if ratio is None else f"{ratio * 100:.{digits}f}%"
