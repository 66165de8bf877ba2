"""Derived indexes of the task table, so the leader's loops cost what changed (pure).

The scheduler asks, on every pass: which READY tasks come first, which deadlines have
passed, which PENDING windows have opened, which gates timed out, which FAILED tasks may
be retried, and how busy each node is. Scanning every task for each answer makes a pass
O(tasks) and a 10,000-task plan O(tasks^2) to place. These indexes answer each question
from its own sorted list or set, kept true by `MachineState.add/move/remove` (a task's
keys here change only when its state does; see `update`). They are never encoded: a
restore rebuilds them task by task, and a property test checks them against a full scan.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from warmd.statemachine.lifecycle import TERMINAL_STATES, TaskState

if TYPE_CHECKING:
    from warmd.statemachine.state import TaskRecord

ACTIVE = frozenset({TaskState.ASSIGNED, TaskState.RUNNING})


class SortedTasks:
    """Task ids ordered by a key and then by id; exact insert and removal (bisect)."""

    __slots__ = ("_items", "_keys")

    def __init__(self) -> None:
        self._items: list[tuple[Any, str]] = []
        self._keys: dict[str, Any] = {}

    def add(self, task_id: str, key: Any) -> None:
        self.discard(task_id)
        self._keys[task_id] = key
        bisect.insort(self._items, (key, task_id))

    def discard(self, task_id: str) -> None:
        key = self._keys.pop(task_id, None)
        if key is None:
            return
        del self._items[bisect.bisect_left(self._items, (key, task_id))]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return (task_id for _, task_id in self._items)

    def items(self) -> list[tuple[Any, str]]:
        """(key, task id) pairs in order (a copy)."""
        return list(self._items)

    def first_key(self) -> Any:
        """The smallest key, or None when empty."""
        return self._items[0][0] if self._items else None

    def up_to(self, limit: Any, count: int | None = None) -> list[str]:
        """The ids whose key is at most `limit`, in order (the first `count` of them)."""
        end = bisect.bisect_right(self._items, (limit, "\U0010ffff"))
        if count is not None:
            end = min(end, count)
        return [task_id for _, task_id in self._items[:end]]


def ready_key(task: TaskRecord) -> tuple[int, int]:
    """Assignment order: highest priority, then oldest submission (then id)."""
    return (-task.spec.priority, task.submitted_ms)


def opens_ms(task: TaskRecord) -> int:
    """When a PENDING task may become READY: its window and its retry backoff."""
    return max(task.spec.not_before_ms, task.not_before_ms)


def gate_gives_up_ms(task: TaskRecord) -> int:
    """When a WAITING task is SKIPPED if its gate is still closed."""
    return task.waiting_since_ms + task.spec.gate_timeout_ms


def may_retry(task: TaskRecord) -> bool:
    """A FAILED task the scheduler retries: the failure was retryable and attempts remain."""
    return task.retryable and task.attempt < task.spec.max_attempts


@dataclass(slots=True)
class TaskIndexes:
    """Every index the scheduler and the executor read; see the module docstring."""

    ready: SortedTasks = field(default_factory=SortedTasks)  # READY, by ready_key
    opening: SortedTasks = field(default_factory=SortedTasks)  # PENDING, by opens_ms
    gate_timeouts: SortedTasks = field(default_factory=SortedTasks)  # WAITING, by give-up time
    deadlines: SortedTasks = field(default_factory=SortedTasks)  # unfinished, with a deadline
    retryable: dict[str, None] = field(default_factory=dict)  # FAILED and may_retry
    by_owner: dict[int, dict[str, None]] = field(default_factory=dict)  # ASSIGNED/RUNNING
    owner_of: dict[str, int] = field(default_factory=dict)  # active task -> indexed owner

    def update(self, task: TaskRecord, old: TaskState | None, new: TaskState | None) -> None:
        """The task left state `old` (None: it is new) for `new` (None: it is removed).

        Called after the command's effect, so the keys of `new` are read as they now are;
        the keys of `old` are not read (they may have changed with the effect)."""
        if old is not None:
            self._leave(task.task_id, old)
        if new is not None:
            self._enter(task, new)
        unfinished_before = old is not None and old not in TERMINAL_STATES
        unfinished_after = new is not None and new not in TERMINAL_STATES
        if unfinished_after and not unfinished_before and task.spec.deadline_ms is not None:
            self.deadlines.add(task.task_id, task.spec.deadline_ms)
        elif unfinished_before and not unfinished_after:
            self.deadlines.discard(task.task_id)

    def _leave(self, task_id: str, state: TaskState) -> None:
        if state == TaskState.READY:
            self.ready.discard(task_id)
        elif state == TaskState.PENDING:
            self.opening.discard(task_id)
        elif state == TaskState.WAITING:
            self.gate_timeouts.discard(task_id)
        elif state == TaskState.FAILED:
            self.retryable.pop(task_id, None)
        elif state in ACTIVE:
            owner = self.owner_of.pop(task_id)
            owned = self.by_owner[owner]
            del owned[task_id]
            if not owned:
                del self.by_owner[owner]

    def _enter(self, task: TaskRecord, state: TaskState) -> None:
        if state == TaskState.READY:
            self.ready.add(task.task_id, ready_key(task))
        elif state == TaskState.PENDING:
            self.opening.add(task.task_id, opens_ms(task))
        elif state == TaskState.WAITING:
            self.gate_timeouts.add(task.task_id, gate_gives_up_ms(task))
        elif state == TaskState.FAILED:
            if may_retry(task):
                self.retryable[task.task_id] = None
        elif state in ACTIVE:
            self.owner_of[task.task_id] = task.owner
            self.by_owner.setdefault(task.owner, {})[task.task_id] = None
