"""The cluster, its executors and its plans shaped into rows for pages and the API (pure).

Every function reads the node's replicated state and Raft status, given as arguments with
the wall time, and returns typed rows; nothing here does I/O, so the same rows feed the
HTML pages and their JSON twins and are unit-tested without a server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from warmd.cache.effect import TaskEffect
from warmd.runtime.node.status import DriverStatus, PeerView
from warmd.statemachine.documents import short_version, tasks_by_state
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.plans import PlanRecord
from warmd.statemachine.replication import (
    UNKNOWN,
    PeerProgress,
    ReplicationRecord,
    ReportReplication,
)
from warmd.statemachine.state import MachineState

THROUGHPUT_WINDOW_MS = 10 * 60_000  # "tasks done in the last 10 minutes"
SPARK_BUCKETS = 30  # one per minute over the last half hour
SPARK_BUCKET_MS = 60_000


@dataclass(frozen=True, slots=True)
class Freshness:
    """How fresh this node's answers are: what it applied against the commit it knows of
    (on a follower, the leader's commit as of its last message)."""

    node_id: int
    role: str
    applied_index: int
    commit_index: int

    @property
    def behind(self) -> int:
        return max(0, self.commit_index - self.applied_index)


def freshness(status: DriverStatus) -> Freshness:
    return Freshness(status.node_id, status.role, status.applied_index, status.commit_index)


@dataclass(frozen=True, slots=True)
class PeerRow:
    """One Raft member on /cluster. Replication figures (match, trails by, last contact)
    are the leader's: live on the leader (`source` "live"), from the leader's newest
    published report elsewhere ("report", aged on the page), None when neither exists."""

    node_id: int
    address: str
    role: str  # leader, voter or learner (this node: its own Raft role)
    voter: bool
    is_leader: bool
    is_self: bool
    term: int | None
    commit_index: int | None
    applied_index: int | None
    match_index: int | None
    trails_by: int | None  # entries behind the leader's last index
    last_contact_s: float | None  # since the leader last heard from it
    version: str | None
    fsync_p99_ms: float | None  # live for this node; a peer's from its latest heartbeat
    source: str = ""  # "live", "report" or "" (unknown)


@dataclass(frozen=True, slots=True)
class ReportAge:
    """Where a follower's replication figures come from: the leader's report applied at
    `index`, made `age_s` ago (this node's clock against the leader's stamp)."""

    leader_id: int
    term: int
    index: int
    age_s: float
    entries_since: int  # entries this node applied after the report
    current: bool  # made by the leader of this node's current term


def report_age(status: DriverStatus, record: ReplicationRecord | None,
               now_ms: int) -> ReportAge | None:
    if record is None:
        return None
    report = record.report
    return ReportAge(report.node_id, report.term, record.index,
                     round(max(0, now_ms - report.now_ms) / 1000, 1),
                     max(0, status.applied_index - record.index), report.term == status.term)


def peer_rows(status: DriverStatus, version: str, fsync_p99_ms: float | None = None,
              replication: ReplicationRecord | None = None,
              heartbeat_fsync_ms: Mapping[int, float] | None = None) -> list[PeerRow]:
    """Every member, the leader first, then by id; off the leader, replication figures
    come from the leader's report when it is of the current term. A peer's fsync p99 is
    the one its latest heartbeat carried (`heartbeat_fsync_ms`); this node's is live."""
    heartbeat_fsync_ms = heartbeat_fsync_ms or {}
    on_leader = status.role == "leader"
    report = replication.report if replication is not None else None
    if on_leader or (report is not None and report.term != status.term):
        report = None  # live figures on the leader; an older leader's report says nothing
    reported = {peer.node_id: peer for peer in report.peers} if report is not None else {}
    leader_commit = max(status.commit_index, report.commit_index if report else 0)
    rows = []
    for peer in status.peers:
        is_self, is_leader = peer.node_id == status.node_id, peer.node_id == status.leader_id
        role = "leader" if is_leader else ("voter" if peer.voter else "learner")
        figures = _live(status, peer) if on_leader else _reported(reported.get(peer.node_id),
                                                                   report)
        if is_self and not on_leader:  # its own trail is fresher than any report
            figures = (figures[0], max(0, leader_commit - status.applied_index), figures[2],
                       "live")
        leader_version = report.version if report is not None and is_leader else ""
        rows.append(PeerRow(
            node_id=peer.node_id, address=peer.address, role=role, voter=peer.voter,
            is_leader=is_leader, is_self=is_self, term=status.term if is_self else None,
            commit_index=status.commit_index if is_self else None,
            applied_index=status.applied_index if is_self else None,
            match_index=figures[0], trails_by=figures[1], last_contact_s=figures[2],
            version=version if is_self else (leader_version or None),
            fsync_p99_ms=fsync_p99_ms if is_self else heartbeat_fsync_ms.get(peer.node_id),
            source=figures[3]))
    return sorted(rows, key=lambda row: (not row.is_leader, row.node_id))


Figures = tuple[int | None, int | None, float | None, str]  # match, trails by, contact, source


def _live(status: DriverStatus, peer: PeerView) -> Figures:
    is_self = peer.node_id == status.node_id
    match = status.last_index if is_self else peer.match_index
    trails = status.last_index - match if match is not None else None
    return match, trails, 0.0 if is_self else peer.last_contact_s, "live"


def _reported(peer: PeerProgress | None, report: ReportReplication | None) -> Figures:
    if peer is None or report is None:
        return None, None, None, ""
    match = None if peer.match_index == UNKNOWN else peer.match_index
    contact = None if peer.last_contact_ms == UNKNOWN else peer.last_contact_ms / 1000
    return match, report.last_index - match if match is not None else None, contact, "report"


def failure_tolerance(voters: int) -> int:
    """How many voters may fail with the cluster still able to commit."""
    return max(0, (voters - 1) // 2)


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One executor on /nodes: slots used of allocated, what it runs, how much it finished."""

    node_id: int
    capacity: int
    load: int
    running: int
    succeeded_recent: int  # tasks it finished in the last THROUGHPUT_WINDOW_MS
    failed_recent: int  # attempts of it that failed in that window
    alive: bool
    draining: bool
    heartbeat_age_s: float
    labels: dict[str, str]
    throughput: list[int]  # tasks finished per minute, oldest first (the sparkline)

    @property
    def status(self) -> str:
        if not self.alive:
            return "down"
        return "draining" if self.draining else "up"


def node_rows(state: MachineState, now_ms: int) -> list[NodeRow]:
    """Every registered executor by id; one pass over the tasks for all of them."""
    running: Counter[int] = Counter()
    finished: dict[int, list[int]] = {}
    failed: Counter[int] = Counter()
    for task in state.tasks.values():
        if task.state is TaskState.RUNNING:
            running[task.owner] += 1
        elif task.state is TaskState.SUCCEEDED and task.owner:
            finished.setdefault(task.owner, []).append(task.updated_ms)
        for attempt in task.attempts:
            if attempt.outcome == TaskState.FAILED and now_ms - attempt.ended_ms <= THROUGHPUT_WINDOW_MS:
                failed[attempt.node_id] += 1
    rows = []
    for node_id, node in sorted(state.nodes.items()):
        times = finished.get(node_id, [])
        rows.append(NodeRow(
            node_id=node_id, capacity=node.capacity, load=state.load(node_id),
            running=running[node_id],
            succeeded_recent=sum(1 for at in times if now_ms - at <= THROUGHPUT_WINDOW_MS),
            failed_recent=failed[node_id], alive=node.alive, draining=node.draining,
            heartbeat_age_s=round(max(0, now_ms - node.last_heartbeat_ms) / 1000, 1),
            labels=dict(node.labels), throughput=per_minute(times, now_ms)))
    return rows


def per_minute(times_ms: Sequence[int], now_ms: int) -> list[int]:
    """Counts of `times_ms` per minute over the last SPARK_BUCKETS minutes, oldest first."""
    counts = [0] * SPARK_BUCKETS
    for at_ms in times_ms:
        age = (now_ms - at_ms) // SPARK_BUCKET_MS
        if 0 <= age < SPARK_BUCKETS:
            counts[SPARK_BUCKETS - 1 - age] += 1
    return counts


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One plan: its trigger and rules, its tasks by state, and what it bought."""

    plan_id: str
    trigger: str
    rules_version: str
    created_ms: int
    index: int
    requests: int
    tasks: int
    keys: int
    tasks_by_state: dict[str, int]
    watch: str
    note: str
    before_hit_rate: float | None
    after_hit_rate: float | None
    effect_window_ms: int | None
    effect_recorded_ms: int | None
    keys_sampled: int  # of its tasks' keys, sampled where each task ran (this node)
    keys_read: int  # of those, read in the window after the warm-up
    waste_ratio: float | None  # sampled keys never read

    @property
    def done(self) -> int:
        return self.tasks_by_state.get(TaskState.SUCCEEDED.value, 0)

    @property
    def state(self) -> str:
        """The plan's headline state: EMPTY without tasks (its note says why), RUNNING
        while any task is open, else SUCCEEDED when all did, or FINISHED."""
        if not self.tasks:
            return "EMPTY"
        open_states = {TaskState.PENDING, TaskState.WAITING, TaskState.READY,
                       TaskState.ASSIGNED, TaskState.RUNNING}
        if any(self.tasks_by_state.get(state.value) for state in open_states):
            return "RUNNING"
        return "SUCCEEDED" if self.done == self.tasks else "FINISHED"


def plan_row(plan: PlanRecord, state: MachineState,
             effects: Mapping[str, TaskEffect]) -> PlanRow:
    keys = sum(len(state.tasks[task_id].spec.keys) for task_id in plan.task_ids
               if task_id in state.tasks)
    measured = [effects[task_id] for task_id in plan.task_ids if task_id in effects]
    sampled = sum(effect.sampled_keys for effect in measured)
    read = sum(effect.keys_read_in_window for effect in measured)
    never_read = sum(effect.sampled_keys - effect.keys_read_in_window - effect.keys_gone
                     for effect in measured)
    effect = plan.effect
    return PlanRow(
        plan_id=plan.plan_id, trigger=plan.trigger, rules_version=short_version(plan.rules_version),
        created_ms=plan.created_ms, index=plan.index, requests=plan.requests,
        tasks=len(plan.task_ids), keys=keys,
        tasks_by_state=tasks_by_state(plan.task_ids, state.tasks), watch=plan.watch,
        note=plan.note,
        before_hit_rate=effect.before_hit_rate if effect else None,
        after_hit_rate=effect.after_hit_rate if effect else None,
        effect_window_ms=effect.window_ms if effect else None,
        effect_recorded_ms=effect.recorded_ms if effect else None,
        keys_sampled=sampled, keys_read=read,
        waste_ratio=round(never_read / sampled, 3) if sampled else None)


def plan_rows(state: MachineState, effects: Mapping[str, TaskEffect]) -> list[PlanRow]:
    """Every kept plan, newest first."""
    plans = sorted(state.plans.values(), key=lambda plan: plan.index, reverse=True)
    return [plan_row(plan, state, effects) for plan in plans]


@dataclass(frozen=True, slots=True)
class Overview:
    """The front page's figures."""

    freshness: Freshness
    term: int
    leader_id: int
    voters: int
    learners: int
    failure_tolerance: int
    executors_up: int
    executors: int
    tasks_by_state: dict[str, int]
    tasks: int
    rules_version: str


def overview(status: DriverStatus, state: MachineState) -> Overview:
    counts = state.counts()
    return Overview(
        freshness=freshness(status), term=status.term, leader_id=status.leader_id,
        voters=len(status.voters), learners=len(status.learners),
        failure_tolerance=failure_tolerance(len(status.voters)),
        executors_up=sum(1 for node in state.nodes.values() if node.alive),
        executors=len(state.nodes), tasks_by_state=counts, tasks=sum(counts.values()),
        rules_version=short_version(state.rules.version) if state.rules else "")
