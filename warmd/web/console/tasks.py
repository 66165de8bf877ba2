"""The task table and one task's lifecycle, shaped for pages and the API (pure).

Filters: state (one or a comma list), plan, rule, node (the owner), target, since (updated
within a duration) and text (a substring of id, target, rule or reason). The table is
filtered, sorted and paged from the replicated task table on each request: 10,000 tasks
take a few milliseconds (bench/console_load.py measures the whole page).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from warmd.cache.effect import TaskEffect
from warmd.statemachine.documents import result_fields
from warmd.statemachine.lifecycle import TERMINAL_STATES, TaskState
from warmd.statemachine.state import MachineState, TaskRecord
from warmd.web.console.query import ListQuery, Page, QueryError, TableSpec, duration_ms, take_page
from warmd.web.console.svg import Span

TASKS = TableSpec(filters=("state", "plan", "rule", "node", "target", "since", "text"),
                  sorts=("updated", "submitted", "state", "task", "keys", "priority", "node"),
                  default_sort="-updated")
STATE_ORDER = {state: rank for rank, state in enumerate(TaskState)}
SORT_KEYS: dict[str, Callable[[TaskRecord], Any]] = {
    "updated": lambda task: (task.updated_ms, task.task_id),
    "submitted": lambda task: (task.submitted_ms, task.task_id),
    "state": lambda task: (STATE_ORDER[task.state], task.task_id),
    "task": lambda task: task.task_id,
    "keys": lambda task: (len(task.spec.keys), task.task_id),
    "priority": lambda task: (task.spec.priority, task.task_id),
    "node": lambda task: (task.owner, task.task_id),
}


@dataclass(frozen=True, slots=True)
class TaskRow:
    task_id: str
    state: str
    target: str
    rule: str
    plan_id: str
    node: int  # 0: none
    attempt: int
    keys: int
    done_keys: int
    priority: int
    submitted_ms: int
    updated_ms: int
    reason: str

    @property
    def percent(self) -> int:
        return 100 if self.state == TaskState.SUCCEEDED else (
            self.done_keys * 100 // self.keys if self.keys else 0)

    @property
    def open(self) -> bool:
        return TaskState(self.state) not in TERMINAL_STATES


def task_row(task: TaskRecord) -> TaskRow:
    return TaskRow(task.task_id, task.state.value, task.spec.target, task.spec.rule,
                   task.spec.plan_id, task.owner, task.attempt, len(task.spec.keys),
                   task.checkpoint, task.spec.priority, task.submitted_ms, task.updated_ms,
                   task.reason)


def _states(text: str) -> frozenset[TaskState]:
    states = set()
    for name in text.split(","):
        try:
            states.add(TaskState(name.strip().upper()))
        except ValueError:
            known = ", ".join(state.value for state in TaskState)
            raise QueryError("state", f"unknown state {name.strip()[:30]!r} (one of {known})") from None
    return frozenset(states)


def task_filter(filters: Mapping[str, str], now_ms: int) -> Callable[[TaskRecord], bool]:
    """The predicate of the filters. Raises: QueryError for an unknown state, a node that is
    not a number or a `since` that is not a duration."""
    states = _states(filters["state"]) if "state" in filters else None
    node_text = filters.get("node")
    if node_text is not None and not node_text.isdigit():
        raise QueryError("node", f"must be a node id (a number), got {node_text[:20]!r}")
    node = int(node_text) if node_text is not None else None
    since_ms = now_ms - duration_ms("since", filters["since"]) if "since" in filters else None
    plan, rule, target = filters.get("plan"), filters.get("rule"), filters.get("target")
    text = filters.get("text", "").lower()

    def matches(task: TaskRecord) -> bool:
        spec = task.spec
        return ((states is None or task.state in states)
                and (plan is None or spec.plan_id == plan)
                and (rule is None or spec.rule == rule)
                and (node is None or task.owner == node)
                and (target is None or spec.target == target)
                and (since_ms is None or task.updated_ms >= since_ms)
                and (not text or text in task.task_id.lower() or text in spec.target.lower()
                     or text in spec.rule.lower() or text in task.reason.lower()))

    return matches


def task_page(state: MachineState, query: ListQuery, now_ms: int) -> Page:
    """The query's page of tasks as rows, with "N of M" counts. Raises: QueryError."""
    matches = task_filter(query.filters, now_ms)
    if "state" in query.filters and len(query.filters) == 1:  # the per-state index is cheaper
        chosen = [state.tasks[task_id] for wanted in _states(query.filters["state"])
                  for task_id in state.by_state[wanted]]
    else:
        chosen = [task for task in state.tasks.values() if matches(task)]
    chosen.sort(key=SORT_KEYS[query.sort], reverse=query.descending)
    page = take_page(chosen, len(state.tasks), query)
    return replace(page, rows=[task_row(task) for task in page.rows])


@dataclass(frozen=True, slots=True)
class Transition:
    """One step of a task's life as the replicated state records it: the Raft index of the
    entry that made it and that entry's term (None when the state no longer knows it), the
    fence (the assignment's index) of the attempt it belongs to; gate answers and re-runs
    are steps too (state "GATE" / "RERUN")."""

    at_ms: int
    state: str
    node: int
    attempt: int
    fence: int
    detail: str
    index: int = 0  # 0: not recorded (a task from before indexes were kept)
    term: int | None = None


def _steps(task: TaskRecord) -> list[Transition]:
    steps = [Transition(task.submitted_ms, TaskState.PENDING.value, 0, 1, 0, "submitted",
                        task.submitted_index)]
    for attempt in task.attempts:
        steps.append(Transition(attempt.assigned_ms, TaskState.ASSIGNED.value, attempt.node_id,
                                attempt.attempt, attempt.fence, "assigned", attempt.fence))
        if attempt.started_ms:
            steps.append(Transition(attempt.started_ms, TaskState.RUNNING.value, attempt.node_id,
                                    attempt.attempt, attempt.fence, "started",
                                    attempt.started_index))
        if attempt.ended_ms:
            steps.append(Transition(attempt.ended_ms, attempt.outcome or "ENDED", attempt.node_id,
                                    attempt.attempt, attempt.fence, attempt.error,
                                    attempt.ended_index))
    for note in task.notes:
        steps.append(Transition(note.at_ms, note.kind.upper(), 0, 0, 0, note.detail, note.index))
    return steps


def transitions(task: TaskRecord, state: MachineState | None = None) -> list[Transition]:
    """Submitted, then per kept attempt: assigned (under its fence), started, ended; the
    gate's answers and re-runs among them, in log order; each with its term from `state`."""
    steps = _steps(task)
    if not task.attempts and task.state is not TaskState.PENDING:
        steps.append(Transition(task.updated_ms, task.state.value, task.owner, task.attempt,
                                task.fence, task.reason))
    in_log_order = all(step.index for step in steps)  # else (older records) by time
    steps.sort(key=lambda step: step.index if in_log_order else step.at_ms)
    if state is None:
        return steps
    return [replace(step, term=state.term_at(step.index)) for step in steps]


@dataclass(frozen=True, slots=True)
class TaskDetail:
    row: TaskRow
    transitions: list[Transition]
    fence: int
    gate: str
    gate_timeout_ms: int
    waiting_since_ms: int
    loader: str
    rules_version: str
    deadline_ms: int | None
    not_before_ms: int
    max_attempts: int
    reassignments: int
    result: dict[str, Any] | str | None  # the executor's JSON fields, or older prose
    cache_hits: int | None  # measured where the task ran (this node only)
    cache_misses: int | None
    keys_read: int | None
    keys_sampled: int | None
    pinned_node: int = 0  # a re-run's placement (0: none)
    avoided_node: int = 0


def task_detail(task: TaskRecord, effect: TaskEffect | None,
                state: MachineState | None = None) -> TaskDetail:
    spec = task.spec
    return TaskDetail(
        row=task_row(task), transitions=transitions(task, state), fence=task.fence, gate=spec.gate,
        gate_timeout_ms=spec.gate_timeout_ms, waiting_since_ms=task.waiting_since_ms,
        loader=spec.loader or "direct write", rules_version=spec.rules_version[:12],
        deadline_ms=spec.deadline_ms, not_before_ms=spec.not_before_ms,
        max_attempts=spec.max_attempts, reassignments=task.reassignments,
        result=result_fields(task.result),
        cache_hits=effect.hits if effect else None,
        cache_misses=effect.misses if effect else None,
        keys_read=effect.keys_read_in_window if effect else None,
        keys_sampled=effect.sampled_keys if effect else None,
        pinned_node=task.pinned_node, avoided_node=task.avoided_node)


def attempt_spans(task: TaskRecord) -> list[Span]:
    """The task's timeline: per attempt, the wait while assigned, then the run."""
    spans = []
    for attempt in task.attempts:
        lane = f"attempt {attempt.attempt} · node {attempt.node_id}"
        running_from = attempt.started_ms or attempt.ended_ms
        spans.append(Span(lane, attempt.assigned_ms, running_from, "ASSIGNED",
                          f"assigned under fence {attempt.fence}"))
        if attempt.started_ms:
            state = attempt.outcome or TaskState.RUNNING.value
            spans.append(Span(lane, attempt.started_ms, attempt.ended_ms, state,
                              f"{state.lower()} {attempt.error}".strip()))
    return spans
