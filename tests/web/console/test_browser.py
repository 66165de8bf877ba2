"""The console in a real browser (Debian's chromium) against three real daemons and a real
redis-server: live updates without a reload, an action on one node seen on another, a
leader change on /cluster, and a screenshot of every page at 1280x800.

One module-scoped cluster serves the tests in file order; the leader kill comes last.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from chaos.ops import submit
from tests.tasks.test_warmup_loop import ThreadedOrigin
from tests.web.console.conftest import console_url
from warmd.admin.client import AdminClientError
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import ServerProcess

RULES = """\
schedule nightly {{
    cron "0 3 * * *"
}}

rule items {{
    match GET /api/items/{{id:int}}
    key "item:{{id}}"
    load fetch "{origin}/api/items/{{id}}"
    backend redis
    budget top 60
    schedule nightly
    on new-rules
}}
"""
# Records the states every task row of the page shows, as it shows them (every 50 ms).
RECORD_ROWS = """() => {
  window.seenRows = {};
  setInterval(() => {
    document.querySelectorAll("tr[data-task]").forEach(row => {
      const cell = row.querySelector(".state");
      const seen = window.seenRows[row.dataset.task] || (window.seenRows[row.dataset.task] = []);
      if (cell && seen[seen.length - 1] !== cell.innerText) seen.push(cell.innerText);
    });
  }, 50);
}"""
# Records each state the row of one task shows, as the page shows it (every 50 ms).
RECORD_STATES = """task_id => {
  window.seenStates = [];
  setInterval(() => {
    const cell = document.querySelector(`tr[data-task="${task_id}"] .state`);
    const state = cell ? cell.innerText : null;
    if (state && window.seenStates[window.seenStates.length - 1] !== state) {
      window.seenStates.push(state);
    }
  }, 50);
}"""
PAGES = ("/", "/cluster", "/nodes", "/plans", "/tasks", "/rules", "/effect")


def _run_a_plan(cluster: ProcessCluster) -> tuple[int, dict[str, Any]]:
    """`plan-run` on the leader (no summaries: an empty plan), again if leadership moved."""
    for _ in range(5):
        leader = cluster.wait_for_leader(20)
        try:
            return leader, cluster.call(leader, "plan-run", timeout_s=30)
        except AdminClientError as error:
            if error.code not in ("not_leader", "unavailable", "timeout"):
                raise
    raise AssertionError("no leader took plan-run in five tries")


def _keys(prefix: str, count: int) -> list[str]:
    return [f"{prefix}:{number}" for number in range(count)]


def _state_cell(task_id: str) -> str:
    return f'tr[data-task="{task_id}"] .state'


def test_a_task_goes_running_then_succeeded_without_a_reload(
        page: Any, console_cluster: ProcessCluster, redis_server: ServerProcess) -> None:
    """The task table follows a task through RUNNING to SUCCEEDED by itself: the page
    is never reloaded (its load stamp stays) while the live script swaps the rows."""
    page.goto(console_url(console_cluster, 2, "/tasks?text=live-"))
    page.wait_for_selector("#live.on")
    loaded_at = page.evaluate("window.warmdLoadedAt")
    page.evaluate(RECORD_STATES, "live-1")
    submit(console_cluster, "live-1", f"redis://{redis_server.address}", _keys("live", 100))
    page.wait_for_function("window.seenStates.at(-1) === 'SUCCEEDED'", timeout=40_000)
    seen = page.evaluate("window.seenStates")
    assert "RUNNING" in seen, seen
    assert seen.index("RUNNING") < seen.index("SUCCEEDED")
    assert page.evaluate("window.warmdLoadedAt") == loaded_at
    assert page.evaluate("window.warmdRefreshes") >= 2


def test_a_task_cancelled_on_one_node_shows_cancelled_on_another(
        browser: Any, page: Any, console_cluster: ProcessCluster,
        redis_server: ServerProcess, auth_headers: dict[str, str]) -> None:
    """Cancel from node 1's task page; node 3's page of the same task turns CANCELLED live."""
    submit(console_cluster, "long-1", f"redis://{redis_server.address}", _keys("long", 5000))
    watcher = browser.new_context(viewport={"width": 1280, "height": 800},
                                  extra_http_headers=auth_headers).new_page()
    try:
        watcher.goto(console_url(console_cluster, 3, "/tasks/long-1"))
        watcher.wait_for_selector("#live.on")
        page.goto(console_url(console_cluster, 1, "/tasks/long-1"))
        page.click("#cancel")
        page.wait_for_selector("#task-state .state-cancelled")
        assert "cancelled" in page.inner_text(".notice")
        watcher.wait_for_selector("#task-state .state-cancelled", timeout=10_000)
    finally:
        watcher.context.close()


def test_a_planner_made_plan_goes_running_then_succeeded_without_a_reload(
        page: Any, console_cluster: ProcessCluster, origin: ThreadedOrigin) -> None:
    """A rule set committed with `on new-rules` makes the leader plan from node 1's logs;
    node 2's task table, filtered to the rule and never reloaded, shows the plan's tasks
    appear and go RUNNING -> SUCCEEDED."""
    page.goto(console_url(console_cluster, 2, "/tasks?rule=items"))
    page.wait_for_selector("#live.on")
    loaded_at = page.evaluate("window.warmdLoadedAt")
    page.evaluate(RECORD_ROWS)
    console_cluster.wait_until(lambda: console_cluster.call(1, "summaries")["total"]["lines"]
                               > 7_000 or None, 30, "node 1's summary")
    # A slow origin (0.2 s a request, two at a time): the plan's task runs for seconds.
    origin.origin.state.service_time_s, origin.origin.state.capacity = 0.2, 2
    rules = RULES.format(origin=origin.origin.url)
    reply = console_cluster.call(1, "rules-reload", timeout_s=30, files=[["shop.rules", rules]])
    assert reply["ok"], reply
    try:
        page.wait_for_function("""() => Object.values(window.seenRows).some(
            seen => seen.includes("RUNNING") && seen.at(-1) === "SUCCEEDED")""", timeout=60_000)
    finally:
        origin.origin.state.service_time_s, origin.origin.state.capacity = 0.0, 64
    seen = page.evaluate("window.seenRows")
    task_id, states = next((task_id, states) for task_id, states in seen.items()
                           if "RUNNING" in states and states[-1] == "SUCCEEDED")
    assert states.index("RUNNING") < states.index("SUCCEEDED")
    assert page.evaluate("window.warmdLoadedAt") == loaded_at
    task = console_cluster.call(2, "task-show", task_id=task_id)["task"]
    plan = console_cluster.call(2, "plans", limit=5)["plans"]
    assert task["rule"] == "items" and task["plan_id"] in {p["plan_id"] for p in plan
                                                          if p["trigger"] == "new-rules"}


def test_a_follower_answers_cluster_with_every_peers_trail_from_the_leaders_report(
        console_cluster: ProcessCluster, auth_headers: dict[str, str]) -> None:
    """/api/v1/cluster on a follower gives every peer's match index and trails-by, from
    the leader's report (its index and age said), and its own trail live."""
    leader = console_cluster.wait_for_leader()
    follower = next(node_id for node_id in console_cluster.nodes if node_id != leader)

    def reported() -> dict[str, Any] | None:
        request = urllib.request.Request(console_url(console_cluster, follower,
                                                     "/api/v1/cluster"), headers=auth_headers)
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = json.loads(reply.read())
        peers = body["peers"]
        known = all(peer["trails_by"] is not None for peer in peers)
        return body if known and body["report"] and body["report"]["current"] else None

    body = console_cluster.wait_until(reported, 40, "a follower's /cluster with every trail")
    rows = {peer["node_id"]: peer for peer in body["peers"]}
    assert set(rows) == set(console_cluster.nodes)
    assert rows[follower]["source"] == "live" and rows[follower]["is_self"]
    assert all(rows[node_id]["source"] == "report" for node_id in rows if node_id != follower)
    assert rows[leader]["is_leader"] and rows[leader]["trails_by"] == 0
    assert all(rows[node_id]["match_index"] > 0 for node_id in rows)
    assert body["report"]["leader_id"] == leader and body["report"]["index"] > 0
    assert body["report"]["age_s"] < 60


def test_every_page_renders_and_is_captured_at_1280x800(
        page: Any, console_cluster: ProcessCluster, redis_server: ServerProcess,
        screenshot_dir: Path, origin: ThreadedOrigin) -> None:
    """Each page answers 200 with its table or cards, and a screenshot of it is written."""
    rules = RULES.format(origin=origin.origin.url)
    reply = console_cluster.call(1, "rules-reload", timeout_s=30, files=[["shop.rules", rules]])
    assert reply["ok"], reply
    submit(console_cluster, "bad-1", "redis://127.0.0.1:1", _keys("bad", 3))
    leader, plan = _run_a_plan(console_cluster)
    for path in (*PAGES, "/tasks/live-1", f"/plans/{plan['plan_id']}"):
        response = page.goto(console_url(console_cluster, leader, path))
        assert response.status == 200, path
        page.wait_for_selector("main h1")
        name = path.strip("/").split("/")[0] + ("-one" if path.count("/") > 1 else "") or "overview"
        page.screenshot(path=str(screenshot_dir / f"{name}.png"))
        assert (screenshot_dir / f"{name}.png").stat().st_size > 10_000
    page.goto(console_url(console_cluster, leader, "/rules"))
    assert "items" in page.inner_text("#rules")  # the committed rule, with its next fire time
    assert "03:00:00" in page.inner_text("#rules")
    follower = next(node_id for node_id in console_cluster.nodes if node_id != leader)
    page.goto(console_url(console_cluster, follower, "/cluster"))
    assert "as of its report at Raft index" in page.inner_text("#replication-source")
    page.screenshot(path=str(screenshot_dir / "cluster-follower.png"))


def test_pages_work_without_javascript(browser: Any, console_cluster: ProcessCluster,
                                      auth_headers: dict[str, str]) -> None:
    """With JavaScript off, the filter form still filters (the query goes in the URL)."""
    context = browser.new_context(java_script_enabled=False, extra_http_headers=auth_headers)
    try:
        page = context.new_page()
        page.goto(console_url(console_cluster, 1, "/tasks"))
        page.fill("input[name=text]", "long-")
        page.click("form.filters button")
        assert "text=long-" in page.url
        rows = page.locator("#task-table tbody tr[data-task]")
        assert rows.count() == 1 and rows.first.get_attribute("data-task") == "long-1"
        assert "1 of" in page.inner_text(".pager")
    finally:
        context.close()


def test_killing_the_leader_shows_the_new_leader_on_cluster(
        page: Any, console_cluster: ProcessCluster) -> None:
    """/cluster on a follower marks the new leader within seconds of the old one's death."""
    old = console_cluster.wait_for_leader()
    watcher = next(node_id for node_id in console_cluster.nodes if node_id != old)
    page.goto(console_url(console_cluster, watcher, "/cluster"))
    page.wait_for_selector("#live.on")
    assert page.inner_text("#leader-id") == f"node {old}"
    console_cluster.kill(old)
    page.wait_for_function(
        "old => !['node ' + old, 'none'].includes(document.getElementById('leader-id').innerText)",
        arg=old, timeout=10_000)
    new = console_cluster.wait_for_leader()
    assert page.inner_text("#leader-id") == f"node {new}"
    assert page.locator(f'tr.leader[data-node="{new}"]').count() == 1
