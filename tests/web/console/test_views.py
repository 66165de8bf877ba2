"""The console's pure parts: query parsing, the task table, rows of nodes, peers and plans,
the effect series and CSV, next cron fire times and the SVG charts. The state is built by
applying real commands to a StateMachine (warmd.testing.console_state)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from warmd.cache.effect import TaskEffect
from warmd.rules.compile import KnownNames
from warmd.rules.cron import CronSpec
from warmd.runtime.leader.replication import (
    REFRESH_S,
    REPORT_INTERVAL_S,
    ReplicationReporter,
    report_of,
)
from warmd.runtime.node.status import DriverStatus, PeerView
from warmd.statemachine.commands import Rerun
from warmd.statemachine.replication import ReplicationRecord
from warmd.statemachine.ruleset import SetRules
from warmd.testing.console_state import StateBuilder
from warmd.web.console import effect, svg
from warmd.web.console.query import ListQuery, QueryError, duration_ms, parse
from warmd.web.console.rules_view import next_cron_ms, rules_data
from warmd.web.console.tasks import TASKS, attempt_spans, task_detail, task_page, transitions
from warmd.web.console.views import failure_tolerance, node_rows, peer_rows, plan_rows, report_age

MINUTE_MS = 60_000


@pytest.fixture
def built() -> StateBuilder:
    """Three nodes; plan p1 (watched): 2 succeeded on node 1, 1 failed on node 2, 1
    running on node 3, 1 pending; its effect recorded."""
    builder = StateBuilder()
    builder.nodes(3)
    ids = builder.plan("p1", 5, watch="redis")
    builder.run(ids[:2], 1)
    builder.run(ids[2:3], 2, "fail")
    builder.run(ids[3:4], 3, "start")
    builder.effect("p1", "redis", (10, 90), (80, 20))
    return builder


def _status(role: str = "leader", node_id: int = 1, leader_id: int = 1) -> DriverStatus:
    peers = tuple(PeerView(node_id=n, address=f"127.0.0.1:{7000 + n}", voter=n != 4,
                           match_index=90 + n if role == "leader" else None, next_index=None,
                           inflight=None, replication=None,
                           last_contact_s=0.5 if role == "leader" else None) for n in (1, 2, 3, 4))
    return DriverStatus(node_id=node_id, role=role, term=7, leader_id=leader_id,
                        commit_index=100, applied_index=98, last_index=100, snapshot_index=0,
                        voters=(1, 2, 3), learners=(4,), peers=peers, removed=False)


def test_a_query_keeps_filters_sort_and_page_in_its_links() -> None:
    query = parse({"state": "RUNNING", "sort": "-keys", "page": "2"}, TASKS)
    assert (query.sort, query.descending, query.page) == ("keys", True, 2)
    assert query.link(page=3) == "?state=RUNNING&sort=-keys&page=3"
    assert query.sort_link("keys") == "?state=RUNNING&sort=keys"  # toggles, back to page 1
    assert query.sort_link("state") == "?state=RUNNING&sort=state"


def test_durations_parse_and_bad_ones_name_the_parameter() -> None:
    assert duration_ms("since", "15m") == 15 * MINUTE_MS
    with pytest.raises(QueryError, match=r"^since"):
        duration_ms("since", "15 minutes")


def test_the_task_page_filters_sorts_and_counts_n_of_m(built: StateBuilder) -> None:
    now_ms = built.now_ms
    page = task_page(built.state, parse({"state": "succeeded,failed", "sort": "task"}, TASKS),
                     now_ms)
    assert [row.state for row in page.rows] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]
    assert (page.matched, page.total) == (3, 5)
    by_node = task_page(built.state, parse({"node": "3"}, TASKS), now_ms)
    assert [row.task_id for row in by_node.rows] == ["p1-00003"]
    assert by_node.rows[0].state == "RUNNING"
    recent = task_page(built.state, parse({"since": "30s"}, TASKS), now_ms)
    assert recent.matched == 0  # the last change was a minute before `now` (the effect window)
    paged = task_page(built.state, ListQuery(sort="task", page=9, per_page=2), now_ms)
    assert (paged.page, paged.pages, len(paged.rows)) == (3, 3, 1)  # past the end: the last page


def test_a_task_shows_each_step_with_its_node_attempt_and_fence(built: StateBuilder) -> None:
    task = built.state.tasks["p1-00002"]
    steps = transitions(task)
    assert [step.state for step in steps] == ["PENDING", "ASSIGNED", "RUNNING", "FAILED"]
    assert {step.fence for step in steps[1:]} == {task.attempts[0].fence}
    assert steps[-1].detail == "origin refused" and steps[-1].node == 2
    spans = attempt_spans(task)
    assert [span.state for span in spans] == ["ASSIGNED", "FAILED"]
    detail = task_detail(built.state.tasks["p1-00000"], None)
    assert detail.result == {"keys_ok": 10} and detail.row.percent == 100


def test_each_step_shows_its_raft_index_and_term_and_rerun_notes_in_log_order(
        built: StateBuilder) -> None:
    """Index and term of every step (a new term for the re-run and its assignment), the
    re-run as a step of its own between the failure and the new assignment."""
    built.term = 7
    task_id = "p1-00002"
    built.apply(Rerun(task_id=task_id, node_id=2, away=True, now_ms=built.now_ms, actor="olga"))
    rerun_index = built.index
    built.run([task_id], node_id=1)
    steps = transitions(built.state.tasks[task_id], built.state)
    assert [step.state for step in steps] == [
        "PENDING", "ASSIGNED", "RUNNING", "FAILED", "RERUN", "ASSIGNED", "RUNNING", "SUCCEEDED"]
    assert [step.index for step in steps] == sorted(step.index for step in steps)
    assert steps[4].index == rerun_index and steps[4].detail == "attempt 2 away from node 2 (by olga)"
    assert [step.term for step in steps] == [1, 1, 1, 1, 7, 7, 7, 7]
    assert steps[5].fence == steps[5].index and steps[5].node == 1 and steps[5].attempt == 2


def test_node_rows_count_slots_running_work_and_recent_errors(built: StateBuilder) -> None:
    rows = {row.node_id: row for row in node_rows(built.state, built.now_ms)}
    assert (rows[1].succeeded_recent, rows[1].running, rows[1].failed_recent) == (2, 0, 0)
    assert (rows[2].failed_recent, rows[3].running, rows[3].load) == (1, 1, 1)
    assert sum(rows[1].throughput) == 2 and len(rows[1].throughput) == 30
    assert rows[1].status == "up"


def test_a_peers_fsync_p99_comes_from_its_heartbeat_and_this_nodes_is_live() -> None:
    rows = {row.node_id: row for row in peer_rows(
        _status("follower", node_id=2, leader_id=3), "0.1.0", 1.5, None, {2: 9.0, 3: 4.25})}
    assert rows[2].fsync_p99_ms == 1.5, "this node: its own histogram, not its heartbeat"
    assert rows[3].fsync_p99_ms == 4.25 and rows[1].fsync_p99_ms is None


def test_peer_rows_mark_the_leader_and_say_how_far_each_trails() -> None:
    rows = peer_rows(_status(), "0.1.0", 2.5)
    assert [row.node_id for row in rows] == [1, 2, 3, 4] and rows[0].is_leader
    assert [row.trails_by for row in rows] == [0, 8, 7, 6]
    assert rows[3].role == "learner" and rows[0].version == "0.1.0"
    assert [row.fsync_p99_ms for row in rows] == [2.5, None, None, None]
    on_follower = peer_rows(_status("follower", node_id=2, leader_id=3), "0.1.0")
    assert on_follower[0].node_id == 3 and on_follower[0].role == "leader"
    # without a report from the leader: only the follower's own trail (applied vs commit)
    assert [row.trails_by for row in on_follower] == [None, None, 2, None]  # 3, 1, 2, 4
    assert [failure_tolerance(n) for n in (1, 2, 3, 4, 5)] == [0, 0, 1, 1, 2]


def test_a_follower_shows_every_peer_from_the_leaders_report_with_its_age() -> None:
    """Off the leader, match, trails-by and contact come from the leader's report of the
    current term (marked "report"), this node's own trail is live against the commit it
    knows; a report of an earlier term is not shown."""
    leader = _status()
    record = ReplicationRecord(report_of(leader, 1_000_000, "0.1.0"), index=101)
    follower = replace(_status(role="follower", node_id=2), applied_index=103,
                       commit_index=104)
    rows = {row.node_id: row for row in peer_rows(follower, "0.1.0", None, record)}
    assert {n: rows[n].match_index for n in rows} == {1: 100, 2: 92, 3: 93, 4: 94}
    assert {n: rows[n].trails_by for n in (1, 3, 4)} == {1: 0, 3: 7, 4: 6}
    assert rows[2].trails_by == 1 and rows[2].source == "live"  # 104 known - 103 applied
    assert rows[3].source == "report" and rows[3].last_contact_s == 0.5
    assert rows[1].version == "0.1.0" and rows[1].is_leader
    age = report_age(follower, record, 1_004_500)
    assert (age.index, age.age_s, age.entries_since, age.current) == (101, 4.5, 2, True)
    older = replace(follower, term=8)
    assert all(row.trails_by is None for row in peer_rows(older, "", None, record)
               if not row.is_self)
    assert not report_age(older, record, 1_004_500).current


def test_the_reporter_reports_often_while_a_peer_is_behind_and_seldom_when_idle() -> None:
    """A first report and a new term are due at once; with a peer far behind every
    REPORT_INTERVAL_S, with everyone within BEHIND_ENTRIES only every REFRESH_S."""
    reporter = ReplicationReporter(None, "")  # type: ignore[arg-type]  # due() reads no driver
    behind = report_of(replace(_status(), last_index=200), 0, "")  # peers at 92..94
    assert reporter.due(behind, 0.0)
    reporter._last, reporter._last_s = behind, 0.0
    assert not reporter.due(behind, REPORT_INTERVAL_S - 1)
    assert reporter.due(behind, REPORT_INTERVAL_S)
    idle = report_of(_status(), 0, "")  # every peer within 16 entries
    reporter._last = idle
    assert not reporter.due(idle, REPORT_INTERVAL_S) and reporter.due(idle, REFRESH_S)
    assert reporter.due(replace(idle, term=8), 1.0)


def test_plan_rows_and_the_effect_series_come_from_the_recorded_effect(
        built: StateBuilder) -> None:
    (row,) = plan_rows(built.state, {})
    assert (row.state, row.done, row.tasks, row.keys) == ("RUNNING", 2, 5, 50)
    assert (row.before_hit_rate, row.after_hit_rate) == (0.1, 0.8)
    series = effect.by_cache([row])["redis"]
    assert [[ratio for _, ratio in segment] for segment in series.segments] == [[0.1, 0.8]]
    assert series.bands[0].start_ms == row.created_ms
    empty = StateBuilder()
    empty.plan("p0", 0)
    assert plan_rows(empty.state, {})[0].state == "EMPTY"
    lines = effect.csv_text([row]).splitlines()
    assert lines[0].startswith("plan_id,") and lines[1].startswith("p1,manual,redis,")


def test_per_pattern_series_group_measured_tasks_by_key_template_then_plan(
        built: StateBuilder) -> None:
    """Tasks with sampled keys become one point per (pattern, plan): the read share of
    their sampled keys, placed at the plan's last task end, its run as a band; a rule
    without a key template is named by the rule; unsampled tasks are left out."""
    ids = built.state.plans["p1"].task_ids
    later = built.plan("p2", 1)  # rule-0 again
    built.run(later, 1)
    effects = {ids[0]: TaskEffect(ids[0], 60.0, 5, 5, sampled_keys=10, keys_read_in_window=4),
               ids[1]: TaskEffect(ids[1], 60.0, 5, 5, sampled_keys=10, keys_read_in_window=10),
               later[0]: TaskEffect(later[0], 60.0, 9, 1, sampled_keys=20, keys_read_in_window=18),
               ids[2]: TaskEffect(ids[2], 60.0, 1, 1)}  # nothing sampled
    series = effect.by_pattern(built.state, effects, {"rule-0": "item:{id}"})
    assert list(series) == ["item:{id}", "rule rule-1"]
    items = series["item:{id}"]
    assert [(point.plan_id, point.read_ratio) for point in items.points] == [("p1", 0.4), ("p2", 0.9)]
    assert items.segments == [[(items.points[0].ended_ms, 0.4)], [(items.points[1].ended_ms, 0.9)]]
    assert items.bands[0].start_ms < items.bands[0].end_ms
    assert (items.keys_sampled, items.keys_read) == (30, 22)
    lines = effect.pattern_csv_text(series).splitlines()
    assert lines[0] == ",".join(effect.PATTERN_CSV_COLUMNS)
    assert lines[1].startswith("item:{id},p1,") and lines[1].endswith(",1,10,4,0.4")


def test_the_next_cron_fire_is_the_first_matching_minute_after_now() -> None:
    every_day_3am = CronSpec("0 3 * * *", frozenset({0}), frozenset({3}),
                             frozenset(range(1, 32)), frozenset(range(1, 13)), frozenset(range(7)))
    midnight = 1_800_057_600_000  # a UTC midnight (1800057600 s is a multiple of 86400)
    assert next_cron_ms(every_day_3am, midnight) == midnight + 3 * 3_600_000
    assert next_cron_ms(every_day_3am, midnight + 3 * 3_600_000) == midnight + 27 * 3_600_000


def test_rules_rows_expand_named_schedules(built: StateBuilder) -> None:
    text = ('backend c redis address="127.0.0.1:6379"\nschedule nightly {\n    cron "0 3 * * *"\n}\n'
            'rule r {\n    match GET /a/{id:int}\n    backend c\n    schedule nightly\n}\n')
    built.apply(SetRules.of([("a.rules", text)], built.now_ms))
    data = rules_data(built.state, KnownNames(), built.now_ms)
    assert data is not None and not data.problems
    (rule,) = data.rules
    assert rule.triggers == ("cron 0 3 * * *",) and rule.next_fire_ms is not None


def test_svg_charts_escape_labels_and_carry_their_state_names() -> None:
    spark = svg.sparkline([0, 2, 1], label="<node 1>")
    assert spark.startswith("<svg") and "&lt;node 1&gt;" in spark and "<node 1>" not in spark
    timeline = svg.timeline([svg.Span("a", 0, 1000, "RUNNING", "run")], now_ms=2000)
    assert "state-running" in timeline and ">RUNNING</text>" in timeline
    chart = svg.hit_ratio_chart([[(0, 0.1), (60_000, 0.8)], [(120_000, 0.3), (180_000, 0.9)]],
                                [svg.Band(0, 60_000, "plan p1")])
    assert chart.count('class="band"') == 1 and "80.0%" in chart
    assert chart.count("<polyline") == 2  # one line per plan, none between plans
    assert svg.sparkline([]) == "" and svg.hit_ratio_chart([], []) == ""
