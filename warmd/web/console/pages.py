"""The console's read routes: each page and its JSON twin under /api/v1 share one builder,
so the API shows exactly what the page shows. Every handler is marked VIEWER."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from warmd.access import Role, requires
from warmd.web.console import effect, rules_view, svg
from warmd.web.console.query import TableSpec, parse, take_page
from warmd.web.console.readers import ConsoleReaders
from warmd.web.console.replies import ConsoleError, json_reply, not_found, page, wants_json
from warmd.web.console.tasks import TASKS, attempt_spans, task_detail, task_page
from warmd.web.console.views import (
    freshness,
    node_rows,
    overview,
    peer_rows,
    plan_row,
    plan_rows,
    report_age,
)

READERS = web.AppKey("warmd.console.readers", ConsoleReaders)
PLANS = TableSpec(filters=("trigger",), sorts=("created",), default_sort="-created")
OVERVIEW_PLANS = 5


def _readers(request: web.Request) -> ConsoleReaders:
    return request.app[READERS]


def _answer(request: web.Request, template: str, data: dict[str, Any]) -> web.Response:
    """The JSON twin (with freshness) under /api/, else the page."""
    readers = _readers(request)
    data["freshness"] = freshness(readers.status())
    if wants_json(request):
        return json_reply({key: value for key, value in data.items()
                           if key not in ("charts", "pattern_charts")})
    data["now_ms"] = readers.wall_ms()
    data["page"] = template.removesuffix(".html")
    return page(request, template, data)


@requires(Role.VIEWER)
async def overview_page(request: web.Request) -> web.Response:
    readers = _readers(request)
    state = readers.state()
    plans = plan_rows(state, readers.task_effects())[:OVERVIEW_PLANS]
    return _answer(request, "overview.html",
                   {"overview": overview(readers.status(), state), "plans": plans})


@requires(Role.VIEWER)
async def cluster_page(request: web.Request) -> web.Response:
    readers = _readers(request)
    status = readers.status()
    state = readers.state()
    replication = state.replication
    heartbeat_fsync_ms = {node.node_id: node.fsync_p99_us / 1000 for node in state.nodes.values()
                          if node.fsync_p99_us >= 0}
    return _answer(request, "cluster.html", {
        "leader_id": status.leader_id, "term": status.term, "role": status.role,
        "node_id": status.node_id,
        "peers": peer_rows(status, readers.version, readers.fsync_p99_ms(), replication,
                           heartbeat_fsync_ms),
        "replication_known": status.role == "leader",
        "report": None if status.role == "leader" else report_age(status, replication,
                                                                  readers.wall_ms())})


@requires(Role.VIEWER)
async def nodes_page(request: web.Request) -> web.Response:
    readers = _readers(request)
    rows = node_rows(readers.state(), readers.wall_ms())
    charts = {row.node_id: svg.sparkline(row.throughput, label=f"node {row.node_id}: tasks "
                                         "finished per minute, last 30 minutes") for row in rows}
    return _answer(request, "nodes.html", {"nodes": rows, "charts": charts})


@requires(Role.VIEWER)
async def plans_page(request: web.Request) -> web.Response:
    readers = _readers(request)
    query = parse(request.query, PLANS)
    rows = plan_rows(readers.state(), readers.task_effects())
    trigger = query.filters.get("trigger")
    matched = [row for row in rows if trigger is None or row.trigger == trigger]
    if not query.descending:
        matched.reverse()
    table = take_page(matched, len(rows), query)
    return _answer(request, "plans.html", {"table": table, "query": query,
                                           "triggers": sorted({row.trigger for row in rows})})


@requires(Role.VIEWER)
async def plan_page(request: web.Request) -> web.Response:
    readers = _readers(request)
    state = readers.state()
    plan = state.plans.get(request.match_info["plan_id"])
    if plan is None:
        raise not_found(f"plan {request.match_info['plan_id']!r} (it may have been pruned)")
    row = plan_row(plan, state, readers.task_effects())
    query = parse({"plan": plan.plan_id, **request.query}, TASKS)
    tasks = replace(task_page(state, query, readers.wall_ms()), total=len(plan.task_ids))
    return _answer(request, "plan.html", {"plan": row, "table": tasks, "query": query})


@requires(Role.VIEWER)
async def tasks_page(request: web.Request) -> web.Response:
    readers = _readers(request)
    state = readers.state()
    query = parse(request.query, TASKS)
    table = task_page(state, query, readers.wall_ms())
    return _answer(request, "tasks.html", {"table": table, "query": query,
                                           "counts": state.counts()})


@requires(Role.VIEWER)
async def task_page_one(request: web.Request) -> web.Response:
    readers = _readers(request)
    task_id = request.match_info["task_id"]
    state = readers.state()
    task = state.tasks.get(task_id)
    if task is None:
        raise not_found(f"task {task_id!r}")
    detail = task_detail(task, readers.task_effects().get(task_id), state)
    now_ms = readers.wall_ms()
    chart = svg.timeline(attempt_spans(task), now_ms)
    return _answer(request, "task.html", {"task": detail, "charts": {"timeline": chart},
                                          "nodes": sorted(state.nodes)})


@requires(Role.VIEWER)
async def rules_page(request: web.Request) -> web.Response:
    readers = _readers(request)
    data = rules_view.rules_data(readers.state(), readers.known_names(), readers.wall_ms())
    explain_request = request.query.get("explain", "").strip()
    explained: Any = None
    if explain_request:
        explained = await rules_view.explain(readers, explain_request, request)
    return _answer(request, "rules.html", {"rules": data, "explain_request": explain_request,
                                           "explained": explained})


@requires(Role.VIEWER)
async def effect_page(request: web.Request) -> web.StreamResponse:
    readers = _readers(request)
    state, effects = readers.state(), readers.task_effects()
    rows = plan_rows(state, effects)
    patterns = effect.by_pattern(state, effects,
                                 rules_view.key_patterns(state, readers.known_names()))
    by = request.query.get("by", "plan")
    if by not in ("plan", "pattern"):
        raise ConsoleError(400, f"by must be 'plan' or 'pattern', got {by[:20]!r}")
    if request.query.get("format") == "csv" or request.path.endswith(".csv"):
        text = effect.pattern_csv_text(patterns) if by == "pattern" else effect.csv_text(rows)
        return web.Response(text=text, content_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="effect-{by}.csv"'})
    caches = effect.by_cache(rows)
    charts = {cache: svg.hit_ratio_chart(series.segments, series.bands,
                                         label=f"hit ratio of {cache}")
              for cache, series in caches.items()}
    pattern_charts = {pattern: svg.hit_ratio_chart(
        series.segments, series.bands, label=f"share of warmed {pattern} keys read after")
        for pattern, series in patterns.items()}
    return _answer(request, "effect.html", {"caches": caches, "rows": [
        row for row in rows if row.before_hit_rate is not None], "charts": charts,
        "patterns": patterns, "pattern_charts": pattern_charts})


def add_routes(app: web.Application) -> None:
    """Each page at its path and at /api/v1/<path>."""
    for path, handler in (("/", overview_page), ("/cluster", cluster_page),
                          ("/nodes", nodes_page), ("/plans", plans_page),
                          ("/plans/{plan_id}", plan_page), ("/tasks", tasks_page),
                          ("/tasks/{task_id}", task_page_one), ("/rules", rules_page),
                          ("/effect", effect_page)):
        app.router.add_get(path, handler)
        app.router.add_get("/api/v1" + (path if path != "/" else "/overview"), handler)
    app.router.add_get("/effect.csv", effect_page)
