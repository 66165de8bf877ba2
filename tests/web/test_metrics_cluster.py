"""/metrics of three real daemons during a warm-up: the figures move as the cluster works.

Each node tails its own access log (with nginx's cache status as a trailing field) and
serves /metrics on its `[metrics] listen` address; a FLUSHALL on the watched Redis makes the
leader plan, the executors replay the plan against a test origin, and the scrapes show it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from warmd.testing.configs import warm_up_config
from warmd.testing.procs import ProcessCluster
from warmd.testing.servers import ServerProcess, free_port, start_redis

NODES = 3
LINES_PER_NODE = 600
# (template as warmd mines it, raw path of line number i, cache status of line number i)
TRAFFIC = (
    ("/api/items/{int}", lambda i: f"/api/items/{i % 40}", lambda i: "HIT" if i % 3 else "MISS"),
    ("/api/users/{int}/cart", lambda i: f"/api/users/{i}/cart", lambda i: "BYPASS"),
    ("/health", lambda i: "/health", lambda i: "-"),
)
RESULTS = {"HIT": "hit", "MISS": "miss", "BYPASS": "miss", "-": "unknown"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def write_log(path: Path, node_id: int) -> Counter[tuple[str, str]]:
    """LINES_PER_NODE combined lines with a trailing cache status; the expected counts."""
    start = datetime.now(UTC) - timedelta(hours=1)
    expected: Counter[tuple[str, str]] = Counter()
    lines = []
    for i in range(LINES_PER_NODE):
        template, raw, status = TRAFFIC[(i + node_id) % len(TRAFFIC)]
        stamp = (start + timedelta(seconds=i)).strftime("%d/%b/%Y:%H:%M:%S +0000")
        lines.append(f'10.0.{node_id}.{i % 200} - - [{stamp}] "GET {raw(i)} HTTP/1.1" 200 512 '
                     f'"-" "Mozilla/5.0" {status(i)}\n')
        expected[(template, RESULTS[status(i)])] += 1
    path.write_text("".join(lines))
    return expected


def node_config(log: Path, metrics_port: int, origin_url: str, redis_address: str) -> str:
    metrics = f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
    return metrics + warm_up_config(log, origin_url, redis_address, budget=60, batch_requests=20)


def scrape(port: int) -> Samples:
    """Every sample of one /metrics page, keyed by name and sorted labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (sample, _), v in samples.items() if sample == name)


def cache_requests(samples: Samples) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for (name, labels), count in samples.items():
        if name == "warmd_cache_requests_total" and count:
            found = dict(labels)
            counts[(found["pattern"], found["result"])] += int(count)
    return counts


@pytest.fixture
def origin_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "warmd.testing.origin", "--port", str(port)])
    try:
        deadline_s = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline_s:
                    raise
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def redis_target() -> Iterator[ServerProcess]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def cluster() -> Iterator[ProcessCluster]:
    with ProcessCluster(NODES) as made:
        yield made


def test_metrics_move_during_a_warm_up(cluster: ProcessCluster, redis_target: ServerProcess,
                                       origin_url: str, tmp_path: Path) -> None:
    """Per-pattern requests match the logs written; after a flush is warmed back, every node's
    commit index has risen, tasks have finished, exactly one node reports leading, and the
    plan and its task transitions are JSON log events carrying the plan's id."""
    cache = redis.Redis(port=redis_target.port)
    cache.mset({f"page:{number}": b"x" for number in range(20)})  # the flush is seen as one
    ports, expected = {}, {}
    for node_id, node in cluster.nodes.items():
        log = tmp_path / f"access-{node_id}.log"
        expected[node_id] = write_log(log, node_id)
        ports[node_id] = free_port()
        node.executor.update({"enabled": True, "lease_ms": 1500, "heartbeat_interval_ms": 300})
        node.extra_config = node_config(log, ports[node_id], origin_url, redis_target.address)
        cluster.write_config(node)
    cluster.start_all()
    cluster.wait_for_leader(timeout_s=20)

    for node_id, port in ports.items():
        cluster.wait_until(lambda p=port, n=node_id: cache_requests(scrape(p)) == expected[n],
                           30, f"node {node_id}'s cache_requests_total to match its log")
    # The planner plans from the replicated summaries: flush only once every node's is in,
    # or the flush is planned from nothing (the counts above are the workers', earlier).
    cluster.wait_until(lambda: (cluster.status(1) or {}).get("warm_up", {}).get(
        "summaries", {}).get("reports") == len(ports), 30, "every node's summary")
    before = {node_id: scrape(port) for node_id, port in ports.items()}
    cache.flushall()

    def settled() -> dict[int, Samples] | None:
        scrapes = {node_id: scrape(port) for node_id, port in ports.items()}
        finished = sum(total(s, "warmd_tasks_finished_total") for s in scrapes.values())
        succeeded = value(scrapes[1], "warmd_tasks", state="succeeded")
        return scrapes if finished and finished == succeeded else None

    after = cluster.wait_until(settled, 40, "the plan's tasks to finish")
    for node_id in ports:
        assert value(after[node_id], "warmd_commit_index") > value(before[node_id],
                                                                    "warmd_commit_index")
        assert value(after[node_id], "warmd_has_leader") == 1
        assert value(after[node_id], "warmd_tasks", state="succeeded") >= 1
        assert value(after[node_id], "warmd_log_lines_total", source="web", result="ok") \
            == LINES_PER_NODE
    assert sum(value(after[n], "warmd_is_leader") for n in ports) == 1
    leader = next(n for n in ports if value(after[n], "warmd_is_leader"))
    assert after[leader][("warmd_cache_keys", (("target", "redis"),))] == 0  # watched, flushed
    for _ in range(3):
        cache.get("not-there")
    cluster.wait_until(lambda: value(scrape(ports[leader]), "warmd_cache_server_requests_total",
                                     target="redis", result="miss") >= 3,
                       10, "the watched cache's own misses")
    assert total(after[leader], "warmd_peer_round_trip_time_seconds_count") > 0
    assert sum(value(before[n], "warmd_tasks_finished_total", target_kind="http",
                     outcome="succeeded") for n in ports) == 0
    assert sum(value(after[n], "warmd_tasks_finished_total", target_kind="http",
                     outcome="succeeded") for n in ports) >= 1
    assert value(after[1], "warmd_plan_keys", trigger="cache-flush:redis") > 0
    events = [json.loads(line) for node in cluster.nodes.values()
              for line in node.log_text().splitlines() if line.startswith("{")]
    plans = {e["plan_id"] for e in events if e["event"] == "plan_committed"}
    finished = [e for e in events if e["event"] == "task_transition" and e["command"] == "Finish"]
    assert len(plans) == 1 and {e["plan_id"] for e in finished} == plans
    assert len(finished) == sum(total(s, "warmd_tasks_finished_total") for s in after.values())
    assert any(e["event"] == "task_transition" and e["command"] == "Assign" for e in events)
    assert any(e["event"] == "raft_state_changed" and e["role"] == "leader" for e in events)
