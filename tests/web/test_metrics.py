"""The metrics pieces in one process: label bounds, the log tally, the collector, the web app."""

from __future__ import annotations

import random
import string
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from warmd import metrics
from warmd.analysis.formats import COMBINED, LineParser, parse_columns
from warmd.analysis.summary import Summary
from warmd.cache.base import BackendStats, NodeStats
from warmd.config import MetricsConfig
from warmd.config_table import Address
from warmd.raft.types import Message, MessageType
from warmd.runtime.ingest.cache_requests import (
    HIT,
    MISS,
    UNKNOWN,
    CacheRequestTally,
    cache_result,
)
from warmd.runtime.ingest.pipeline import SourceStatus
from warmd.runtime.ingest.worker import astuple_shallow
from warmd.runtime.node.status import DriverStatus, PeerView
from warmd.statemachine.commands import SubmitTask, TaskSpec
from warmd.statemachine.machine import StateMachine
from warmd.web import metrics_route
from warmd.web.app import create_app
from warmd.web.collector import NodeCollector, NodeReaders, PatternSeries
from warmd.web.server import WebServer

LINE = '1.2.3.4 - - [06/Dec/2026:10:00:00 +0000] "GET {path} HTTP/1.1" 200 10 "-" "curl" {tail}'


def parsed(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


# ---------------------------------------------------------------------------- label bounds

def test_bounded_labels_keep_the_first_values_and_fold_the_rest_into_other() -> None:
    """A value keeps its series once it has one; past the limit new values become `other`."""
    labels = metrics.BoundedLabels(2)
    assert [labels(v) for v in ("a", "b", "c", "a", "d", "b")] == ["a", "b", "other", "a",
                                                                     "other", "b"]


def test_pattern_series_are_sticky_so_other_never_goes_down() -> None:
    """The busiest templates are chosen first; once the cap is full, `other` only grows."""
    series = PatternSeries(limit=2)
    first = series.split([("/a", HIT, 5), ("/b", HIT, 9), ("/c", HIT, 7)])
    assert first == {("/b", HIT): 9, ("/c", HIT): 7, ("other", HIT): 5}
    later = series.split([("/a", HIT, 50), ("/b", HIT, 10), ("/c", HIT, 8), ("/d", MISS, 1)])
    assert later == {("/b", HIT): 10, ("/c", HIT): 8, ("other", HIT): 50, ("other", MISS): 1}


# ---------------------------------------------------------------------------- the log tally

@pytest.mark.parametrize(("line", "result"), [
    (LINE.format(path="/a", tail="HIT"), HIT),
    (LINE.format(path="/a", tail="0.004 MISS"), MISS),
    (LINE.format(path="/a", tail="ucs=EXPIRED rt=0.1"), MISS),
    (LINE.format(path="/a", tail="STALE"), HIT),
    (LINE.format(path="/HIT", tail="-"), UNKNOWN),  # a path is not a cache status
    (LINE.format(path="/a", tail="").rstrip(), UNKNOWN),
    ('{"path": "/a", "cache_status": "hit"}', HIT),
    ('{"path": "/a", "upstream_cache_status": "BYPASS"}', MISS),
    ('{"path": "/a", "status": 200}', UNKNOWN),
    (LINE.format(path="/a", tail="rt=0.002 urt=-"), HIT),  # no upstream asked: a cache hit
    (LINE.format(path="/a", tail='rt=0.2 urt="0.180"'), MISS),
    (LINE.format(path="/a", tail="upstream_response_time=0.031"), MISS),
    (LINE.format(path="/urt=-", tail="-"), UNKNOWN),  # a path is not an upstream time
    ('{"path": "/a", "upstream_response_time": "-"}', HIT),
    ('{"path": "/a", "upstream_response_time": 0.05}', MISS),
])
def test_cache_result_reads_the_cache_status_field(line: str, result: str) -> None:
    """nginx's trailing $upstream_cache_status or a JSON cache_status field: hit or miss."""
    assert cache_result(line) == result


def tally_lines(lines: list[str], tally: CacheRequestTally, summary: Summary | None) -> None:
    """What the analysis worker does with each batch of lines; without a summary every raw
    path counts as its own template (the worst case for the bound)."""
    parser = LineParser(COMBINED)
    for start in range(0, len(lines), 2000):
        batch = lines[start:start + 2000]
        columns = parse_columns(parser, batch)
        if summary is None:
            tally.add(batch, columns.targets, str)
            continue
        summary.add_columns(*astuple_shallow(columns))
        tally.add(batch, columns.targets, lambda t: summary.split(t)[0].template.pattern)


def test_the_tally_counts_templates_and_results_and_survives_malformed_lines() -> None:
    """Requests are counted per mined template and result; in a batch with a malformed line
    the results cannot be paired with the requests, so they count as unknown, none lost."""
    tally, summary = CacheRequestTally(), Summary()
    good = [LINE.format(path=f"/item/{n}", tail="HIT" if n % 2 else "MISS") + "\n"
            for n in range(10)]
    tally_lines(good, tally, summary)
    assert sorted(tally.rows()) == [("/item/{int}", HIT, 5), ("/item/{int}", MISS, 5)]
    tally_lines([*good[:3], "garbage\n"], tally, summary)
    assert sorted(tally.rows()) == [("/item/{int}", HIT, 5), ("/item/{int}", MISS, 5),
                                    ("/item/{int}", UNKNOWN, 3)]


def test_100k_distinct_paths_make_a_bounded_number_of_series() -> None:
    """However many distinct paths the logs hold, /metrics has at most PATTERNS_MAX + 1
    template series per source and result, even if every path were its own template."""
    rng = random.Random(17)
    words = ["".join(rng.choices(string.ascii_lowercase, k=10)) for _ in range(100_000)]
    lines = [LINE.format(path=f"/{word}/{rng.choice(words)}", tail=rng.choice(("HIT", "MISS")))
             + "\n" for word in words]
    tally = CacheRequestTally()
    tally_lines(lines, tally, None)
    assert len({pattern for pattern, _, _ in tally.rows()}) == tally.patterns_max + 1
    assert sum(count for _, _, count in tally.rows()) == 100_000
    source = SourceStatus("web", (), 100_000, 0, (), None, None, cache_requests=tally.rows())
    registry = CollectorRegistry()
    registry.register(NodeCollector(readers(sources=[source]), patterns_max=100))
    samples = parsed(registry)
    requests = {labels: v for (name, labels), v in samples.items()
                if name == "warmd_cache_requests_total"}
    assert len(requests) <= 2 * 101
    assert sum(requests.values()) == 100_000


# ---------------------------------------------------------------------------- the collector

def driver_status(role: str = "leader", leader_id: int = 1) -> DriverStatus:
    peers = (PeerView(1, "a:1", True, 40, 41, 0, "replicate", None),
             PeerView(2, "a:2", True, 35, 36, 1, "replicate", 0.25))
    return DriverStatus(node_id=1, role=role, term=7, leader_id=leader_id, commit_index=40,
                        applied_index=39, last_index=40, snapshot_index=0, voters=(1, 2, 3),
                        learners=(), peers=peers, removed=False)


def readers(sources: list[SourceStatus] | None = None, state: StateMachine | None = None,
            status: DriverStatus | None = None) -> NodeReaders:
    machine = state or StateMachine()
    return NodeReaders(status=lambda: status or driver_status(), state=lambda: machine.state,
                       proposals_pending=lambda: 3, sources=lambda: sources or [],
                       origin_limits=lambda: {"replay:api": 12}, wall_s=lambda: 1000.0)


def test_the_collector_reports_raft_tasks_ingest_and_limits_at_scrape_time() -> None:
    """Gauges and counters come straight from the node's status and applied state."""
    machine = StateMachine()
    for number in range(3):
        machine.apply(number + 1, SubmitTask(task_id=f"t{number}",
                                             spec=TaskSpec(keys=("k",), target="redis"),
                                             now_ms=1))
    source = SourceStatus("web", (), 90, 2, (), 990_000, None, lines_read=95,
                          pending_since_ms=994_000)
    registry = CollectorRegistry()
    registry.register(NodeCollector(readers([source], machine)))
    samples = parsed(registry)
    assert samples[("warmd_is_leader", ())] == 1 and samples[("warmd_has_leader", ())] == 1
    assert samples[("warmd_term", ())] == 7 and samples[("warmd_commit_index", ())] == 40
    assert samples[("warmd_proposals_applied_total", ())] == 39
    assert samples[("warmd_proposals_pending", ())] == 3
    assert samples[("warmd_peer_lag_entries", (("peer", "2"),))] == 5
    assert samples[("warmd_peer_last_contact_seconds", (("peer", "2"),))] == 0.25
    assert samples[("warmd_tasks", (("state", "pending"),))] == 3
    assert samples[("warmd_log_lines_total", (("result", "malformed"), ("source", "web")))] == 2
    assert samples[("warmd_log_lag_seconds", (("source", "web"),))] == 6
    assert samples[("warmd_origin_concurrency_limit", (("target", "replay:api"),))] == 12


def test_watched_caches_report_their_own_hits_keys_and_evictions() -> None:
    """Where the logs carry no cache status, the watched cache's own counters show the ratio."""
    stats = BackendStats("redis", (NodeStats("a", hits=80, misses=20, keys=7, memory_bytes=1,
                                             maxmemory_bytes=0, evictions=3),
                                   NodeStats("b", hits=20, misses=0, keys=5, memory_bytes=1,
                                             maxmemory_bytes=0, evictions=0)))
    registry = CollectorRegistry()
    registry.register(NodeCollector(NodeReaders(
        status=driver_status, state=lambda: StateMachine().state, proposals_pending=lambda: 0,
        cache_stats=lambda: {"redis": stats})))
    samples = parsed(registry)
    assert samples[("warmd_cache_server_requests_total",
                    (("result", "hit"), ("target", "redis")))] == 100
    assert samples[("warmd_cache_server_requests_total",
                    (("result", "miss"), ("target", "redis")))] == 20
    assert samples[("warmd_cache_keys", (("target", "redis"),))] == 12
    assert samples[("warmd_cache_evictions_total", (("target", "redis"),))] == 3


def test_a_follower_without_leader_says_so() -> None:
    registry = CollectorRegistry()
    registry.register(NodeCollector(readers(status=driver_status("follower", leader_id=0))))
    samples = parsed(registry)
    assert samples[("warmd_is_leader", ())] == 0 and samples[("warmd_has_leader", ())] == 0


def test_a_failed_proposal_is_counted_by_its_reason() -> None:
    from warmd.raft.errors import ProposalDropped

    before = metrics.PROPOSALS_FAILED.labels(reason="dropped")._value.get()
    metrics.proposal_failed(ProposalDropped(ProposalDropped.NO_LEADER, "no leader"))
    metrics.proposal_failed(KeyError("x"))
    assert metrics.PROPOSALS_FAILED.labels(reason="dropped")._value.get() == before + 1
    assert metrics.PROPOSALS_FAILED.labels(reason="other")._value.get() >= 1


def test_heartbeat_round_trips_are_timed_per_peer_and_sampled() -> None:
    """A heartbeat's answer gives one round trip; sends inside the sample interval and
    answers without a timed heartbeat are not counted; a very late answer is not either."""
    timer = metrics.HeartbeatTimer()
    histogram = metrics.PEER_ROUND_TRIP.labels(peer="9")
    before = histogram._sum.get()
    beat = Message(MessageType.HEARTBEAT, from_id=1, to=9)
    answer = Message(MessageType.HEARTBEAT_RESPONSE, from_id=9, to=1)
    timer.sent([Message(MessageType.APPEND, from_id=1, to=9), beat], now_s=10.0)
    timer.received(answer, now_s=10.25)
    timer.sent([beat], now_s=10.5)  # inside the sample interval: not timed
    timer.received(answer, now_s=10.75)
    assert histogram._sum.get() - before == pytest.approx(0.25)
    timer.sent([beat], now_s=12.0)
    timer.sent([beat], now_s=15.0)  # the answer to 12.0 never came: forgotten
    timer.received(answer, now_s=15.5)
    assert histogram._sum.get() - before == pytest.approx(0.75)


# ---------------------------------------------------------------------------- the web app

async def serve(token: str | None, registry: CollectorRegistry) -> WebServer:
    app = create_app(token)
    metrics_route.setup(app, registry)
    server = WebServer(app, Address("127.0.0.1", 0), "web")
    await server.start()
    return server


async def test_metrics_are_served_with_request_metrics_by_route() -> None:
    """GET /metrics answers in the text format; requests are counted by route template, and
    an unknown path is counted under one `unmatched` route whatever it is."""
    server = await serve(None, metrics.REGISTRY)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}"
            for path in ("/nope/1", "/nope/2"):
                async with session.get(url + path) as response:
                    assert response.status == 404
            async with session.get(url + "/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                text = await response.text()
    finally:
        await server.close()
    assert 'warmd_build_info{version="0.1.0"} 1.0' in text
    assert 'warmd_http_requests_total{code="404",method="GET",route="unmatched"}' in text
    assert "/nope/" not in text


async def test_a_configured_token_is_required_and_failures_are_counted() -> None:
    """With a token, a request without it or with a wrong one gets 401 and is counted."""
    server = await serve("s3cret", CollectorRegistry())
    failures = metrics.AUTH_FAILURES.labels(reason="wrong_token")
    before = failures._value.get()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{server.port}/metrics"
            async with session.get(url) as response:
                assert response.status == 401
            async with session.get(url, headers={"Authorization": "Bearer nope"}) as response:
                assert response.status == 401
            async with session.get(url, headers={"Authorization": "Bearer s3cret"}) as response:
                assert response.status == 200
    finally:
        await server.close()
    assert failures._value.get() == before + 1


async def test_a_taken_port_is_a_clear_config_error() -> None:
    """A listener that cannot bind names its config key; nothing is left listening."""
    from warmd.config import WebConfig
    from warmd.errors import ConfigError
    from warmd.web.listeners import start_listeners

    blocker = await serve(None, CollectorRegistry())
    try:
        web = WebConfig(enabled=False, listen=Address("127.0.0.1", 0), token_file=None,
                        token=None)
        with pytest.raises(ConfigError, match=r"metrics\.listen"):
            await start_listeners(web, MetricsConfig(Address("127.0.0.1", blocker.port)),
                                  CollectorRegistry())
    finally:
        await blocker.close()


# ---------------------------------------------------------------------------- [metrics] config

def test_the_metrics_section_is_off_by_default_and_reads_its_keys(tmp_path: Path) -> None:
    """No section: no extra listener, no annotations. With one: address, URL and the token
    from a private file; a bad URL is named by its key."""
    from warmd.config import ConfigKeyError, load
    from warmd.testing.configs import ONE_NODE, write_config

    assert load(write_config(tmp_path, ONE_NODE)).metrics == MetricsConfig()
    token = tmp_path / "grafana.token"
    token.write_text("abc\n")
    token.chmod(0o600)
    config = load(write_config(tmp_path, ONE_NODE + f"""
[metrics]
listen = "127.0.0.1:9464"
annotations_url = "http://grafana:3000/api/annotations"
annotations_token_file = "{token}"
"""))
    assert config.metrics == MetricsConfig(Address("127.0.0.1", 9464),
                                           "http://grafana:3000/api/annotations", "abc")
    with pytest.raises(ConfigKeyError, match=r"metrics\.annotations_url"):
        load(write_config(tmp_path, ONE_NODE + '[metrics]\nannotations_url = "grafana"\n'))


def test_plan_waste_ratio_is_the_newest_measured_plans_never_read_share() -> None:
    """Only tasks this node ran and measured count; the newest plan with a measure wins."""
    from warmd.cache.effect import TaskEffect
    from warmd.statemachine.commands import PlannedTask, SubmitPlan

    spec = TaskSpec(keys=("/a", "/b"), target="shop", loader="replay")
    machine = StateMachine()
    for index, (plan_id, task_ids) in enumerate(
            [("old", ("o1",)), ("new", ("n1", "n2")), ("unmeasured", ("u1",))], start=1):
        machine.apply(index, SubmitPlan(
            plan_id=plan_id, trigger="manual", rules_version="", requests=2 * len(task_ids),
            now_ms=index, tasks=tuple(PlannedTask(task_id=t, spec=spec) for t in task_ids)))
    effects = {
        "o1": TaskEffect("o1", 60.0, 0, 0, sampled_keys=10, keys_read_in_window=10),
        "n1": TaskEffect("n1", 60.0, 5, 1, sampled_keys=10, keys_read_in_window=6, keys_gone=1),
        "n2": TaskEffect("n2", 60.0, 2, 2, sampled_keys=10, keys_read_in_window=2),
    }
    registry = CollectorRegistry()
    base = readers(state=machine)
    registry.register(NodeCollector(NodeReaders(
        status=base.status, state=base.state, proposals_pending=base.proposals_pending,
        task_effects=lambda: effects)))
    assert parsed(registry)[("warmd_plan_waste_ratio", ())] == pytest.approx(11 / 20)
    empty = CollectorRegistry()
    empty.register(NodeCollector(readers(state=machine)))
    assert ("warmd_plan_waste_ratio", ()) not in parsed(empty)
