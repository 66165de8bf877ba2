"""How the console answers: a page, its JSON twin, or an error as JSON with a message.

Errors never carry a traceback: a bad query is 400, an unknown id 404, a refused command
the status its admin error code maps to, anything unexpected 500 with "see the daemon log".
The middleware turns aiohttp's own errors under /api/ (404, 405, 413) into the same JSON.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from warmd.access import ACTOR_KEY, Actor, Interface, Role
from warmd.admin.protocol import ErrorCode
from warmd.errors import AdminError
from warmd.logging import get_logger
from warmd.web.console.query import QueryError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API_PREFIX = "/api/"
_log = get_logger("warmd.web.console")

STATUS_OF_CODE: Mapping[str, int] = {
    ErrorCode.BAD_REQUEST: 400, ErrorCode.UNKNOWN_COMMAND: 400,
    ErrorCode.PERMISSION_DENIED: 403, ErrorCode.NOT_LEADER: 503, ErrorCode.UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504, ErrorCode.FAILED: 409, ErrorCode.TOO_LARGE: 413,
}


class ConsoleError(Exception):
    """An answer that is not a page: HTTP `status` with a message for the user."""

    def __init__(self, status: int, message: str, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or {400: "bad_request", 404: "not_found", 413: "too_large"}.get(
            status, "failed")


def not_found(what: str) -> ConsoleError:
    return ConsoleError(404, f"no {what}")


def wants_json(request: web.Request) -> bool:
    return request.path.startswith(API_PREFIX)


def actor_of(request: web.Request) -> Actor:
    """The logged-in actor; without an auth layer (none configured), an anonymous viewer."""
    actor = request.get(ACTOR_KEY)
    if isinstance(actor, Actor):
        return actor
    interface = Interface.API if wants_json(request) else Interface.UI
    return Actor(name="anonymous", role=Role.VIEWER, interface=interface,
                 source=request.remote or "")


def to_json(value: Any) -> Any:
    """Rows (dataclasses) and their properties' plain fields as JSON-able values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [field.name for field in dataclasses.fields(value)] + _properties(type(value))
        return {name: to_json(getattr(value, name)) for name in names}
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


@functools.cache
def _properties(kind: type) -> list[str]:
    """A row's derived fields (`state`, `percent`, ...): its properties, in the JSON too."""
    return [name for name, member in vars(kind).items() if isinstance(member, property)]


def json_reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(to_json(data), separators=(",", ":")), status=status,
                        content_type="application/json")


def page(request: web.Request, template: str, context: dict[str, Any],
         status: int = 200) -> web.Response:
    """Render `template` (templates.py adds what every page shows from the request)."""
    return aiohttp_jinja2.render_template(template, request, context, status=status)


def error_reply(request: web.Request, status: int, code: str, message: str) -> web.Response:
    if wants_json(request):
        return json_reply({"error": {"code": code, "message": message}}, status)
    return page(request, "error.html", {"status": status, "message": message, "page": "error"},
                status)


def admin_error(error: AdminError) -> ConsoleError:
    return ConsoleError(STATUS_OF_CODE.get(error.code, 500), error.message, str(error.code))


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """ConsoleError, QueryError and AdminError become answers; under /api/ so do aiohttp's."""
    try:
        return await handler(request)
    except ConsoleError as error:
        return error_reply(request, error.status, error.code, error.message)
    except QueryError as error:
        return error_reply(request, 400, "bad_request", str(error))
    except AdminError as error:
        refused = admin_error(error)
        return error_reply(request, refused.status, refused.code, refused.message)
    except web.HTTPException as error:
        if not wants_json(request) or error.status < 400:
            raise
        return error_reply(request, error.status, error.reason.lower().replace(" ", "_"),
                           error.text or error.reason)
    except Exception:
        _log.exception("console_handler_failed", path=request.path)
        return error_reply(request, 500, "internal", "internal error; the daemon log has details")
