"""The web application factory: one aiohttp app per listener, routes added by their modules.

`create_app` installs what every route shares (request metrics, and either the console's
authentication and roles (auth.py) or, on the metrics-only listener, the bearer token when
the config sets one); each feature module adds its routes with a `setup(app, ...)`
function, so the console and the API can join /metrics on the same app.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from warmd import metrics
from warmd.web.auth import WebAccess, auth_middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNMATCHED_ROUTE = "unmatched"  # 404s keep the route label bounded


def create_app(token: str | None = None, access: WebAccess | None = None) -> web.Application:
    """An app with request metrics, and `access`'s logins and roles on every route when
    given, else (the metrics listener) bearer-token auth on every route when `token` is set."""
    middlewares: list[Middleware] = [_observe]
    if access is not None:
        middlewares.append(auth_middleware(access))
    elif token is not None:
        middlewares.append(_bearer_token(token))
    return web.Application(middlewares=middlewares)


def route_label(request: web.Request) -> str:
    """The route's path template (`/metrics`), never the raw path: bounded by the app."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started_s = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as error:
        code = error.status
        raise
    finally:
        route = route_label(request)
        metrics.HTTP_REQUESTS.labels(route=route, method=_method(request.method),
                                     code=str(code)).inc()
        metrics.HTTP_DURATION.labels(route=route).observe(time.perf_counter() - started_s)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def _method(method: str) -> str:
    return method if method in _METHODS else metrics.OTHER


def _bearer_token(token: str) -> Middleware:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization")
        if given is None:
            metrics.AUTH_FAILURES.labels(reason="missing").inc()
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.encode(), expected):
            metrics.AUTH_FAILURES.labels(reason="wrong_token").inc()
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return check
