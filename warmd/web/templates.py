"""The console's Jinja2 templates (warmd/web/templates/), autoescaped, with who is logged in
and the session's CSRF token in every page's context."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from warmd.web.auth import auth_context


def setup_templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("warmd.web", "templates"),
                         autoescape=jinja2.select_autoescape(default=True),
                         context_processors=[auth_context])
