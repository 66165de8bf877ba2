"""The console's access pages: the login form, one-time login links, logout, the audit
trail (`/audit`, `/api/v1/audit`) and the token list with revoke buttons (`/tokens`).

Logging in turns a named token into a session cookie (HttpOnly, SameSite=Strict). The login
form itself is protected against login CSRF by a double-submitted token (a cookie and the
form field must match), since it is posted before any session exists. The audit listing
goes through `AdminServer.invoke` like every other console call, so its role is the
admin table's.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from warmd.access import ACTOR_KEY, Actor, Interface, Role, requires
from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.errors import AdminError
from warmd.logging import get_logger
from warmd.runtime.access.tokens import AccessRefused
from warmd.web.auth import SESSION_COOKIE, WebAccess, error_response, public
from warmd.web.sessions import SESSION_TTL_S, Session

LOGIN_CSRF_COOKIE = "warmd_login_csrf"
AUDIT_FILTERS = ("actor", "action", "interface", "result", "token")
AUDIT_PAGE = 100
_log = get_logger("warmd.web.access")
_STATUS_OF_CODE: dict[str, int] = {ErrorCode.BAD_REQUEST: 400, ErrorCode.PERMISSION_DENIED: 403,
                   ErrorCode.UNKNOWN_COMMAND: 404, ErrorCode.NOT_LEADER: 503,
                   ErrorCode.UNAVAILABLE: 503, ErrorCode.TIMEOUT: 504, ErrorCode.FAILED: 409,
                   ErrorCode.TOO_LARGE: 413}
ADMIN_KEY = web.AppKey("warmd.admin", AdminServer)
ACCESS_KEY = web.AppKey("warmd.access", WebAccess)


def admin_error_response(error: AdminError) -> web.Response:
    """An admin error as an HTTP status and a JSON message."""
    return error_response(_STATUS_OF_CODE.get(error.code, 500), error.message)


def _local_path(target: str) -> str:
    """`target` when it is a path on this site, else "/" (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _with_session_cookie(response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(SESSION_COOKIE, session.session_id, max_age=SESSION_TTL_S, path="/",
                        httponly=True, samesite="Strict")
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")


@public
async def login_form(request: web.Request) -> web.StreamResponse:
    return _render_login(request, "", 200)


def _render_login(request: web.Request, message: str, status: int) -> web.StreamResponse:
    form_csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    context = {"message": message, "form_csrf": form_csrf,
               "next": _local_path(request.query.get("next", "/"))}
    response = aiohttp_jinja2.render_template("login.html", request, context, status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, form_csrf, path="/login", httponly=True,
                        samesite="Strict")
    return response


@public
async def login(request: web.Request) -> web.StreamResponse:
    """Check the double-submitted CSRF token and the token; start a session."""
    form = await request.post()
    given, expected = str(form.get("csrf_token", "")), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(given.encode(), expected.encode()):
        return error_response(403, "missing or wrong CSRF token: reload the login page")
    access = request.app[ACCESS_KEY]
    try:
        token = access.authority.token(str(form.get("token", "")).strip())
    except AccessRefused as error:
        _log.info("console_login_refused", source=request.remote, reason=str(error))
        return _render_login(request, str(error), 401)
    actor = Actor(token.name, Role.parse(token.role), Interface.UI, request.remote or "",
                  token.name)
    session = access.sessions.create(actor, token.created_ms)
    _log.info("console_login", actor=actor.name, role=token.role, source=request.remote)
    response = web.HTTPSeeOther(_local_path(str(form.get("next", "/"))))
    _with_session_cookie(response, session)
    raise response


@public
async def login_once(request: web.Request) -> web.StreamResponse:
    """Redeem a one-time link. Answered with a page rather than a redirect: a browser would
    not send a SameSite=Strict cookie on a redirect that a click in another app started."""
    session = request.app[ACCESS_KEY].sessions.redeem(request.query.get("code", ""))
    if session is None:
        return _render_login(request, "this login link was used already or has expired; "
                             "ask `warmctl login-link` for a new one", 401)
    _log.info("console_login", actor=session.actor.name, via="one-time link",
              source=request.remote)
    response = aiohttp_jinja2.render_template("logged_in.html", request, {"next": "/"})
    _with_session_cookie(response, session)
    return response


@requires(Role.VIEWER)
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session (the middleware checked its CSRF token)."""
    request.app[ACCESS_KEY].sessions.end(request.cookies.get(SESSION_COOKIE, ""))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def audit_args(query: Mapping[str, str]) -> dict[str, Any]:
    """The `audit` command's arguments from a page's or API call's query string."""
    args: dict[str, Any] = {name: query[name] for name in AUDIT_FILTERS if query.get(name)}
    for name in ("limit", "since_ms"):
        if query.get(name):
            if not query[name].isdigit():
                raise AdminError(ErrorCode.BAD_REQUEST, f"{name} must be a whole number")
            args[name] = int(query[name])
    if query.get("cursor"):
        args["cursor"] = query["cursor"]
    return args


async def _audit(request: web.Request) -> dict[str, Any]:
    """Raises: AdminError (bad filters, no quorum for the read)."""
    args = audit_args(request.query)
    reply: dict[str, Any] = await request.app[ADMIN_KEY].invoke("audit", args,
                                                               request[ACTOR_KEY])
    return reply


@requires(Role.OPERATOR)
async def audit_api(request: web.Request) -> web.StreamResponse:
    try:
        return web.json_response(await _audit(request))
    except AdminError as error:
        return admin_error_response(error)


@requires(Role.OPERATOR)
async def audit_page(request: web.Request) -> web.StreamResponse:
    try:
        reply = await _audit(request)
    except AdminError as error:
        return admin_error_response(error)
    for record in reply["records"]:
        record["time"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record["time_ms"] / 1000))
    filters = {name: request.query[name] for name in AUDIT_FILTERS if request.query.get(name)}
    next_url = None
    if reply["next_cursor"] is not None:
        next_url = "/audit?" + urlencode({**filters, "cursor": reply["next_cursor"]})
    context = {"records": reply["records"], "total": reply["total"], "filters": filters,
               "filter_names": AUDIT_FILTERS, "next_url": next_url}
    return aiohttp_jinja2.render_template("audit.html", request, context)


@requires(Role.ADMIN)
async def tokens_page(request: web.Request) -> web.StreamResponse:
    """The named tokens (never their secrets), each with a revoke button."""
    try:
        reply = await request.app[ADMIN_KEY].invoke("token-list", {}, request[ACTOR_KEY])
    except AdminError as error:
        return admin_error_response(error)
    return aiohttp_jinja2.render_template("tokens.html", request, {"tokens": reply["tokens"]})


@requires(Role.ADMIN)
async def revoke_token(request: web.Request) -> web.StreamResponse:
    """Revoke the form's token through the admin path (audited, interface ui)."""
    name = str((await request.post()).get("name", ""))
    try:
        await request.app[ADMIN_KEY].invoke("token-revoke", {"name": name}, request[ACTOR_KEY])
    except AdminError as error:
        return admin_error_response(error)
    raise web.HTTPSeeOther("/tokens")


def setup(app: web.Application, access: WebAccess, admin: AdminServer) -> None:
    """Add the login, logout and audit routes to the console app."""
    app[ACCESS_KEY] = access
    app[ADMIN_KEY] = admin
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/login/once", login_once)
    app.router.add_post("/logout", logout)
    app.router.add_get("/audit", audit_page)
    app.router.add_get("/api/v1/audit", audit_api)
    app.router.add_get("/tokens", tokens_page)
    app.router.add_post("/tokens/revoke", revoke_token)
