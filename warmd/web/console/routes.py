"""`setup(app, readers)`: the whole console on one aiohttp app (pages, API, events, static)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from warmd.web.auth import public
from warmd.web.console import actions, pages, sse
from warmd.web.console.readers import ConsoleReaders
from warmd.web.console.replies import errors
from warmd.web.templates import setup_templates

STATIC = Path(__file__).resolve().parent.parent / "static"


def setup(app: web.Application, readers: ConsoleReaders) -> None:
    """Add the console's routes to `app` (before it starts)."""
    setup_templates(app)
    app[pages.READERS] = readers
    app.middlewares.append(errors)
    pages.add_routes(app)
    actions.add_routes(app)
    sse.add_routes(app)
    app.router.add_get("/static/{name}", static)


STATIC_TYPES = {".css": "text/css", ".js": "text/javascript"}


@public  # the login page needs the style sheet before anyone is logged in
async def static(request: web.Request) -> web.StreamResponse:
    """The console's own script and style sheet (nothing else is served from the folder)."""
    name = request.match_info["name"]
    path = STATIC / name
    if "/" in name or path.suffix not in STATIC_TYPES or not path.is_file():
        raise web.HTTPNotFound(text=f"no static file {name!r}")
    return web.FileResponse(path, headers={"Content-Type": STATIC_TYPES[path.suffix],
                                           "Cache-Control": "max-age=300"})
