"""After a run: audit the committed Raft logs of every (stopped) node and the cache.

The audit replays each node's committed entries through a fresh state machine and checks,
independently of the machine's own guards, what the lifecycle promises:

* every acknowledged task reached a terminal state, and exactly once;
* no Start, ReportProgress, Finish or Fail was accepted under a fence other than the
  task's latest accepted assignment (`stale_fence_accepted`);
* a task was taken from an owner (Release) only after that owner's lease had run out,
  so no task ran on two nodes with overlapping leases (`lease_overlaps`);
* every node's log holds the same entries up to the shortest commit index, so the
  replicas' states agree (`divergent` counts nodes whose digest differs there);
* every SUCCEEDED task's keys are in the cache.

A Batch entry's commands are checked one by one, as if each were its own entry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from warmd.raft.types import Entry, EntryType
from warmd.runtime.node.applier import decode_snapshot_data
from warmd.runtime.node.disk import DiskStorage
from warmd.statemachine.commands import (
    FENCED_COMMANDS,
    Assign,
    Batch,
    Command,
    Release,
    Session,
    decode_command,
)
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.schema import InvalidCommand
from warmd.statemachine.state import Applied, batch_results

TERMINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.CANCELLED, TaskState.EXPIRED,
                             TaskState.SKIPPED})


@dataclass(frozen=True, slots=True)
class NodeLog:
    """One node's committed log: entries after its snapshot, the snapshot's machine bytes."""

    node_id: int
    snapshot_index: int
    snapshot_machine: bytes | None
    entries: tuple[Entry, ...]


@dataclass(slots=True)
class AuditReport:
    """What the audit found; `violations` explains each problem in a sentence."""

    tasks: int = 0
    terminal: int = 0
    lost: int = 0
    duplicates: int = 0
    stale_fence_accepted: int = 0
    stale_fence_refused: int = 0
    lease_overlaps: int = 0
    divergent: int = 0
    reassignments: int = 0
    missing_keys: int = 0
    common_index: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def read_node_log(node_id: int, data_dir: Path) -> NodeLog:
    """The committed entries of a stopped node's data directory (opening repairs a torn tail)."""
    storage = DiskStorage.open(data_dir)
    try:
        hard_state, _ = storage.initial_state()
        snapshot = storage.snapshot()
        first = max(storage.first_index(), snapshot.meta.index + 1)
        last = min(hard_state.commit, storage.last_index())
        entries = tuple(storage.entries(first, last + 1)) if last >= first else ()
        machine = decode_snapshot_data(snapshot.data)[1] if snapshot.meta.index else None
        return NodeLog(node_id, snapshot.meta.index, machine, entries)
    finally:
        storage.close()


def _inner(data: bytes) -> Command | None:
    try:
        command = decode_command(data)
    except InvalidCommand:
        return None
    return command.command if isinstance(command, Session) else command


class _Replay:
    """Replays one log and checks fences, leases and terminal transitions as it goes."""

    def __init__(self, log: NodeLog, report: AuditReport | None) -> None:
        self.machine = StateMachine()
        if log.snapshot_machine is not None:
            self.machine.restore(log.snapshot_machine)
        self.report = report
        # A task assigned before the snapshot has its Assign compacted away: the fence the
        # snapshot holds is the latest assignment the audit can see (0: unassigned).
        self.assigned: dict[str, int] = {
            task_id: task.fence for task_id, task in self.machine.state.tasks.items() if task.fence
        }
        self.terminal_entries: Counter[str] = Counter()

    def apply(self, entry: Entry) -> None:
        if entry.type != EntryType.NORMAL or not entry.data:
            self.machine.state.applied_index = entry.index
            return
        command = _inner(entry.data)
        # A Batch's commands are checked one by one, each against the state before the
        # entry (a task appears at most once in a batch but for a Release and its Assign).
        commands = list(command.commands) if isinstance(command, Batch) else [command]
        before = [self._before(each) for each in commands]
        result = self.machine.apply_entry(entry.index, entry.data)
        if self.report is None or command is None:
            return
        results = (batch_results(result, len(commands)) if isinstance(command, Batch)
                   else [result])
        for each, (state_before, lease_end_ms), each_result in zip(
                commands, before, results, strict=True):
            if each is not None and isinstance(each_result, Applied):
                self._check(entry.index, each, state_before, lease_end_ms)

    def _before(self, command: Command | None) -> tuple[TaskState | None, int | None]:
        """The task's state before the entry, and for a Release its owner's lease end."""
        state = self.machine.state
        task = state.tasks.get(getattr(command, "task_id", "")) if command is not None else None
        lease_end_ms = None
        if isinstance(command, Release) and task is not None and task.owner in state.nodes:
            owner = state.nodes[task.owner]
            lease_end_ms = owner.last_heartbeat_ms + owner.lease_ms
        return (task.state if task is not None else None), lease_end_ms

    def _check(self, index: int, command: Command, before: TaskState | None,
               lease_end_ms: int | None) -> None:
        report = self.report
        assert report is not None
        task_id = getattr(command, "task_id", None)
        if isinstance(command, Assign):
            self.assigned[command.task_id] = index
        elif isinstance(command, FENCED_COMMANDS) and command.fence != self.assigned.get(task_id):
            report.stale_fence_accepted += 1
            report.violations.append(f"entry {index}: {type(command).__name__} of {task_id} "
                                     f"accepted under fence {command.fence}, "
                                     f"latest assignment {self.assigned.get(task_id)}")
        elif isinstance(command, Release):
            report.reassignments += 1
            if lease_end_ms is not None and command.now_ms <= lease_end_ms:
                report.lease_overlaps += 1
                report.violations.append(f"entry {index}: {task_id} released at "
                                         f"{command.now_ms} inside its owner's lease "
                                         f"(until {lease_end_ms})")
        if task_id is None:
            return
        task = self.machine.state.tasks.get(task_id)
        after = task.state if task is not None else before
        if after in TERMINAL_STATES and before not in TERMINAL_STATES:
            self.terminal_entries[task_id] += 1


def audit_logs(logs: Sequence[NodeLog], acknowledged: Iterable[str]) -> tuple[AuditReport, StateMachine]:
    """Audit the longest log fully and compare every log's digest at the common index."""
    report = AuditReport()
    if not logs:
        report.violations.append("no node logs to audit")
        return report, StateMachine()
    longest = max(logs, key=lambda log: log.entries[-1].index if log.entries else log.snapshot_index)
    common = min(log.entries[-1].index if log.entries else log.snapshot_index for log in logs)
    report.common_index = common
    replay = _Replay(longest, report)
    reference = None
    for entry in longest.entries:
        replay.apply(entry)
        if entry.index == common:
            reference = replay.machine.digest()
    if reference is None:
        reference = replay.machine.digest() if longest.snapshot_index == common else ""
    _compare_digests(logs, longest, common, reference, report)
    _check_tasks(replay, acknowledged, report)
    report.stale_fence_refused = replay.machine.state.stale_fence_rejections
    return report, replay.machine


def _compare_digests(logs: Sequence[NodeLog], longest: NodeLog, common: int, reference: str,
                     report: AuditReport) -> None:
    for log in logs:
        if log is longest or log.snapshot_index > common:
            continue
        other = _Replay(log, None)
        for entry in log.entries:
            if entry.index > common:
                break
            other.apply(entry)
        if other.machine.digest() != reference:
            report.divergent += 1
            report.violations.append(f"node {log.node_id} differs from node {longest.node_id} "
                                     f"at index {common}")


def _check_tasks(replay: _Replay, acknowledged: Iterable[str], report: AuditReport) -> None:
    state = replay.machine.state
    tasks = state.tasks
    report.tasks = len(tasks)
    missing = []
    for task_id in sorted(set(acknowledged)):
        task = tasks.get(task_id)
        if task is None:
            missing.append(task_id)
        elif task.state not in TERMINAL_STATES:
            report.lost += 1
            report.violations.append(f"acknowledged task {task_id} is {task.state.value}, "
                                     "not terminal")
    # Finished tasks past the state's bound are dropped, oldest first (the state counts
    # them): a missing task is lost only when more are missing than were dropped.
    unexplained = len(missing) - state.finished_pruned
    if unexplained > 0:
        report.lost += unexplained
        report.violations.append(f"{len(missing)} acknowledged tasks are missing but only "
                                 f"{state.finished_pruned} were pruned (first: {missing[0]})")
    for task_id, count in replay.terminal_entries.items():
        if count > 1:
            report.duplicates += count - 1
            report.violations.append(f"task {task_id} reached a terminal state {count} times")
    report.terminal = sum(1 for task in tasks.values() if task.state in TERMINAL_STATES)


def missing_keys(machine: StateMachine, existing: set[str]) -> list[str]:
    """The keys of SUCCEEDED tasks that are not in `existing` (every key the cache holds)."""
    return [key for task in machine.state.in_state(TaskState.SUCCEEDED)
            for key in task.spec.keys if key not in existing]
