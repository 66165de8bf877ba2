"""The web server's authentication and authorisation middleware.

Each request is identified once: a bearer token (the API; a named token, or the `[web]
token_file` scrape token, which is a viewer) or the session cookie of a console login. The
handler's `@requires(role)` mark (warmd/access.py; unmarked means ADMIN) is then enforced
here, by the server: no credentials -> 401 (a browser asking for a page is sent to the login
form instead), too low a role -> 403. A cookie session must send its CSRF token with every
unsafe method to a route that is not public. Anonymous requests reach only `@public` handlers, and /metrics while the
listener is on loopback without a scrape token (as before the console existed).
"""

from __future__ import annotations

import dataclasses
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Middleware

from warmd import metrics
from warmd.access import ACTOR_KEY, CSRF_KEY, Actor, Interface, Role, required_role
from warmd.logging import get_logger
from warmd.runtime.access.tokens import AccessRefused, TokenAuthority
from warmd.web.sessions import Session, SessionStore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
F = TypeVar("F", bound=Callable[..., Any])
SESSION_COOKIE = "warmd_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
METRICS_PATH = "/metrics"
SCRAPER = "metrics scraper ([web] token_file)"
_PUBLIC_ATTRIBUTE = "__warmd_public__"
_log = get_logger("warmd.web.auth")


def public(handler: F) -> F:
    """Mark a handler anyone may call, logged in or not (the login page)."""
    setattr(handler, _PUBLIC_ATTRIBUTE, True)
    return handler


def is_public(handler: Callable[..., Any]) -> bool:
    return getattr(handler, _PUBLIC_ATTRIBUTE, False) is True


@dataclass(frozen=True, slots=True)
class WebAccess:
    """What the middleware checks requests against."""

    authority: TokenAuthority
    sessions: SessionStore
    scrape_token: str | None = None  # `[web] token_file`: a viewer bearer token for scrapers
    open_metrics: bool = False  # /metrics for anyone (loopback listener, no scrape token)


@dataclass(frozen=True, slots=True)
class Identity:
    actor: Actor | None
    session: Session | None = None


def error_response(status: int, message: str, **headers: str) -> web.Response:
    """A JSON error body with a message (never a traceback)."""
    code = {401: "unauthorized", 403: "forbidden"}.get(status, "error")
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


def _source(request: web.Request) -> str:
    return request.remote or ""


def identify(request: web.Request, access: WebAccess) -> Identity:
    """Who sent the request, from its bearer token or session cookie.

    Raises:
        AccessRefused: a bearer token was given and is unknown, expired or revoked.
    """
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AccessRefused("the Authorization header must be `Bearer <token>`")
        secret = secret.strip()
        if access.scrape_token and hmac.compare_digest(secret.encode(), access.scrape_token.encode()):
            return Identity(Actor(SCRAPER, Role.VIEWER, Interface.API, _source(request)))
        return Identity(access.authority.actor(secret, Interface.API, _source(request)))
    session = access.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        return Identity(None)
    token_name = session.actor.token_name
    if token_name is not None and session.token_created_ms is not None:
        refusal = access.authority.refusal(token_name, session.token_created_ms)
        if refusal:
            access.sessions.end(session.session_id)
            _log.info("console_session_ended", actor=session.actor.name, reason=refusal)
            return Identity(None)
    actor = dataclasses.replace(session.actor, source=_source(request))
    return Identity(actor, session)


def _wants_page(request: web.Request) -> bool:
    """A browser navigating to a page (sent to the login form), not an API or script call."""
    return (request.method in SAFE_METHODS and "text/html" in request.headers.get("Accept", "")
            and not request.path.startswith("/api/"))


def _unauthenticated(request: web.Request) -> web.StreamResponse:
    if _wants_page(request):
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    metrics.AUTH_FAILURES.labels(reason="missing").inc()
    return error_response(401, f"{request.path} needs a login or an `Authorization: Bearer "
                          "<token>` header", **{"WWW-Authenticate": "Bearer"})


async def _csrf_given(request: web.Request) -> str:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in ("application/x-www-form-urlencoded",
                                                  "multipart/form-data"):
        field = (await request.post()).get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    return given or ""


def auth_middleware(access: WebAccess) -> Middleware:
    """The middleware enforcing the module docstring's rules."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            identity = identify(request, access)
        except AccessRefused as error:
            metrics.AUTH_FAILURES.labels(reason="wrong_token").inc()
            return error_response(401, str(error), **{"WWW-Authenticate": "Bearer"})
        if identity.actor is not None:
            request[ACTOR_KEY] = identity.actor
        if identity.session is not None:
            request[CSRF_KEY] = identity.session.csrf_token
        refusal = await _refusal(request, access, identity)
        return refusal if refusal is not None else await handler(request)

    return check


async def _refusal(request: web.Request, access: WebAccess,
                   identity: Identity) -> web.StreamResponse | None:
    """None when the request may reach its handler, else the response refusing it."""
    match = request.match_info
    if match.http_exception is not None:
        return None  # 404 or 405: nothing to protect
    route_handler = match.handler
    if is_public(route_handler):
        return None  # the login form, which guards itself (a double-submitted CSRF token)
    if not (access.open_metrics and request.path == METRICS_PATH):
        needed = required_role(route_handler)
        actor = identity.actor
        if actor is None:
            return _unauthenticated(request)
        if actor.role < needed:
            route = match.route.resource.canonical if match.route.resource else request.path
            return error_response(403, f"{actor.name} holds the {actor.role.name.lower()} "
                                  f"role; {request.method} {route} needs {needed.name.lower()}")
    if identity.session is not None and request.method not in SAFE_METHODS:
        given = await _csrf_given(request)
        if not hmac.compare_digest(given.encode(), identity.session.csrf_token.encode()):
            return error_response(403, "missing or wrong CSRF token: reload the page and "
                                  "submit the form again")
    return None


async def auth_context(request: web.Request) -> dict[str, Any]:
    """Every template's `actor` (None: anonymous) and `csrf_token` (for its forms)."""
    return {"actor": request.get(ACTOR_KEY), "csrf_token": request.get(CSRF_KEY, "")}
