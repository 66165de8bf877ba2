"""The demo's warmd cluster: its generated configs, and real daemons started and stopped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from warmd.config import load
from warmd.demo.cluster import (
    DemoCluster,
    DemoClusterError,
    DemoClusterSpec,
    PlanProgress,
    ShippedLines,
)
from warmd.demo.traffic import TrafficSpec, write_split_history
from warmd.testing.servers import ServerProcess

END_S = 1_795_000_000.0


def spec_for(directory: Path, **changes: object) -> DemoClusterSpec:
    fields: dict[str, object] = {
        "shop_url": "http://127.0.0.1:18080", "redis_address": "127.0.0.1:16379",
        "history_paths": tuple(directory / f"history-node{n}.log" for n in (1, 2, 3)),
        "budget": 1234}
    fields.update(changes)
    return DemoClusterSpec(**fields)  # type: ignore[arg-type]


def test_every_node_config_loads_with_the_demo_settings(tmp_path: Path) -> None:
    """Each generated config passes warmd.config.load and holds the caches, the node's own
    history log (and no live log: the measured requests must not reach warmd), the analysis
    and planner settings."""
    cluster = DemoCluster(spec_for(tmp_path))
    try:
        for node_id, node in cluster.nodes.items():
            config = load(node.config_path)
            assert config.node.node_id == node_id and len(config.peers) == 3
            assert config.executor.enabled
            caches = {cache.name: cache for cache in config.caches}
            assert caches["shop"].kind == "http" and caches["shop"].url == "http://127.0.0.1:18080"
            assert caches["redis"].kind == "redis"
            assert str(caches["redis"].addresses[0]) == "127.0.0.1:16379"
            (source,) = config.sources
            wanted = [str(tmp_path / f"history-node{node_id}.log")]
            assert source.format == "combined" and list(source.paths) == wanted
            assert config.analysis.ship_interval_ms == 1000
            assert config.analysis.poll_interval_ms == 200
            planner = config.planner
            assert (planner.target, planner.watch, planner.interval_ms) == ("shop", ("redis",), 0)
            assert (planner.min_interval_ms, planner.budget, planner.effect_window_ms) == (
                2000, 1234, 5000)
            assert planner.horizon_ms == 3_600_000
            assert config.admin.socket_path == node.socket_path
    finally:
        cluster.close()
    assert not cluster.root.exists()


@pytest.mark.parametrize(("changes", "reason"), [
    ({"history_paths": ()}, "one history log per node"),
    ({"budget": -1}, "budget"),
    ({"shop_url": "ftp://shop"}, "http://"),
])
def test_bad_spec_is_refused_with_a_reason(tmp_path: Path, changes: dict, reason: str) -> None:
    """A spec the demo cannot run is refused before any file or process is made."""
    with pytest.raises(ValueError, match=reason):
        DemoCluster(spec_for(tmp_path, **changes))


def test_plan_progress_reads_the_plans_reply() -> None:
    """A plan is finished when every task reached an end state, succeeded only when all
    SUCCEEDED; a reply without the needed fields is a clear error."""
    document = {"plan_id": "p-1", "trigger": "cache-flush:redis", "requests": 250, "tasks": 3,
                "tasks_by_state": {"SUCCEEDED": 2, "RUNNING": 1}}
    running = PlanProgress.from_document(document)
    assert not running.finished and running.succeeded == 2
    done = PlanProgress.from_document({**document, "tasks_by_state": {"SUCCEEDED": 2,
                                                                      "FAILED": 1}})
    assert done.finished and done.succeeded < done.tasks
    assert "cache-flush:redis" in done.describe() and "1 FAILED" in done.describe()
    with pytest.raises(DemoClusterError, match="unexpected plan document"):
        PlanProgress.from_document({"plan_id": "p-2"})


def test_cluster_elects_a_leader_and_stop_leaves_no_process(tmp_path: Path,
                                                            process_tree: tuple) -> None:
    """Three real daemons elect a leader; stop_all ends them and every process they
    started (analysis workers included) and removes their directory."""
    descendants, is_alive = process_tree
    cluster = DemoCluster(spec_for(tmp_path))
    try:
        cluster.start_all()
        leader = asyncio.run(cluster.wait_leader(timeout_s=30))
        assert leader in cluster.nodes
        started = {pid for root in cluster.pids() for pid in {root, *descendants(root)}}
        assert len(started) >= 3
    finally:
        cluster.stop_all()
    assert not [pid for pid in started if is_alive(pid)]
    assert not cluster.root.exists()


def test_a_dead_node_is_reported_not_waited_for(tmp_path: Path) -> None:
    """A daemon that exits (here: its config has an unknown section) makes the
    wait fail at once with the node's log, instead of timing out."""
    cluster = DemoCluster(spec_for(tmp_path))
    try:
        node = cluster.nodes[2]
        node.config_path.write_text(node.config_path.read_text() + "\n[nonsense]\n")
        cluster.start_all()
        with pytest.raises(DemoClusterError, match="node 2 exited"):
            asyncio.run(cluster.wait_leader(timeout_s=30))
    finally:
        cluster.stop_all()


def test_shipped_lines_cover_each_node_minimum() -> None:
    """Every node must reach its own minimum; a surplus elsewhere does not make up for it."""
    shipped = ShippedLines({1: 120, 2: 80, 3: 100})
    assert shipped.covers({1: 100, 2: 80, 3: 100})
    assert not shipped.covers({1: 100, 2: 81, 3: 100})
    assert not ShippedLines({1: 500}).covers({1: 1, 2: 1})
    assert shipped.describe() == "node 1 120 lines, node 2 80 lines, node 3 100 lines"


def test_each_node_ships_the_summary_of_its_own_logs(tmp_path: Path,
                                                     demo_redis: ServerProcess) -> None:
    """Real daemons summarise their own history log and ship it through Raft: `summaries` on any node shows each node's exact line count; with
    no flush there is no plan, and waiting for one times out with a clear error."""
    spec = spec_for(tmp_path, redis_address=demo_redis.address)
    history = write_split_history(spec.history_paths, TrafficSpec(days=0.5,
                                                                  sessions_per_day=300), END_S)
    wanted = {1: history[0], 2: history[1], 3: history[2]}
    cluster = DemoCluster(spec)
    try:
        cluster.start_all()
        asyncio.run(cluster.wait_leader(timeout_s=30))
        shipped = asyncio.run(cluster.wait_summaries(wanted, timeout_s=60))
        assert dict(shipped.per_node) == wanted
        assert cluster.plans() == []  # no flush, no schedule: nothing planned yet
        with pytest.raises(DemoClusterError, match=r"timed out after 0\.5 s waiting for a new "
                                                   r"plan; daemon logs: .*daemon\.log"):
            asyncio.run(cluster.wait_new_plan(set(), timeout_s=0.5))
    finally:
        cluster.stop_all()
