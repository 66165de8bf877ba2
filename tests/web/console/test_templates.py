"""The shared templates: `setup_templates` is idempotent, and a page of another feature
(the auth layer's login page) extending base.html renders with or without the request
context, with the nav to every page."""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from warmd.access import ACTOR_KEY, Actor, Interface, Role
from warmd.web.templates import setup_templates

LOGIN = ('{% extends "base.html" %}{% block title %}Log in{% endblock %}'
         '{% block content %}<h1>Log in</h1>{% endblock %}')


def _app() -> web.Application:
    app = web.Application()
    setup_templates(app)
    setup_templates(app)  # a second call changes nothing
    environment = aiohttp_jinja2.get_env(app)
    environment.loader = jinja2.ChoiceLoader([environment.loader,
                                              jinja2.DictLoader({"login.html": LOGIN})])
    return app


def test_base_renders_without_any_request_context() -> None:
    text = aiohttp_jinja2.get_env(_app()).get_template("login.html").render()
    assert "<title>Log in · warmd</title>" in text
    for href in ("/", "/cluster", "/nodes", "/plans", "/tasks", "/rules", "/effect", "/audit",
                 "/login"):
        assert f'href="{href}"' in text


async def test_a_page_shows_the_actor_and_marks_the_current_nav_link() -> None:
    app = _app()

    @web.middleware
    async def actor(request: web.Request, handler):  # type: ignore[no-untyped-def]
        request[ACTOR_KEY] = Actor("ada", Role.ADMIN, Interface.UI)
        return await handler(request)

    async def tasks(request: web.Request) -> web.Response:
        return aiohttp_jinja2.render_template("login.html", request, {})

    app.middlewares.insert(0, actor)
    app.router.add_get("/tasks", tasks)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        text = await (await client.get("/tasks")).text()
    finally:
        await client.close()
    assert "ada (admin)" in text and 'action="/logout"' in text
    assert '<a href="/tasks" class="current" aria-current="page">' in text
