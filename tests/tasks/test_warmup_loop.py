"""The whole loop on three real daemons, zero-config: each node tails its own access log and
ships its summary, the leader merges them, a FLUSHALL on the watched Redis triggers a plan,
the executors replay its predicted requests against the service, and the plan's effect on
the cache's hit rate is recorded in the replicated state."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from warmd.testing import configs
from warmd.testing.loggen import LogSpec, generate_lines
from warmd.testing.origin import OriginState, TestOrigin
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import ServerProcess, free_port

NODES = 3
BUDGET = 120


class ThreadedOrigin:
    """A TestOrigin on its own event loop in a thread, so the test may block while the
    daemons (other processes) replay requests against it."""

    def __init__(self) -> None:
        self.origin = TestOrigin(OriginState(), record_paths=True)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedOrigin:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.origin.__aenter__(), self._loop).result(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self.origin.__aexit__(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def paths(self) -> list[str]:
        return list(self.origin.state.paths)


@pytest.fixture
def origin() -> Iterator[ThreadedOrigin]:
    with ThreadedOrigin() as running:
        yield running


def write_logs(directory: Path, count: int) -> list[Path]:
    """Two days of generated traffic ending now, dealt round-robin into `count` logs (one
    per host behind a load balancer)."""
    start = datetime.now(UTC) - timedelta(days=2)
    lines = list(generate_lines(LogSpec(start=start, days=2.0, requests_per_day=4_000, seed=5)))
    paths = [directory / f"access-{number}.log" for number in range(1, count + 1)]
    for number, path in enumerate(paths):
        path.write_text("".join(line + "\n" for line in lines[number::count]))
    return paths


def warm_up_config(log: Path, origin_url: str, redis_address: str) -> str:
    return configs.warm_up_config(log, origin_url, redis_address, budget=BUDGET,
                                  batch_requests=30)


def newest_plan(cluster: ProcessCluster, node_id: int) -> dict[str, Any] | None:
    plans = cluster.call(node_id, "plans", limit=1)["plans"]
    return plans[0] if plans else None


def finished_plan(cluster: ProcessCluster, node_id: int, what: str) -> dict[str, Any]:
    """Wait for the newest plan to exist with every task SUCCEEDED; return it."""
    def done() -> dict[str, Any] | None:
        plan = newest_plan(cluster, node_id)
        succeeded = plan is not None and plan["tasks"] and plan["tasks_by_state"] == {
            "SUCCEEDED": plan["tasks"]}
        return plan if succeeded else None
    return cluster.wait_until(done, 40, f"{what} to finish")


def test_a_flush_is_warmed_back_from_the_merged_logs_of_every_node(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        origin: ThreadedOrigin, tmp_path: Path) -> None:
    """Three nodes, three logs, no rule file: after FLUSHALL, one plan made from all three
    summaries is committed, every task succeeds through HTTP replay, the requests reach the
    service, and the effect is recorded."""
    cache = redis.Redis(port=redis_target.port)
    cache.mset({f"page:{number}": b"x" for number in range(50)})
    logs = write_logs(tmp_path, NODES)
    cluster = make_task_cluster(NODES)
    for node_id, node in cluster.nodes.items():
        node.extra_config = warm_up_config(logs[node_id - 1], origin.origin.url,
                                           redis_target.address)
        cluster.write_config(node)
    cluster.start_all()
    leader = cluster.wait_for_leader(timeout_s=20)

    def shipped() -> bool:
        total = cluster.call(leader, "summaries")["total"]
        return total["nodes"] == NODES and total["lines"] > 7_000

    cluster.wait_until(shipped, 30, "every node's summary")
    assert newest_plan(cluster, leader) is None  # nothing happened yet: nothing planned
    cache.flushall()

    plan = finished_plan(cluster, leader, "the flush plan")
    assert plan["trigger"] == "cache-flush:redis" and plan["rules_version"] == ""
    assert plan["requests"] == BUDGET and plan["tasks"] == BUDGET // 30
    replayed = origin.paths()
    assert len(replayed) >= BUDGET
    # The generated log's reports ask for the request's own date or the next day's; which of
    # them the plan warms for the next horizon_ms (6 h) depends on the hour: after 18:00 UTC
    # the window crosses midnight and the day after tomorrow (never logged) is asked too.
    now = datetime.now(UTC)
    window_dates = {(now + timedelta(hours=hours, days=days)).strftime("%Y-%m-%d")
                    for hours in range(7) for days in (0, 1)}
    replayed_dates = {path.split("date=")[1][:10] for path in replayed if "date=" in path}
    assert replayed_dates & window_dates, (replayed_dates, window_dates)
    assert not any("token=" in path for path in replayed)  # user-scoped: never warmed
    tasks = cluster.call(leader, "task-list")["tasks"]
    owners = {task["owner"] for task in tasks if task["plan_id"] == plan["plan_id"]}
    assert owners and owners <= set(cluster.nodes)
    measured = cluster.wait_until(lambda: (p := newest_plan(cluster, leader)) and p["effect"],
                                  20, "the effect")
    assert measured["cache"] == "redis" and measured["window_ms"] == 1000


def start_with_rules(cluster: ProcessCluster, rules_text: str, origin: ThreadedOrigin,
                     redis_target: ServerProcess, tmp_path: Path,
                     planner_extra: str = "") -> ProcessCluster:
    """Start a one-node cluster tailing a generated log, with `rules_text` as its rule file
    (`planner_extra` replaces [planner] settings, e.g. `effect_window_ms = 3000`)."""
    rules = tmp_path / "test.rules"
    rules.write_text(rules_text)
    node = cluster.nodes[1]
    config = warm_up_config(write_logs(tmp_path, 1)[0], origin.origin.url, redis_target.address)
    if planner_extra:
        config = config.replace("effect_window_ms = 1000\n", planner_extra)
    node.extra_config = config + f'\n[rules]\nfiles = ["{rules}"]\n'
    cluster.write_config(node)
    cluster.start_all()
    cluster.wait_for_leader(timeout_s=20)
    return cluster


ITEMS_RULES = """\
rule items {{
    match GET /api/items/{{item:int}}
    key "item:{{item}}"
    load fetch "{origin}/api/items/{{item}}?from=warmd"
    backend redis
    budget top 30
    ttl 10m
}}
"""


def test_committed_rules_steer_a_direct_fill_and_the_plan_records_their_version(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        origin: ThreadedOrigin, tmp_path: Path) -> None:
    """With a rule file, the new rule version triggers a plan that warms only what the rule
    selects: each hot item is fetched from the origin URL the rule renders and written into
    Redis under the rule's key, and the plan and its tasks carry the committed version."""
    cluster = start_with_rules(make_task_cluster(1), ITEMS_RULES.format(origin=origin.origin.url),
                               origin, redis_target, tmp_path)

    plan = finished_plan(cluster, 1, "the new-rules plan")
    version = cluster.call(1, "rules-show")["version"]
    assert plan["trigger"] == "new-rules" and plan["rules_version"] == version
    assert plan["requests"] == 30
    cache = redis.Redis(port=redis_target.port)
    keys = sorted(key.decode() for key in cache.keys("*"))
    assert len(keys) == 30 and all(key.startswith("item:") for key in keys)
    assert cache.get(keys[0]).startswith(b"/api/items/")
    assert 0 < cache.ttl(keys[0]) <= 600
    replayed = origin.paths()
    assert replayed and all(path.startswith("/api/items/") and path.endswith("?from=warmd")
                            for path in replayed)
    tasks = cluster.call(1, "task-list")["tasks"]
    assert {task["rules_version"] for task in tasks} == {version}


GATED_RULES = """\
gate etl {{
    check file path="{marker}"
    poll 200ms
    timeout 1m
}}

rule items {{
    match GET /api/items/{{item:int}}
    key "item:{{item}}"
    load fetch "{origin}/api/items/{{item}}"
    backend redis
    budget top 10
    gate etl
    on gate-ready etl
}}
"""


def test_a_gate_turning_ready_triggers_its_plan(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        origin: ThreadedOrigin, tmp_path: Path) -> None:
    """A rule that warms `on gate-ready etl` plans nothing while the marker is missing, and
    once the marker appears its plan is made and run through the open gate."""
    marker = tmp_path / "etl.done"
    cluster = start_with_rules(make_task_cluster(1),
                               GATED_RULES.format(marker=marker, origin=origin.origin.url),
                               origin, redis_target, tmp_path)
    cluster.wait_until(lambda: cluster.call(1, "summaries")["total"]["lines"] > 7_000, 30,
                       "the summary")
    time.sleep(1.0)
    assert newest_plan(cluster, 1) is None  # the gate is closed: nothing to plan
    marker.write_text("")

    plan = finished_plan(cluster, 1, "the gate-ready plan")
    assert plan["trigger"] == "gate-ready:etl" and plan["requests"] == 10
    assert len(redis.Redis(port=redis_target.port).keys("item:*")) == 10
    task_id = cluster.call(1, "task-list", plan=plan["plan_id"])["tasks"][0]["task_id"]
    notes = cluster.call(1, "task-show", task_id=task_id)["task"]["notes"]
    assert notes[-1]["kind"] == "gate" and notes[-1]["detail"].startswith("etl open: ")
    assert notes[0]["detail"] == "waiting for gate etl"  # the gate was checked before it ran


WARMCTL = "from warmd.cli.warmctl import main; raise SystemExit(main())"
EXAMPLE_PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "warmd-plugin-example"

PLUGIN_RULES = """\
gate flag {{
    check env_flag ready="{ready}"
    poll 200ms
    timeout 1m
}}

rule items {{
    match GET /api/items/{{item:int}}
    key "item:{{item}}"
    load plugin reversed_path
    backend redis
    budget top 10
    gate flag
}}
"""


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example package installed by pip (as an operator would) into a directory the
    daemons get on their PYTHONPATH: the test venv stays as it was."""
    target = tmp_path_factory.mktemp("plugins")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(EXAMPLE_PLUGIN)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert list(target.glob("warmd_plugin_example-*.dist-info/entry_points.txt"))
    return target


def reload_rules(cluster: ProcessCluster, text: str) -> dict[str, Any]:
    return cluster.call(1, "rules-reload", files=[["test.rules", text]])  # type: ignore[no-any-return]


def test_an_installed_plugin_gates_and_loads_a_planned_task(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        origin: ThreadedOrigin, example_plugin: Path, tmp_path: Path) -> None:
    """With the example package pip-installed, the daemon loads its entry points: `warmctl
    plugins` lists them with their version, a rule naming a plugin that is not installed is
    refused with the installed names, a gate whose plugin raises shows the exception on the
    waiting task, and once the gate opens the plugin loader fills Redis."""
    cluster = make_task_cluster(1)
    cluster.nodes[1].extra_environment["PYTHONPATH"] = str(example_plugin)
    start_with_rules(cluster, PLUGIN_RULES.format(ready="maybe"), origin, redis_target, tmp_path)
    listed = subprocess.run([sys.executable, "-c", WARMCTL, "--socket",
                             str(cluster.nodes[1].socket_path), "plugins"],
                            capture_output=True, text=True, check=True).stdout
    assert "reversed_path" in listed and "0.1.0" in listed and "warmd-plugin-example" in listed
    assert {p["name"] for p in cluster.call(1, "status")["plugins"]} >= {"env_flag", "reversed_path"}

    refused = reload_rules(cluster, PLUGIN_RULES.format(ready="yes").replace(
        "plugin reversed_path", "plugin reversed_paths"))
    assert not refused["ok"] and "unknown plugin 'reversed_paths'" in refused["errors"]
    assert "reversed_path" in refused["errors"]  # the nearest installed name is suggested
    declared = reload_rules(cluster, "plugin not_here\n" + PLUGIN_RULES.format(ready="yes"))
    assert not declared["ok"] and "plugin 'not_here' is not installed" in declared["errors"]

    def waiting_with_cause() -> list[dict[str, Any]]:
        return [task for task in cluster.call(1, "task-list", state="WAITING")["tasks"]
                if "ValueError: ready must be yes or no, got 'maybe'" in task["reason"]]

    cluster.wait_until(waiting_with_cause, 30, "a WAITING task showing the gate's exception")
    gated = newest_plan(cluster, 1)
    assert gated is not None
    socket_args = ["--socket", str(cluster.nodes[1].socket_path)]
    cancelled = subprocess.run([sys.executable, "-c", WARMCTL, *socket_args, "plans", "cancel",
                                gated["plan_id"]], capture_output=True, text=True, check=True)
    assert f"{gated['tasks']} tasks cancelled" in cancelled.stdout
    listed = json.loads(subprocess.run(
        [sys.executable, "-c", WARMCTL, *socket_args, "tasks", "ls", "--plan", gated["plan_id"],
         "--state", "cancelled", "--json"], capture_output=True, text=True, check=True).stdout)
    assert listed["total"] == gated["tasks"]
    assert reload_rules(cluster, PLUGIN_RULES.format(ready="yes"))["ok"]
    finished_plan(cluster, 1, "the plugin-loaded plan")
    cache = redis.Redis(port=redis_target.port)
    keys = sorted(key.decode() for key in cache.keys("item:*"))
    assert len(keys) >= 10
    item = keys[0].removeprefix("item:")
    assert cache.get(keys[0]) == f"/api/items/{item}"[::-1].encode()


UNREACHABLE_RULES = """\
rule items {{
    match GET /api/items/{{item:int}}
    key "item:{{item}}"
    load fetch "{origin}/api/items/{{item}}"
    backend local
    budget top 5
}}
"""


def test_the_effect_is_measured_on_the_cache_the_plan_is_about(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        origin: ThreadedOrigin, tmp_path: Path) -> None:
    """With a second, unreachable Redis declared first, a flush of the real one is measured
    on the real one (not on the first watched cache), and a plan that warms the unreachable
    cache says so in `warmctl plans` instead of "measuring" forever."""
    cluster = make_task_cluster(1)
    node = cluster.nodes[1]
    node.extra_config = (f'[caches.local]\nkind = "redis"\naddress = "127.0.0.1:{free_port()}"\n'
                         + warm_up_config(write_logs(tmp_path, 1)[0], origin.origin.url,
                                          redis_target.address))
    cluster.write_config(node)
    cluster.start_all()
    cluster.wait_for_leader(timeout_s=20)
    cache = redis.Redis(port=redis_target.port)
    cache.mset({f"page:{number}": b"x" for number in range(50)})
    cluster.wait_until(lambda: cluster.call(1, "summaries")["total"]["lines"] > 7_000, 30,
                       "the summary")
    time.sleep(0.5)  # the watcher's first samples of the real cache
    cache.flushall()
    plan = finished_plan(cluster, 1, "the flush plan")
    assert plan["trigger"] == "cache-flush:redis" and plan["watch"] == "redis"
    measured = cluster.wait_until(lambda: (p := newest_plan(cluster, 1)) and p["effect"],
                                  20, "the effect")
    assert measured["cache"] == "redis"

    assert reload_rules(cluster, UNREACHABLE_RULES.format(origin=origin.origin.url))["ok"]

    def unreachable() -> dict[str, Any] | None:
        plan = newest_plan(cluster, 1)
        return plan if plan and plan["effect_status"] == "cache local unreachable" else None

    plan = cluster.wait_until(unreachable, 30, "the plan on the unreachable cache")
    assert plan["watch"] == "local" and plan["trigger"] == "new-rules"
    shown = subprocess.run([sys.executable, "-c", WARMCTL, "--socket", str(node.socket_path),
                            "plans"], capture_output=True, text=True, check=True).stdout
    assert "cache local unreachable" in shown


def test_each_task_shows_its_effect_and_waste(
        make_task_cluster: Callable[..., ProcessCluster], redis_target: ServerProcess,
        origin: ThreadedOrigin, tmp_path: Path) -> None:
    """After a direct-fill plan, the node that ran each task measures, over the effect
    window, which of its keys the service read (effect) and which it never read (waste);
    `tasks show` reports them and the task's share of its plan's reads."""
    cluster = make_task_cluster(1)
    start_with_rules(cluster, ITEMS_RULES.format(origin=origin.origin.url).replace(
        "budget top 30", "budget top 20"), origin, redis_target, tmp_path,
        planner_extra="effect_window_ms = 6000\n")
    plan = finished_plan(cluster, 1, "the new-rules plan")
    time.sleep(2.0)  # reads in the window's first second are not told apart from the write
    cache = redis.Redis(port=redis_target.port)
    keys = sorted(key.decode() for key in cache.keys("item:*"))
    assert len(keys) == 20
    for key in keys[:5]:
        cache.get(key)
    task_ids = [task["task_id"] for task in
                cluster.call(1, "task-list", plan=plan["plan_id"])["tasks"]]

    def measured() -> list[dict[str, Any]] | None:
        effects = [cluster.call(1, "task-show", task_id=task_id)["task"].get("effect")
                   for task_id in task_ids]
        return effects if all(effects) else None

    effects = cluster.wait_until(measured, 20, "every task's effect")
    assert sum(effect["keys_read"] for effect in effects) == 5, json.dumps(effects)
    assert sum(effect["keys_never_read"] for effect in effects) == 15
    assert sum(effect["share_of_plan_reads"] or 0 for effect in effects) == pytest.approx(1.0)
    shown = subprocess.run([sys.executable, "-c", WARMCTL, "--socket",
                            str(cluster.nodes[1].socket_path), "tasks", "show", task_ids[0]],
                           capture_output=True, text=True, check=True).stdout
    assert "effect:" in shown and "keys_never_read:" in shown
