"""The replicated state's records: tasks, nodes, client sessions, and apply results.

Plain data with one rule: a task's state changes only through `MachineState.move`, which
keeps the indexes true (by state, by owner, and each plan's unfinished tasks), so the
leader's loops and the executor read what they need without scanning every task. Deciding
whether a change may happen is lifecycle.py's job; making it is machine.py's.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from warmd.statemachine.access import AccessState
from warmd.statemachine.commands import Labels, TaskSpec
from warmd.statemachine.indexes import TaskIndexes
from warmd.statemachine.lifecycle import NO_NODE, TERMINAL_STATES, TaskState
from warmd.statemachine.plan_parts import StagedPlan
from warmd.statemachine.plans import PlanRecord
from warmd.statemachine.replication import ReplicationRecord
from warmd.statemachine.ruleset import DisabledRule, RuleSetRecord, RuleVersion
from warmd.statemachine.summaries import SummaryRecord


@dataclass(frozen=True, slots=True)
class Applied:
    """The command took effect; `value` is what the proposer gets back (msgpack-able)."""

    value: Any = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """The command was refused and changed nothing (except refusal counters)."""

    reason: str


ApplyResult = Applied | Rejected


def refusal_reason(result: object) -> str:
    """Why a result is a refusal ("" for an Applied one, or for anything else)."""
    return result.reason if isinstance(result, Rejected) else ""


def result_to_wire(result: ApplyResult) -> dict[str, Any]:
    """A result as a msgpack-able map (kept in snapshots' sessions, and a Batch's value)."""
    return {"applied": result.value} if isinstance(result, Applied) else {"rejected": result.reason}


def result_from_wire(wire: dict[str, Any]) -> ApplyResult:
    """Inverse of result_to_wire."""
    if "rejected" in wire:
        return Rejected(str(wire["rejected"]))
    return Applied(wire["applied"])


def batch_results(result: ApplyResult, count: int) -> list[ApplyResult]:
    """The result of each of a Batch's `count` commands, from the Batch's own result (a
    refused Batch, which applied none of them, refuses each)."""
    if isinstance(result, Rejected):
        return [result] * count
    results = [result_from_wire(wire) for wire in result.value]
    if len(results) != count:
        raise ValueError(f"a batch of {count} commands returned {len(results)} results")
    return results


ATTEMPTS_KEPT = 20  # a task's newest assignments kept (reassignments can be many)
NOTES_KEPT = 12  # a task's newest notes kept (gate answers, re-runs)
TERMS_KEPT = 1_000  # term starts kept to tell the term of a step's index


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One assignment of a task: to which node, under which fence, when, and how it ended.
    Times are the leader-stamped `now_ms` of the commands, like every time in the state."""

    attempt: int
    node_id: int
    fence: int
    assigned_ms: int
    started_ms: int = 0  # 0 until the owner started it
    ended_ms: int = 0  # 0 while it is assigned or running
    outcome: str = ""  # "" while open; else the state it ended in, or RELEASED
    error: str = ""  # the failure, release, cancel or expiry reason
    started_index: int = 0  # Raft index of the Start (0 until then); the fence is the Assign's
    ended_index: int = 0  # Raft index of the entry that ended it


@dataclass(frozen=True, slots=True)
class TaskNote:
    """Something that happened to a task outside its assignments, at a Raft index: what its
    readiness gate answered ("gate": open, closed, gave up) or an operator's re-run."""

    index: int
    at_ms: int
    kind: str  # "gate" or "rerun"
    detail: str


@dataclass(slots=True)
class TaskRecord:
    """One task as every replica knows it."""

    task_id: str
    spec: TaskSpec
    state: TaskState
    submitted_ms: int
    updated_ms: int
    attempt: int = 1  # the current attempt, counting the first run
    owner: int = NO_NODE  # the node holding the current assignment
    fence: int = 0  # log index of the current assignment; 0 while unassigned
    assigned_ms: int = 0
    checkpoint: int = 0  # keys done; a new owner resumes here
    not_before_ms: int = 0  # retry backoff: not made ready before this
    waiting_since_ms: int = 0  # when it entered WAITING (the gate timeout counts from here)
    retryable: bool = True  # what the last Fail said
    reassignments: int = 0  # how often it was taken back from a lost owner
    reason: str = ""  # the last error, skip, cancel or release reason
    result: str = ""
    attempts: tuple[AttemptRecord, ...] = ()  # the newest ATTEMPTS_KEPT assignments, oldest first
    submitted_index: int = 0  # Raft index of the SubmitTask (or its plan's last entry)
    notes: tuple[TaskNote, ...] = ()  # the newest NOTES_KEPT, oldest first
    pinned_node: int = 0  # a re-run's placement: only this node may take it (0: any)
    avoided_node: int = 0  # a re-run's placement: this node may not take it (0: none)

    def may_run_on(self, node_id: int) -> bool:
        """Whether a re-run's placement lets `node_id` take the task."""
        return (not self.pinned_node or node_id == self.pinned_node) and node_id != self.avoided_node

    def note(self, note: TaskNote) -> None:
        self.notes = (*self.notes, note)[-NOTES_KEPT:]


@dataclass(slots=True)
class NodeRecord:
    """One executor node: what it can run, and whether it is still heard from.

    `heartbeats` counts the node's applied heartbeats (and registrations): the leader
    watches it change on its own clock to judge silence. `last_heartbeat_ms` is the time the
    node itself stamped on its latest heartbeat, shown to operators; a hint, never a judge."""

    node_id: int
    capacity: int
    lease_ms: int
    labels: Labels
    registered_ms: int
    last_heartbeat_ms: int
    alive: bool = True
    draining: bool = False
    heartbeats: int = 0
    fsync_p99_us: int = -1  # from its latest heartbeat that had one; -1: not known

    def carries(self, required: Labels) -> bool:
        """Whether the node has every required label with the required value."""
        own = dict(self.labels)
        return all(own.get(key) == value for key, value in required)


@dataclass(slots=True)
class SessionRecord:
    """A client's last applied sequence and its result, returned again to a retry."""

    client_id: str
    sequence: int
    result: ApplyResult
    last_index: int  # log index of the last use; the oldest session is evicted first


ACTIVE_STATES = (TaskState.ASSIGNED, TaskState.RUNNING)


@dataclass(frozen=True, slots=True)
class MachineStatistics:
    """An immutable summary for `warmctl status` and /metrics."""

    applied_index: int
    tasks_by_state: tuple[tuple[str, int], ...]
    nodes_alive: int
    nodes_dead: int
    nodes_draining: int
    sessions: int
    stale_fence_rejections: int


@dataclass(slots=True)
class MachineState:
    """Everything the log has built: the input of the scheduler and of snapshots."""

    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    nodes: dict[int, NodeRecord] = field(default_factory=dict)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    applied_index: int = 0
    stale_fence_rejections: int = 0
    finished_pruned: int = 0  # finished tasks outside plans dropped past the bound, ever
    rules: RuleSetRecord | None = None  # the committed rule set (SetRules), None before any
    rule_history: list[RuleVersion] = field(default_factory=list)  # oldest first (ruleset.py)
    disabled_rules: dict[str, DisabledRule] = field(default_factory=dict)  # by rule name
    replication: ReplicationRecord | None = None  # the leader's newest published table
    summaries: dict[str, SummaryRecord] = field(default_factory=dict)  # by "node_id/source"
    plans: dict[str, PlanRecord] = field(default_factory=dict)  # oldest first, PLANS_KEPT at most
    access: AccessState = field(default_factory=AccessState)  # tokens (hashed) and the audit trail
    by_state: dict[TaskState, dict[str, None]] = field(
        default_factory=lambda: {state: {} for state in TaskState}
    )
    staged_plans: dict[str, StagedPlan] = field(default_factory=dict)  # oldest first
    # (first applied index, term) of each term that applied a command, oldest first: the
    # term of any kept step's index, without storing a term on every record.
    terms: list[tuple[int, int]] = field(default_factory=list)
    # Derived indexes, never encoded: rebuilt by `add` and `index_plan` on restore.
    index: TaskIndexes = field(default_factory=TaskIndexes)
    plan_of: dict[str, str] = field(default_factory=dict)  # task -> its kept plan
    unfinished: dict[str, int] = field(default_factory=dict)  # plan -> tasks not final
    plan_keys: dict[str, int] = field(default_factory=dict)  # plan -> keys its tasks hold
    finished_plans: dict[str, None] = field(default_factory=dict)  # uncompacted, all final

    def add(self, task: TaskRecord) -> None:
        """Insert a new task into the table and the indexes."""
        self.tasks[task.task_id] = task
        self.by_state[task.state][task.task_id] = None
        self.index.update(task, None, task.state)

    def move(self, task: TaskRecord, state: TaskState) -> None:
        """Change a task's state; the only place that does, so the indexes stay true."""
        old = task.state
        del self.by_state[old][task.task_id]
        task.state = state
        self.by_state[state][task.task_id] = None
        self.index.update(task, old, state)
        if old not in TERMINAL_STATES and state in TERMINAL_STATES:
            self._task_ended(task.task_id)

    def note_term(self, index: int, term: int) -> None:
        """Remember that `term` applied `index` (kept only when the term changes)."""
        if term and (not self.terms or self.terms[-1][1] != term):
            self.terms.append((index, term))
            del self.terms[:-TERMS_KEPT]

    def term_at(self, index: int) -> int | None:
        """The term of the applied entry at `index`; None before the kept terms (or 0)."""
        position = bisect.bisect_right(self.terms, index, key=lambda start: start[0]) - 1
        return self.terms[position][1] if index and position >= 0 else None

    def in_state(self, state: TaskState) -> list[TaskRecord]:
        """The tasks now in `state`, in a replica-independent order (by task id)."""
        return [self.tasks[task_id] for task_id in sorted(self.by_state[state])]

    def remove(self, task_id: str) -> None:
        """Drop a task from the table and the indexes (pruning of old plans)."""
        task = self.tasks.pop(task_id)
        del self.by_state[task.state][task_id]
        self.index.update(task, task.state, None)
        self.plan_of.pop(task_id, None)

    def index_plan(self, plan: PlanRecord) -> None:
        """Index a kept plan's tasks (after they were added): which plan each belongs to,
        how many are unfinished and how many keys they hold. A compacted plan has none."""
        if plan.outcome:
            return
        unfinished = keys = 0
        for task_id in plan.task_ids:
            task = self.tasks.get(task_id)
            if task is None:
                continue
            self.plan_of[task_id] = plan.plan_id
            unfinished += task.state not in TERMINAL_STATES
            keys += len(task.spec.keys)
        self.unfinished[plan.plan_id] = unfinished
        self.plan_keys[plan.plan_id] = keys
        if not unfinished and plan.task_ids:
            self.finished_plans[plan.plan_id] = None

    def unindex_plan(self, plan_id: str) -> None:
        """Forget a plan in the indexes (its remaining tasks stay, planless)."""
        self.unfinished.pop(plan_id, None)
        self.plan_keys.pop(plan_id, None)
        self.finished_plans.pop(plan_id, None)

    def _task_ended(self, task_id: str) -> None:
        plan_id = self.plan_of.get(task_id)
        if plan_id is None:
            return
        self.unfinished[plan_id] -= 1
        if not self.unfinished[plan_id]:
            self.finished_plans[plan_id] = None

    def plan_finished_ms(self, plan: PlanRecord) -> int | None:
        """When the plan's last task ended (wall ms, as stamped), or None while one has not;
        a compacted plan keeps the time it had."""
        if plan.outcome:
            return plan.finished_ms
        tasks = [task for task_id in plan.task_ids if (task := self.tasks.get(task_id))]
        if not tasks or any(task.state not in TERMINAL_STATES for task in tasks):
            return None
        return max(task.updated_ms for task in tasks)

    def owned_by(self, node_id: int) -> list[TaskRecord]:
        """The node's ASSIGNED or RUNNING tasks, by task id."""
        return [self.tasks[task_id] for task_id in sorted(self.index.by_owner.get(node_id, ()))]

    def last_plan_ms(self, trigger: str) -> int | None:
        """When the newest kept plan with this trigger was made, or None."""
        times = [plan.created_ms for plan in self.plans.values() if plan.trigger == trigger]
        return max(times) if times else None

    def load(self, node_id: int) -> int:
        """How many tasks the node holds now (ASSIGNED or RUNNING)."""
        return len(self.index.by_owner.get(node_id, ()))

    def counts(self) -> dict[str, int]:
        """Tasks per state, for status displays."""
        return {state.value: len(self.by_state[state]) for state in TaskState}

    def statistics(self) -> MachineStatistics:
        """A frozen summary of the state (counts only)."""
        nodes = self.nodes.values()
        return MachineStatistics(
            applied_index=self.applied_index,
            tasks_by_state=tuple(self.counts().items()),
            nodes_alive=sum(1 for node in nodes if node.alive),
            nodes_dead=sum(1 for node in nodes if not node.alive),
            nodes_draining=sum(1 for node in nodes if node.draining),
            sessions=len(self.sessions),
            stale_fence_rejections=self.stale_fence_rejections,
        )
