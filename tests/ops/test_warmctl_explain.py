"""warmctl explain, plans, summaries and the status warm-up block against a real `warmd run`
process: first with nothing shipped, then with a real access log tailed by the node's log
pipeline, summarised, shipped through Raft, planned by the leader and explained back over
the admin socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from warmd.cli.warmctl import main as warmctl_main
from warmd.testing.loggen import LogSpec, generate_lines
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import free_port


def warmctl(cluster: ProcessCluster, capsys: pytest.CaptureFixture[str],
            *args: str) -> tuple[int, str, str]:
    """Run warmctl in-process against node 1; returns (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = warmctl_main(["--socket", str(cluster.nodes[1].socket_path), *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def cluster() -> Iterator[ProcessCluster]:
    """A one-node cluster (closed at the end)."""
    with ProcessCluster(1) as made:
        yield made


def test_nothing_shipped_yet_gives_clear_answers(cluster: ProcessCluster,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Without [sources] explain exits 1 naming the cause, a malformed line exits 64, and
    plans, summaries and status say that nothing is there yet."""
    cluster.start_all().wait_for_leader()
    status, _, err = warmctl(cluster, capsys, "explain", "/api/items/1")
    assert status == 1 and "no node has shipped a summary yet; is [sources] configured?" in err
    status, _, err = warmctl(cluster, capsys, "explain", "FETCH /api/items/1")
    assert status == 64 and "unknown method 'FETCH'" in err
    status, out, _ = warmctl(cluster, capsys, "plans")
    assert status == 0 and out.strip() == "no plans yet"
    status, out, _ = warmctl(cluster, capsys, "summaries", "--json")
    assert status == 0 and json.loads(out)["summaries"] == []
    status, out, _ = warmctl(cluster, capsys, "status")
    assert status == 0 and "warm-up: no plan yet" in out
    assert "summaries: no summaries shipped yet" in out


def _with_source_and_planner(cluster: ProcessCluster, log_path: Path) -> None:
    """Tail `log_path`, ship every 300 ms, and plan 20 requests (2 tasks) into an http cache."""
    node = cluster.nodes[1]
    node.executor.update({"enabled": True})  # the planning loop runs beside the executor
    cluster.write_config(node)
    with node.config_path.open("a") as config:
        config.write(f"""
[sources.web]
paths = ["{log_path}"]
format = "combined"

[analysis]
ship_interval_ms = 300
poll_interval_ms = 100

[caches.site]
kind = "http"
url = "http://127.0.0.1:{free_port()}"

[planner]
interval_ms = 600000
budget = 20
batch_requests = 10
""")


def test_a_tailed_log_is_shipped_planned_and_explained(cluster: ProcessCluster, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A node tails its access log and ships the summary through Raft; the leader plans from
    it; plans, summaries and status show both; explain answers from the same state: every
    request of the plan's first task is warmed, a secret token is never-warm."""
    start = datetime.now(tz=UTC) - timedelta(days=1)
    lines = list(generate_lines(LogSpec(seed=4, start=start, days=1.0, requests_per_day=6_000)))
    log_path = tmp_path / "access.log"
    log_path.write_text("\n".join(lines) + "\n")
    _with_source_and_planner(cluster, log_path)
    cluster.start_all().wait_for_leader()

    def shipped() -> dict[str, Any] | None:
        reply = cluster.call(1, "summaries")
        rows = reply["summaries"]
        return reply if rows and rows[0]["lines"] + rows[0]["malformed"] == len(lines) else None

    reply = cluster.wait_until(shipped, 30, "the log's summary to be shipped")
    assert reply["summaries"][0]["source"] == "web" and reply["summaries"][0]["problem"] == ""
    status, out, _ = warmctl(cluster, capsys, "summaries")
    assert status == 0 and "1 nodes, 1 sources" in out
    assert "this node: web: 1 files" in out and "; shipped" in out
    plan = cluster.wait_until(lambda: (cluster.call(1, "plans")["plans"] or [None])[0], 30,
                              "the leader's first plan")
    assert plan["trigger"] == "schedule" and plan["requests"] == 20 and plan["tasks"] == 2
    status, out, _ = warmctl(cluster, capsys, "plans")
    assert status == 0 and plan["plan_id"] in out and "zero-config" in out
    tasks = cluster.call(1, "task-list")["tasks"]
    first = min(task["task_id"] for task in tasks if task["task_id"].startswith(plan["plan_id"]))
    keys = cluster.call(1, "task-show", task_id=first, keys=True)["task"]["key_list"]
    for key in keys:
        status, out, _ = warmctl(cluster, capsys, "explain", key, "--json")
        explained = json.loads(out)
        assert status == 0 and explained["would_warm"], (key, explained["why_not"])
        assert explained["rank"] <= 20 and explained["expected_hits"] > 0
    status, out, _ = warmctl(cluster, capsys, "explain",
                             "/account/settings?token=tok00001x000000001")
    assert status == 0 and "NOT warmed: never-warm: slot token is secret" in out
    status, out, _ = warmctl(cluster, capsys, "status")
    assert f"warm-up: last plan {plan['plan_id']} (schedule)" in out
    assert f"summaries: 1 nodes, 1 sources, {reply['total']['lines']:,} lines" in out
    _explain_under_new_rules(cluster, capsys)


def _explain_under_new_rules(cluster: ProcessCluster, capsys: pytest.CaptureFixture[str]) -> None:
    """A committed rule set makes warm-up opt-in: explain names the owning rule, and the
    leader's "new-rules" plan is listed first with the set's short version."""
    rules = [["items.rules", "rule items {\n    match GET /api/items/{item:int}\n}\n"]]
    version = cluster.call(1, "rules-reload", files=rules)["version"]
    status, out, _ = warmctl(cluster, capsys, "explain", "/api/items/0")
    assert status == 0 and "rule      items" in out and version[:12] in out
    status, out, _ = warmctl(cluster, capsys, "explain", "/search?page=1&q=shoes")
    assert "NOT warmed: not selected by any rule" in out
    newest = cluster.wait_until(
        lambda: next((plan for plan in cluster.call(1, "plans")["plans"]
                      if plan["trigger"] == "new-rules"), None), 30, "the new-rules plan")
    assert newest["rules_version_short"] == version[:12]
    status, out, _ = warmctl(cluster, capsys, "plans", "--json")
    assert json.loads(out)["plans"][0]["plan_id"] == newest["plan_id"]
