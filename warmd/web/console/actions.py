"""The console's write routes: each turns a form (or a JSON body under /api/v1) into one
admin command through `invoke`, the path warmctl takes, so the role check and the audit
record happen in one place. A form gets a 303 back to its page with a notice; the API gets
the command's answer as JSON. Marks: tasks, nodes, runs and rules on/off OPERATOR; membership,
leadership and rule upload ADMIN.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web

from warmd.access import Role, requires
from warmd.statemachine.lifecycle import TaskState
from warmd.web.console.pages import READERS
from warmd.web.console.replies import ConsoleError, actor_of, json_reply, wants_json

BODY_BYTES_MAX = 64 * 1024  # a JSON body or form of an action
UPLOAD_BYTES_MAX = 1024 * 1024  # a rule file upload
Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _fields(request: web.Request, limit: int = BODY_BYTES_MAX) -> Mapping[str, Any]:
    """The form fields or the JSON body. Raises: ConsoleError 413 / 400."""
    if request.content_length is not None and request.content_length > limit:
        raise ConsoleError(413, f"the request body exceeds {limit} bytes")
    if wants_json(request):
        if not request.can_read_body:
            return {}
        try:
            body = json.loads(await request.text())
        except ValueError as error:
            raise ConsoleError(400, f"the body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise ConsoleError(400, "the body must be a JSON object")
        return body
    form = await request.post()
    return {name: value for name, value in form.items()}


async def _run(request: web.Request, command: str, args: Mapping[str, Any],
               back: str, notice: str) -> web.StreamResponse:
    answer = await request.app[READERS].invoke(command, args, actor_of(request))
    if wants_json(request):
        return json_reply({"command": command, "result": answer})
    raise web.HTTPSeeOther(f"{back}?notice={quote(notice)}")


def _node_id(text: str) -> int:
    if not text.isdigit():
        raise ConsoleError(400, f"node id must be a number, got {text[:20]!r}")
    return int(text)


def _confirmed(fields: Mapping[str, Any], expected: str) -> None:
    """A destructive action names its target again (typed confirmation)."""
    if str(fields.get("confirm", "")).strip() != expected:
        raise ConsoleError(400, f"type {expected!r} in the confirmation field to do this")


@requires(Role.OPERATOR)
async def cancel_task(request: web.Request) -> web.StreamResponse:
    await _fields(request)
    task_id = request.match_info["task_id"]
    return await _run(request, "task-cancel", {"task_id": task_id}, f"/tasks/{quote(task_id)}",
                      f"task {task_id} cancelled")


@requires(Role.OPERATOR)
async def retry_task(request: web.Request) -> web.StreamResponse:
    await _fields(request)
    task_id = request.match_info["task_id"]
    return await _run(request, "task-retry", {"task_id": task_id}, f"/tasks/{quote(task_id)}",
                      f"task {task_id} sent back to PENDING")


@requires(Role.OPERATOR)
async def rerun_task(request: web.Request) -> web.StreamResponse:
    """A new attempt of a FAILED task on a chosen node (`placement=on`) or anywhere but it
    (`placement=away`, the default); any other state is a 409 naming it."""
    fields = await _fields(request)
    task_id = request.match_info["task_id"]
    node_id = _node_id(str(fields.get("node_id", "")).strip())
    placement = str(fields.get("placement", "away"))
    if placement not in ("away", "on"):
        raise ConsoleError(400, f"placement must be 'away' or 'on', got {placement[:20]!r}")
    where = f"away from node {node_id}" if placement == "away" else f"on node {node_id}"
    return await _run(request, "task-rerun",
                      {"task_id": task_id, "node_id": node_id, "away": placement == "away"},
                      f"/tasks/{quote(task_id)}", f"task {task_id} re-runs {where}")


@requires(Role.OPERATOR)
async def retry_failed(request: web.Request) -> web.StreamResponse:
    """Retry every FAILED task (of a plan): the form first showed how many and asks to
    confirm with that number, so a table that changed meanwhile is not retried blindly."""
    fields = await _fields(request)
    plan = str(fields.get("plan", "")) or None
    state = request.app[READERS].state()
    failed = sum(1 for task in state.in_state(TaskState.FAILED)
                 if plan is None or task.spec.plan_id == plan)
    _confirmed(fields, str(failed))
    args: dict[str, Any] = {"failed": True, **({"plan": plan} if plan else {})}
    return await _run(request, "task-retry", args, "/tasks",
                      f"retried the FAILED tasks{f' of plan {plan}' if plan else ''}")


@requires(Role.OPERATOR)
async def cancel_plan(request: web.Request) -> web.StreamResponse:
    fields = await _fields(request)
    plan_id = request.match_info["plan_id"]
    _confirmed(fields, plan_id)
    return await _run(request, "plan-cancel", {"plan": plan_id}, f"/plans/{quote(plan_id)}",
                      f"plan {plan_id}: unfinished tasks cancelled")


@requires(Role.OPERATOR)
async def run_plan(request: web.Request) -> web.StreamResponse:
    """Plan now (trigger "manual"); only the leader plans, so elsewhere this is a 503 that
    names the leader."""
    await _fields(request)
    answer = await request.app[READERS].invoke("plan-run", {}, actor_of(request))
    if wants_json(request):
        return json_reply({"command": "plan-run", "result": answer})
    raise web.HTTPSeeOther(f"/plans/{quote(answer['plan_id'])}?notice="
                           + quote(f"planned {answer['tasks']} tasks"))


@requires(Role.OPERATOR)
async def drain_node(request: web.Request) -> web.StreamResponse:
    await _fields(request)
    node_id = _node_id(request.match_info["node_id"])
    undo = request.path.endswith("/undrain")
    return await _run(request, "drain", {"node_id": node_id, "undo": undo}, "/nodes",
                      f"node {node_id} {'accepts tasks again' if undo else 'is draining'}")


@requires(Role.ADMIN)
async def transfer_leader(request: web.Request) -> web.StreamResponse:
    fields = await _fields(request)
    target = str(fields.get("node_id", "")).strip()
    args = {"node_id": _node_id(target)} if target else {}
    return await _run(request, "transfer-leader", args, "/cluster", "leadership transferred")


@requires(Role.ADMIN)
async def add_learner(request: web.Request) -> web.StreamResponse:
    fields = await _fields(request)
    node_id = _node_id(str(fields.get("node_id", "")).strip())
    return await _run(request, "add-learner",
                      {"node_id": node_id, "address": str(fields.get("address", "")).strip()},
                      "/cluster", f"node {node_id} added as a learner")


@requires(Role.ADMIN)
async def change_member(request: web.Request) -> web.StreamResponse:
    """Promote or remove a member; both need the member typed as `node N`."""
    fields = await _fields(request)
    node_id = _node_id(request.match_info["node_id"])
    _confirmed(fields, f"node {node_id}")
    command = "promote" if request.path.endswith("/promote") else "remove"
    return await _run(request, command, {"node_id": node_id}, "/cluster",
                      f"node {node_id}: {command}d")


@requires(Role.OPERATOR)
async def switch_rule(request: web.Request) -> web.StreamResponse:
    """Switch one rule off (it plans nothing) or back on, through Raft."""
    await _fields(request)
    name = request.match_info["name"]
    enable = request.path.endswith("/enable")
    return await _run(request, "rules-enable" if enable else "rules-disable", {"name": name},
                      "/rules", f"rule {name} {'enabled' if enable else 'disabled'}")


@requires(Role.ADMIN)
async def upload_rules(request: web.Request) -> web.StreamResponse:
    """A new rule set (one file): checked on this node before it is proposed, so a bad set
    is answered with its errors at file:line:col and the committed set stays."""
    fields = await _fields(request, UPLOAD_BYTES_MAX)
    name, text = _rule_file(fields)
    answer = await request.app[READERS].invoke("rules-reload", {"files": [[name, text]]},
                                               actor_of(request))
    if wants_json(request):
        return json_reply({"command": "rules-reload", "result": answer},
                          200 if answer.get("ok") else 422)
    if not answer.get("ok"):
        raise ConsoleError(422, "the rule set was not proposed; the checker found:\n"
                           + str(answer.get("errors", "")))
    raise web.HTTPSeeOther("/rules?notice=" + quote(f"rule set {answer['version'][:12]} committed"))


def _rule_file(fields: Mapping[str, Any]) -> tuple[str, str]:
    upload = fields.get("file")
    if isinstance(upload, web.FileField):
        try:
            return upload.filename or "rules.warm", upload.file.read().decode("utf-8")
        except UnicodeDecodeError:
            raise ConsoleError(400, "the rule file is not UTF-8 text") from None
    text, name = fields.get("text"), str(fields.get("name") or "rules.warm")
    if not isinstance(text, str) or not text.strip():
        raise ConsoleError(400, "give the rule file as `file` (an upload) or `text`")
    return name, text


ACTIONS: tuple[tuple[str, Reply], ...] = (
    ("/tasks/{task_id}/cancel", cancel_task), ("/tasks/{task_id}/retry", retry_task),
    ("/tasks/{task_id}/rerun", rerun_task),
    ("/tasks/retry-failed", retry_failed), ("/plans/{plan_id}/cancel", cancel_plan),
    ("/plans/run", run_plan),
    ("/nodes/{node_id}/drain", drain_node), ("/nodes/{node_id}/undrain", drain_node),
    ("/cluster/transfer-leader", transfer_leader), ("/cluster/add-learner", add_learner),
    ("/cluster/{node_id}/promote", change_member), ("/cluster/{node_id}/remove", change_member),
    ("/rules/upload", upload_rules),
    ("/rules/{name}/disable", switch_rule), ("/rules/{name}/enable", switch_rule),
)


def add_routes(app: web.Application) -> None:
    """Each action as a form target and at /api/v1/<path>."""
    for path, handler in ACTIONS:
        app.router.add_post(path, handler)
        app.router.add_post("/api/v1" + path, handler)
