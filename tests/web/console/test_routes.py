"""The console's routes on a real one-node Raft driver in this process, behind a test-only
middleware that plays the auth layer (it sets the Actor and the CSRF token the real one
will): JSON answers, 4xx with a message on bad input, actions through `invoke` with the
request's actor, the role marks of every route, forms carrying the CSRF token, and the
event stream.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.runtime.conftest import driver  # noqa: F401  (the real one-node driver fixture)
from warmd import config as config_module
from warmd.access import ACTOR_KEY, CSRF_KEY, Actor, Interface, Role, required_role
from warmd.admin.server import AdminServer
from warmd.cache.effect import TaskEffect
from warmd.hooks.registry import HookRegistry
from warmd.runtime.commands.analysis import AnalysisCommands
from warmd.runtime.commands.cluster import ClusterCommands
from warmd.runtime.commands.rules import RulesCommands
from warmd.runtime.commands.tasks import TaskCommands
from warmd.runtime.leader.planning import PlanningLoop
from warmd.runtime.node.driver import Driver
from warmd.statemachine.commands import Assign, Fail, MarkReady, RegisterNode
from warmd.testing.configs import ONE_NODE, write_config
from warmd.web.app import create_app
from warmd.web.auth import is_public
from warmd.web.console import routes
from warmd.web.console.actions import ACTIONS
from warmd.web.console.readers import ConsoleReaders

CSRF = "test-csrf-token"
OPERATOR = Actor(name="olga", role=Role.OPERATOR, interface=Interface.UI, token_name="olga")
VIEWER = Actor(name="vic", role=Role.VIEWER, interface=Interface.UI, token_name="vic")
ADMIN = Actor(name="ada", role=Role.ADMIN, interface=Interface.UI, token_name="ada")
RULES = 'backend c redis address="127.0.0.1:6379"\nrule r {\n    match GET /a/{id:int}\n    backend c\n}\n'


class Console:
    """The app, its client, the actor the test middleware sets, and the calls of invoke."""

    def __init__(self, client: TestClient, admin: AdminServer) -> None:
        self.client = client
        self.admin = admin
        self.actor: Actor | None = OPERATOR
        self.invoked: list[tuple[str, Actor]] = []
        self.effects: dict[str, TaskEffect] = {}  # what this node measured after its tasks

    async def json(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        response = await self.client.request(method, path, **kwargs)
        text = await response.text()
        assert response.status == status, text
        assert "Traceback" not in text
        return json.loads(text)


@pytest.fixture
async def console(driver: Driver, tmp_path: Path) -> AsyncIterator[Console]:  # noqa: F811
    config = config_module.load(write_config(tmp_path, ONE_NODE))
    admin = AdminServer(tmp_path / "admin.sock")
    TaskCommands(driver).register(admin)
    ClusterCommands(driver).register(admin)
    RulesCommands(driver, config).register(admin)
    analysis = AnalysisCommands(driver, config)
    analysis.register(admin)
    analysis.attach_planner(PlanningLoop(driver, config, None, HookRegistry()).plan_now)
    holder: list[Console] = []

    async def invoke(command: str, args: Mapping[str, Any], actor: Actor) -> Any:
        holder[0].invoked.append((command, actor))
        return await admin.invoke(command, args, actor)

    @web.middleware
    async def play_auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if holder[0].actor is not None:
            request[ACTOR_KEY] = holder[0].actor
        request[CSRF_KEY] = CSRF
        return await handler(request)

    app = create_app()
    app.middlewares.append(play_auth)
    routes.setup(app, ConsoleReaders(status=driver.status, state=lambda: driver.state,
                                     subscribe=driver.changes.subscribe, invoke=invoke,
                                     wall_ms=driver.clock.wall_ms,
                                     task_effects=lambda: holder[0].effects))
    client = TestClient(TestServer(app))
    await client.start_server()
    holder.append(Console(client, admin))
    yield holder[0]
    await client.close()


async def _submit(console: Console, task_id: str, keys: int = 3) -> None:
    await console.admin.invoke("task-submit", {"task_id": task_id, "keys": [
        f"k{number}" for number in range(keys)], "target": "redis://127.0.0.1:1"}, OPERATOR)


async def test_every_route_is_marked_with_the_least_role_that_may_call_it(
        console: Console) -> None:
    """Reads are VIEWER, task and node actions OPERATOR, membership and rule upload ADMIN."""
    marks = {}
    for route in console.client.app.router.routes():
        resource = route.resource
        if resource is not None and route.method in ("GET", "POST"):
            marks[(route.method, resource.canonical)] = required_role(route.handler)
    assert marks[("GET", "/tasks")] is Role.VIEWER
    assert marks[("GET", "/api/v1/events")] is Role.VIEWER
    static = next(route.handler for route in console.client.app.router.routes()
                  if route.resource is not None and route.resource.canonical == "/static/{name}")
    assert is_public(static)  # the login page's style sheet, before anyone is logged in
    assert marks[("POST", "/api/v1/tasks/{task_id}/cancel")] is Role.OPERATOR
    assert marks[("POST", "/nodes/{node_id}/drain")] is Role.OPERATOR
    assert marks[("POST", "/cluster/{node_id}/remove")] is Role.ADMIN
    assert marks[("POST", "/rules/upload")] is Role.ADMIN
    assert marks[("POST", "/cluster/transfer-leader")] is Role.ADMIN
    handlers = {(route.method, route.resource.canonical): route.handler
                for route in console.client.app.router.routes() if route.resource is not None}
    access_pages = {"/metrics", "/audit", "/api/v1/audit", "/tokens"}  # auth's, own roles
    pages = [key for key in marks if key[0] == "GET" and key[1] not in access_pages
             and not is_public(handlers[key])]
    assert all(marks[key] is Role.VIEWER for key in pages), pages
    assert {path for path, _ in ACTIONS} <= {path for method, path in marks if method == "POST"}


async def test_tasks_api_filters_sorts_pages_and_counts(console: Console) -> None:
    """`state`, `text`, `sort` and `per_page` shape the table; "N of M" comes with it."""
    for number in range(5):
        await _submit(console, f"t-{number}", keys=number + 1)
    body = await console.json("GET", "/api/v1/tasks?sort=-keys&per_page=2", 200)
    table = body["table"]
    assert [row["task_id"] for row in table["rows"]] == ["t-4", "t-3"]
    assert (table["matched"], table["total"], table["pages"]) == (5, 5, 3)
    body = await console.json("GET", "/api/v1/tasks?text=t-2&state=pending,ready", 200)
    assert [row["task_id"] for row in body["table"]["rows"]] == ["t-2"]
    assert body["freshness"]["applied_index"] >= 5


@pytest.mark.parametrize(("query", "named"), [
    ("state=BOGUS", "state"), ("node=abc", "node"), ("since=5x", "since"),
    ("sort=colour", "sort"), ("per_page=0", "per_page"), ("page=-1", "page"),
    ("colour=red", "colour"), ("text=" + "x" * 300, "text")])
async def test_a_malformed_filter_is_a_400_naming_it(console: Console, query: str,
                                                     named: str) -> None:
    body = await console.json("GET", f"/api/v1/tasks?{query}", 400)
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["message"].startswith(named)


async def test_unknown_ids_and_routes_are_json_404s_under_the_api(console: Console) -> None:
    for path in ("/api/v1/tasks/nope", "/api/v1/plans/nope", "/api/v1/nothing-here"):
        body = await console.json("GET", path, 404)
        assert body["error"]["message"], path
    body = await console.json("DELETE", "/api/v1/tasks", 405)
    assert body["error"]["code"] == "method_not_allowed"
    response = await console.client.get("/tasks/nope")  # a page gets a page
    assert response.status == 404 and "no task" in await response.text()


async def test_cancel_through_the_api_goes_through_invoke_with_the_actor(
        console: Console, driver: Driver) -> None:  # noqa: F811
    await _submit(console, "c-1")
    body = await console.json("POST", "/api/v1/tasks/c-1/cancel", 200)
    assert body["result"]["state"] == "CANCELLED"
    assert driver.state.tasks["c-1"].state.value == "CANCELLED"
    assert console.invoked == [("task-cancel", OPERATOR)]
    body = await console.json("POST", "/api/v1/tasks/c-1/cancel", 409)  # refused by the state
    assert "refused" in body["error"]["message"]


async def test_a_form_action_redirects_back_with_a_notice(console: Console) -> None:
    await _submit(console, "f-1")
    response = await console.client.post("/tasks/f-1/cancel", data={"csrf_token": CSRF},
                                         allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/tasks/f-1?notice=")


async def test_destructive_actions_need_the_typed_confirmation(console: Console) -> None:
    body = await console.json("POST", "/api/v1/cluster/1/remove", 400, json={"confirm": "node 2"})
    assert "node 1" in body["error"]["message"]
    body = await console.json("POST", "/api/v1/tasks/retry-failed", 400, json={"confirm": "9"})
    assert "'0'" in body["error"]["message"]  # none FAILED: the count to type is 0
    assert console.invoked == []


async def test_rule_upload_is_checked_before_it_is_proposed(console: Console,
                                                            driver: Driver) -> None:  # noqa: F811
    console.actor = ADMIN  # rule uploads are for admins (warmd/admin/roles.py)
    bad = RULES.replace("rule r", "rule r\n    bogus 1")
    body = await console.json("POST", "/api/v1/rules/upload", 422,
                              json={"name": "shop.rules", "text": bad})
    assert "shop.rules:" in body["result"]["errors"]  # located at file:line:col
    assert driver.state.rules is None
    body = await console.json("POST", "/api/v1/rules/upload", 200,
                              json={"name": "shop.rules", "text": RULES})
    assert driver.state.rules is not None and driver.state.rules.version == body["result"]["version"]
    body = await console.json("GET", "/api/v1/rules", 200)
    assert [rule["name"] for rule in body["rules"]["rules"]] == ["r"]


async def test_an_operator_disables_and_enables_a_rule_and_rules_shows_it_with_history(
        console: Console, driver: Driver) -> None:  # noqa: F811
    """Disable goes through Raft with the operator's name, /rules marks the rule, a name not
    in the set is a 400, enabling twice a 409; the history lists each upload with its diff."""
    console.actor = ADMIN
    await console.json("POST", "/api/v1/rules/upload", 200, json={"name": "shop.rules", "text": RULES})
    newer = RULES.replace("/a/{id:int}", "/b/{id:int}")
    await console.json("POST", "/api/v1/rules/upload", 200, json={"name": "shop.rules", "text": newer})
    console.actor = OPERATOR
    await console.json("POST", "/api/v1/rules/r/disable", 200)
    assert driver.state.disabled_rules["r"].actor == "olga"
    body = await console.json("GET", "/api/v1/rules", 200)
    assert [(rule["name"], rule["enabled"]) for rule in body["rules"]["rules"]] == [("r", False)]
    history = body["rules"]["history"]
    assert [version["actor"] for version in history] == ["ada", "ada"] and history[0]["current"]
    assert "-    match GET /a/{id:int}" in history[0]["diff"]
    assert "+    match GET /b/{id:int}" in history[0]["diff"]
    text = await (await console.client.get("/rules")).text()
    assert 'action="/rules/r/enable"' in text and "disabled" in text
    body = await console.json("POST", "/api/v1/rules/nosuch/disable", 400)
    assert "no rule 'nosuch'" in body["error"]["message"]
    await console.json("POST", "/api/v1/rules/r/enable", 200)
    body = await console.json("POST", "/api/v1/rules/r/enable", 409)
    assert "not disabled" in body["error"]["message"]
    assert not driver.state.disabled_rules


async def test_an_oversized_upload_or_body_is_a_413(console: Console) -> None:
    huge = "#" * (2 * 1024 * 1024)
    body = await console.json("POST", "/api/v1/rules/upload", 413,
                              json={"name": "big.rules", "text": huge})
    assert body["error"]["code"] == "too_large"
    body = await console.json("POST", "/api/v1/tasks/x/cancel", 413, data="x" * 100_000)
    assert "exceeds" in body["error"]["message"]


async def test_forms_carry_the_csrf_token_and_follow_the_role(console: Console) -> None:
    """An operator sees the cancel form with the session's CSRF token; a viewer sees no
    form (the server refuses anyway: that is the auth layer's matrix)."""
    await _submit(console, "r-1")
    text = await (await console.client.get("/tasks/r-1")).text()
    assert 'action="/tasks/r-1/cancel"' in text
    assert f'name="csrf_token" value="{CSRF}"' in text
    console.actor = VIEWER
    text = await (await console.client.get("/tasks/r-1")).text()
    assert "/cancel" not in text and "vic (viewer)" in text


async def test_the_event_stream_sends_a_change_when_tasks_change(console: Console) -> None:
    response = await console.client.get("/api/v1/events")
    assert response.headers["Content-Type"] == "text/event-stream"

    async def next_event() -> dict[str, Any]:
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                return dict(json.loads(line[6:]))

    first = await asyncio.wait_for(next_event(), 20)
    assert first["topics"] == [] and first["role"] == "leader"
    await _submit(console, "e-1")

    async def tasks_changed() -> dict[str, Any]:
        while "tasks" not in (event := await next_event())["topics"]:
            pass  # a leadership notice may come first on a loaded machine
        return event

    change = await asyncio.wait_for(tasks_changed(), 20)
    assert change["tasks_by_state"]["PENDING"] >= 1
    response.close()


async def test_the_effect_table_exports_as_csv(console: Console) -> None:
    response = await console.client.get("/effect.csv")
    assert response.status == 200 and response.content_type == "text/csv"
    assert (await response.text()).startswith("plan_id,trigger,cache,")
    response = await console.client.get("/effect.csv?by=pattern")
    assert response.status == 200 and "effect-pattern.csv" in response.headers["Content-Disposition"]
    assert (await response.text()).startswith("pattern,plan_id,started_ms,")
    body = await console.json("GET", "/api/v1/effect", 200)
    assert body["patterns"] == {} and "pattern_charts" not in body
    body = await console.json("GET", "/api/v1/effect?by=rule", 400)
    assert "by must be 'plan' or 'pattern'" in body["error"]["message"]
    await _submit(console, "m-1")
    console.effects["m-1"] = TaskEffect("m-1", 60.0, 3, 1, sampled_keys=3, keys_read_in_window=2)
    body = await console.json("GET", "/api/v1/effect", 200)
    (point,) = body["patterns"]["redis://127.0.0.1:1 (no rule)"]["points"]
    assert (point["keys_sampled"], point["keys_read"]) == (3, 2)
    text = await (await console.client.get("/effect")).text()
    assert "redis://127.0.0.1:1 (no rule)" in text and "2 of 3 sampled keys read" in text
    assert 'aria-label="share of warmed redis://127.0.0.1:1 (no rule) keys read after"' in text


@pytest.mark.parametrize(("path", "title"), [
    ("/", "Overview"), ("/cluster", "Cluster"), ("/nodes", "Nodes"), ("/plans", "Plans"),
    ("/tasks", "Tasks"), ("/rules", "Rules"), ("/effect", "Effect")])
async def test_every_page_has_a_plain_title(console: Console, path: str, title: str) -> None:
    """A page's <title> is its name: no markup spilled into the head (the effect page's
    per-pattern section once landed inside its title block)."""
    text = await (await console.client.get(path)).text()
    head = text.split("</head>")[0]
    assert re.search(rf"<title>{title}\b[^<]*</title>", head), head[:400]


async def test_run_a_plan_now_plans_on_the_leader_with_trigger_manual(
        console: Console, driver: Driver) -> None:  # noqa: F811
    body = await console.json("POST", "/api/v1/plans/run", 200)
    plan_id = body["result"]["plan_id"]
    assert driver.state.plans[plan_id].trigger == "manual"
    shown = await console.json("GET", f"/api/v1/plans/{plan_id}", 200)
    assert shown["plan"]["state"] == "EMPTY" or shown["plan"]["tasks"] > 0
    assert shown["table"]["total"] == shown["plan"]["tasks"]  # "N of" the plan's own tasks
    response = await console.client.post("/plans/run", data={"csrf_token": CSRF},
                                         allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/plans/p")
    assert [command for command, _ in console.invoked] == ["plan-run", "plan-run"]


async def test_rerun_away_from_a_node_through_the_api_and_the_page_shows_it_with_terms(
        console: Console, driver: Driver) -> None:  # noqa: F811
    """A FAILED task re-runs away from its node (a RERUN step with the operator's name, the
    placement on the page, the index and term of each step); a second re-run of the now
    PENDING task is a 409 that names its state; a non-numeric node is a 400."""
    now = driver.clock.wall_ms
    await driver.propose(RegisterNode(node_id=1, capacity=2, lease_ms=60_000, now_ms=now()))
    await _submit(console, "f-1")
    await driver.propose(MarkReady(task_id="f-1", now_ms=now()))
    fence = (await driver.propose(Assign(task_id="f-1", node_id=1, now_ms=now()))).value
    await driver.propose(Fail(task_id="f-1", node_id=1, fence=fence, now_ms=now(), error="boom"))
    body = await console.json("POST", "/api/v1/tasks/f-1/rerun", 200,
                              json={"node_id": "1", "placement": "away"})
    assert body["result"] == {"task_id": "f-1", "state": "PENDING", "node_id": 1, "away": True}
    task = driver.state.tasks["f-1"]
    assert (task.state, task.attempt, task.avoided_node) == ("PENDING", 2, 1)
    shown = await console.json("GET", "/api/v1/tasks/f-1", 200)
    steps = shown["task"]["transitions"]
    assert [step["state"] for step in steps] == ["PENDING", "ASSIGNED", "FAILED", "RERUN"]
    assert steps[-1]["detail"] == "attempt 2 away from node 1 (by olga)"
    term = driver.status().term
    assert all(step["term"] == term and step["index"] > 0 for step in steps)
    text = await (await console.client.get("/tasks/f-1")).text()
    assert "re-run kept off node 1" in text and "<th class=\"num\">Term</th>" in text
    body = await console.json("POST", "/api/v1/tasks/f-1/rerun", 409, json={"node_id": "1"})
    assert "task f-1 is PENDING: only a FAILED task can be re-run" in body["error"]["message"]
    await console.json("POST", "/api/v1/tasks/f-1/rerun", 400, json={"node_id": "one"})


async def test_drain_and_undrain_a_node_show_on_the_nodes_table(
        console: Console, driver: Driver) -> None:  # noqa: F811
    await driver.propose(RegisterNode(node_id=1, capacity=2, lease_ms=60_000,
                                      now_ms=driver.clock.wall_ms()))
    await console.json("POST", "/api/v1/nodes/1/drain", 200)
    (node,) = (await console.json("GET", "/api/v1/nodes", 200))["nodes"]
    assert (node["draining"], node["status"]) == (True, "draining")
    text = await (await console.client.get("/nodes")).text()
    assert 'action="/nodes/1/undrain"' in text and "DRAINING" in text  # the state in words
    await console.json("POST", "/api/v1/nodes/1/undrain", 200)
    (node,) = (await console.json("GET", "/api/v1/nodes", 200))["nodes"]
    assert node["status"] == "up"
    body = await console.json("POST", "/api/v1/nodes/abc/drain", 400)
    assert "node id" in body["error"]["message"]
