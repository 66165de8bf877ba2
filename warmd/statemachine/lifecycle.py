"""The task lifecycle: its states, THE transition table, the guard on each transition and
the effect of each command on the task's fields.

h11's rule 1: everything that decides whether a task may change state, and what a change
does to it, lives in this file; machine.py only looks the command up and applies it. docs/lifecycle.md is rendered from this module:
`python -m warmd.statemachine.lifecycle --markdown > docs/lifecycle.md`.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from warmd.statemachine.commands import (
    FENCED_COMMANDS,
    NODE_COMMANDS,
    TASK_COMMANDS,
    Assign,
    Batch,
    Cancel,
    Expire,
    Fail,
    Finish,
    MarkReady,
    MarkWaiting,
    Release,
    ReportProgress,
    Rerun,
    Retry,
    Session,
    Skip,
    Start,
    SubmitTask,
)
from warmd.statemachine.ruleset import SetRules

if TYPE_CHECKING:
    from warmd.statemachine.state import MachineState, TaskRecord

NO_NODE = 0  # "no node": an unassigned task's owner


class TaskState(StrEnum):
    PENDING = "PENDING"
    WAITING = "WAITING"
    READY = "READY"
    ASSIGNED = "ASSIGNED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    SKIPPED = "SKIPPED"


STATE_MEANINGS: dict[TaskState, str] = {
    TaskState.PENDING: "submitted; waits for its window to open (or its retry backoff to end)",
    TaskState.WAITING: "its readiness gate is not yet satisfied",
    TaskState.READY: "may run; waits for a node with free capacity and the right labels",
    TaskState.ASSIGNED: "given to a node under a fence (the assignment's log index)",
    TaskState.RUNNING: "the owner started it and reports progress checkpoints",
    TaskState.SUCCEEDED: "final: every key is warmed",
    TaskState.FAILED: "the attempt failed; a retry sends it back to PENDING",
    TaskState.CANCELLED: "final: stopped by request",
    TaskState.EXPIRED: "final: its window closed first (misfire: recorded, never run late)",
    TaskState.SKIPPED: "final: its readiness gate never opened",
}

TERMINAL_STATES = frozenset(
    {TaskState.SUCCEEDED, TaskState.CANCELLED, TaskState.EXPIRED, TaskState.SKIPPED}
)
INITIAL_STATE = TaskState.PENDING  # SubmitTask creates a task here

_GIVE_UP = {Cancel: TaskState.CANCELLED, Expire: TaskState.EXPIRED}

TRANSITIONS: dict[TaskState, dict[type, TaskState]] = {
    TaskState.PENDING: {
        MarkReady: TaskState.READY, MarkWaiting: TaskState.WAITING, Skip: TaskState.SKIPPED,
        **_GIVE_UP,
    },
    TaskState.WAITING: {
        MarkReady: TaskState.READY, MarkWaiting: TaskState.WAITING, Skip: TaskState.SKIPPED,
        **_GIVE_UP,
    },
    TaskState.READY: {Assign: TaskState.ASSIGNED, **_GIVE_UP},
    TaskState.ASSIGNED: {
        Start: TaskState.RUNNING, Fail: TaskState.FAILED, Release: TaskState.READY, **_GIVE_UP,
    },
    TaskState.RUNNING: {
        ReportProgress: TaskState.RUNNING, Finish: TaskState.SUCCEEDED, Fail: TaskState.FAILED,
        Release: TaskState.READY, **_GIVE_UP,
    },
    TaskState.FAILED: {Retry: TaskState.PENDING, Rerun: TaskState.PENDING, **_GIVE_UP},
    TaskState.SUCCEEDED: {},
    TaskState.CANCELLED: {},
    TaskState.EXPIRED: {},
    TaskState.SKIPPED: {},
}


# Who proposes each command (documentation; the machine does not check the proposer).
PROPOSERS: dict[type, str] = {
    SubmitTask: "clients: warmctl, the REST API, the planner",
    MarkReady: "the scheduler (tasks without a gate); the gate checker (gated tasks)",
    MarkWaiting: "the scheduler (gated tasks); the gate checker (gate still closed)",
    Skip: "the scheduler (gate timeout); the gate checker",
    Assign: "the scheduler",
    Start: "the owning executor",
    ReportProgress: "the owning executor",
    Finish: "the owning executor",
    Fail: "the owning executor",
    Release: "the scheduler (owner dead or removed)",
    Cancel: "operators: warmctl tasks cancel",
    Retry: "the scheduler (backoff); operators: warmctl tasks retry (manual)",
    Expire: "the scheduler (deadline passed)",
    Rerun: "operators: the console's re-run on another node (`task-rerun`)",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command may not change a task; `stale_fence` marks a superseded owner's report."""

    reason: str
    stale_fence: bool = False


def decide(task: TaskRecord | None, command: Any, state: MachineState) -> TaskState | Refusal:
    """The state `command` moves `task` to, or why it may not. Never raises for bad input.

    Order: the task must exist (or, for SubmitTask, must not), a fenced report must
    carry the current fence, the table must allow the pair, and the guard must pass.
    """
    if isinstance(command, SubmitTask):
        if task is not None:
            return Refusal(f"task {command.task_id} already exists ({task.state})")
        # No deadline check here: the submitter's clock is not the leader's. A task whose
        # deadline has passed is expired by the leader's next pass, with the reason recorded.
        return INITIAL_STATE
    if task is None:
        return Refusal(f"unknown task {command.task_id}")
    if isinstance(command, FENCED_COMMANDS) and command.fence != task.fence:
        return Refusal(
            f"stale fence {command.fence}: task {task.task_id} is now under fence {task.fence}",
            stale_fence=True,
        )
    target = TRANSITIONS[task.state].get(type(command))
    if target is None:
        return Refusal(f"{type(command).__name__} is not allowed in state {task.state}")
    guard = GUARDS.get(type(command))
    reason = guard(task, command, state) if guard else None
    return Refusal(reason) if reason else target


# ---- guards: a reason to refuse, or None -----------------------------------------------------


def _past_deadline(task_deadline_ms: int | None, now_ms: int) -> bool:
    return task_deadline_ms is not None and now_ms >= task_deadline_ms


def _guard_ready(task: TaskRecord, command: MarkReady, state: MachineState) -> str | None:
    """Refused before the window opens or the retry backoff ends."""
    opens_ms = max(task.spec.not_before_ms, task.not_before_ms)
    if command.now_ms < opens_ms:
        return f"not ready before {opens_ms} (now {command.now_ms})"
    return None


def _guard_assign(task: TaskRecord, command: Assign, state: MachineState) -> str | None:
    """Refused unless the node is alive (not declared dead), not draining, has a free slot
    and every required label, and the deadline has not passed by the leader's clock."""
    node = state.nodes.get(command.node_id)
    if node is None:
        return f"unknown node {command.node_id}"
    if not node.alive:
        return f"node {command.node_id} is not live"
    if node.draining:
        return f"node {command.node_id} is draining"
    if state.load(node.node_id) >= node.capacity:
        return f"node {command.node_id} is full ({node.capacity} tasks)"
    if not node.carries(task.spec.required_labels):
        return f"node {command.node_id} lacks labels {dict(task.spec.required_labels)}"
    if not task.may_run_on(command.node_id):
        return f"node {command.node_id} is excluded by the task's re-run placement"
    if _past_deadline(task.spec.deadline_ms, command.now_ms):
        return f"deadline {task.spec.deadline_ms} passed"
    return None


def _guard_owner(task: TaskRecord, command: Any, state: MachineState) -> str | None:
    """Refused from any node but the owner (the fence was checked before)."""
    if command.node_id != task.owner:
        return f"node {command.node_id} does not own task {task.task_id}"
    return None


def _guard_start(task: TaskRecord, command: Start, state: MachineState) -> str | None:
    """Refused from any node but the owner. The deadline is the leader's to judge (its
    scheduler wakes at each deadline and expires the task, which stops the run): an
    executor's clock never refuses a start."""
    return _guard_owner(task, command, state)


def _guard_progress(task: TaskRecord, command: ReportProgress, state: MachineState) -> str | None:
    """Refused from any node but the owner, and for a checkpoint that goes backwards or past
    the task's key count."""
    if not task.checkpoint <= command.keys_done <= len(task.spec.keys):
        return (
            f"checkpoint {command.keys_done} outside {task.checkpoint}..{len(task.spec.keys)}"
        )
    return _guard_owner(task, command, state)


def _guard_release(task: TaskRecord, command: Release, state: MachineState) -> str | None:
    """Refused for a stale fence (a duplicate release) and while the owner is alive."""
    if command.fence != task.fence:
        return f"fence {command.fence} is not the current fence {task.fence}"
    owner = state.nodes.get(task.owner)
    if owner is not None and owner.alive:
        return f"owner node {task.owner} is alive"
    return None


def _guard_retry(task: TaskRecord, command: Retry, state: MachineState) -> str | None:
    """Refused once the window closed; an automatic retry also when the failure was not
    retryable or the attempts are used up (a manual one ignores both)."""
    if _past_deadline(task.spec.deadline_ms, command.now_ms):
        return f"deadline {task.spec.deadline_ms} passed"
    if command.manual:
        return None
    if not task.retryable:
        return "the failure is not retryable"
    if task.attempt >= task.spec.max_attempts:
        return f"attempts used up ({task.attempt} of {task.spec.max_attempts})"
    return None


def _guard_rerun(task: TaskRecord, command: Rerun, state: MachineState) -> str | None:
    """Refused once the window closed, and when pinned to a node the state does not know."""
    if _past_deadline(task.spec.deadline_ms, command.now_ms):
        return f"deadline {task.spec.deadline_ms} passed"
    if not command.away and command.node_id not in state.nodes:
        return f"unknown node {command.node_id}"
    return None


def _guard_expire(task: TaskRecord, command: Expire, state: MachineState) -> str | None:
    """Refused before the deadline, or when the task has none."""
    if task.spec.deadline_ms is None:
        return "the task has no deadline"
    if command.now_ms < task.spec.deadline_ms:
        return f"deadline {task.spec.deadline_ms} not reached (now {command.now_ms})"
    return None


GUARDS: dict[type, Callable[[Any, Any, Any], str | None]] = {
    MarkReady: _guard_ready,
    Assign: _guard_assign,
    Start: _guard_start,
    ReportProgress: _guard_progress,
    Finish: _guard_owner,
    Fail: _guard_owner,
    Release: _guard_release,
    Retry: _guard_retry,
    Rerun: _guard_rerun,
    Expire: _guard_expire,
}


# ---- effects: what an allowed command does to the task's fields -------------------------------
# Each returns the value the proposer gets back in Applied (None for most).


def _effect_assign(task: TaskRecord, command: Assign, index: int) -> int:
    """Records the owner, the assignment time and the fence: the log index of this entry."""
    task.owner, task.fence, task.assigned_ms = command.node_id, index, command.now_ms
    return index


def _effect_progress(task: TaskRecord, command: ReportProgress, index: int) -> None:
    """Moves the checkpoint to the keys done (a new owner resumes there)."""
    task.checkpoint = command.keys_done


def _effect_finish(task: TaskRecord, command: Finish, index: int) -> None:
    """Marks every key done, keeps the result line and clears any earlier failure reason."""
    task.checkpoint, task.result, task.reason = len(task.spec.keys), command.result, ""


def _effect_fail(task: TaskRecord, command: Fail, index: int) -> None:
    """Keeps the error and whether it may be retried."""
    task.reason, task.retryable = command.error, command.retryable


def _effect_release(task: TaskRecord, command: Release, index: int) -> None:
    """Drops the owner and fence, keeps the reason and counts the reassignment."""
    task.owner, task.fence, task.reason = NO_NODE, 0, command.reason
    task.reassignments += 1


def _effect_retry(task: TaskRecord, command: Retry, index: int) -> None:
    """Starts a new attempt from scratch, not before the backoff the leader drew."""
    task.owner, task.fence, task.checkpoint = NO_NODE, 0, 0
    task.attempt += 1
    task.not_before_ms = command.not_before_ms


def _effect_rerun(task: TaskRecord, command: Rerun, index: int) -> None:
    """Starts a new attempt from scratch at once, placed on (or away from) the node."""
    task.owner, task.fence, task.checkpoint, task.not_before_ms = NO_NODE, 0, 0, 0
    task.attempt += 1
    task.pinned_node = 0 if command.away else command.node_id
    task.avoided_node = command.node_id if command.away else 0


def _effect_waiting(task: TaskRecord, command: MarkWaiting, index: int) -> None:
    """Starts the gate timeout when the task first waits; keeps the reason."""
    if task.state != TaskState.WAITING:
        task.waiting_since_ms = command.now_ms
    task.reason = command.reason


def _effect_reason(task: TaskRecord, command: Skip | Cancel, index: int) -> None:
    """Keeps the reason."""
    task.reason = command.reason


def _effect_expire(task: TaskRecord, command: Expire, index: int) -> None:
    """Records when it expired against which deadline."""
    task.reason = f"expired at {command.now_ms} (deadline {task.spec.deadline_ms})"


EFFECTS: dict[type, Callable[[Any, Any, int], object]] = {
    Assign: _effect_assign,
    ReportProgress: _effect_progress,
    Finish: _effect_finish,
    Fail: _effect_fail,
    Release: _effect_release,
    Retry: _effect_retry,
    Rerun: _effect_rerun,
    MarkWaiting: _effect_waiting,
    Skip: _effect_reason,
    Cancel: _effect_reason,
    Expire: _effect_expire,
}


# ---- rendering docs/lifecycle.md -------------------------------------------------------------

CLOCKS = """\
Raft's safety never depends on clocks; the task lifecycle depends on one clock only, the
leader's. Every command carries a `now_ms`, but the state machine judges time only on
commands the leader's own loops propose (MarkReady, Assign, Expire, Retry, Skip and the
plans' deadlines), each stamped from the leader's clock as it proposes them:

- A node's stamp is a hint. SubmitTask and Start are never refused for a deadline by the
  submitter's or executor's clock: a task whose deadline has passed is expired by the
  leader, whose scheduling loop wakes at each deadline, and the expiry stops its run.
- Liveness is "heartbeat received at leader time". The state counts each node's
  heartbeats; the leader notes, on its monotonic clock, when it sees a count move, and
  declares a node dead when the count has stood still longer than the node's lease.
  DeclareDead names the count it judged on and is refused if a heartbeat landed since. A
  node whose clock runs an hour ahead therefore dies one lease after its last heartbeat,
  not an hour later, and one an hour behind is never declared dead while it heartbeats.
- What a skewed or jumping leader can do: its wall clock decides when windows open and
  deadlines pass (a leader an hour ahead expires tasks an hour early, one behind runs them
  late). Its monotonic clock decides liveness, so a wall-clock jump of the leader does not
  kill or revive nodes.
- How a leader change bounds it: a new leader has seen no heartbeats yet and gives every
  node a full lease from when it takes over, so a leader change can delay a death by one
  lease and never hastens one; deadlines are judged by the new leader's clock from its
  first pass, so the drift between two leaders' clocks is the most a change can shift them.
"""

PIPELINING = """\
The table is the same for every executor; pipelining only stops an executor from waiting
for commits it does not need before its next write (warmd/runtime/execute/executor.py):

- Tasks ahead: a node registers `capacity x (1 + prefetch)` as the tasks it holds and runs
  `capacity` at once; the rest wait ASSIGNED on the node, oldest assignment first. Assign's
  guard counts them like running ones, so no node holds more than it declared. A node that
  dies holds them until its lease runs out; then they are released (READY, a new fence on
  the next Assign) like running ones. With `prefetch = "auto"` (the default) the node holds
  as many per slot as cover a refill: the time from a slot freeing its hold to the next
  Assign for the node (the Finish's commit, the wait for the next scheduling pass, its
  commit) over the time a slot takes to write a task, 1 to 8, re-registering (at most every
  2 s) when that changes. What a node holds ahead is about one refill of work, so at a
  plan's end it runs on for about one refill latency after the others ran dry; more would
  only lengthen that tail and what a dead node holds.
- Start in flight: a run begins writing as soon as its Assign is applied on the node, while
  its Start commits. The Assign is already committed, so the owner and fence are fixed in
  the log and only a Release (after the owner's lease ran out) can take the task away,
  started or not. No checkpoint and no Finish is proposed before the Start is applied
  (they are refused in ASSIGNED), and a run whose Start finds the fence gone stops.
- Checkpoints in the background: one in flight, newer ones coalesced (the newest is
  proposed next). A checkpoint never counts keys not yet written, so a new owner resumes at
  or before the last key written: keys past the newest committed checkpoint are written
  again (cache fills are idempotent), never skipped.
- Finish after the slot: the slot takes its next task when its write ends, while the Finish
  (or Fail) commits, retried under the fence until the log takes it. Until then the task
  is RUNNING under that fence: a crash leaves it to be released and resumed from its
  checkpoint, and a second Finish is refused (SUCCEEDED is final).
- Heartbeats on time: a heartbeat goes every interval whether or not the last one
  committed. One forwarded to a leader that just died waits for its proposal timeout,
  longer than a lease; waiting for it got every node declared dead after a leader kill.
"""

ENTRIES = """\
Every entry is encoded, replicated, fsync'd, decoded and applied on every member, and a
1,000-key task cost four (MarkReady, Assign, Start, Finish), written in less time than
they took to commit on a quiet machine. A `Batch` holds several task or node commands in
one entry and applies each exactly as if it were alone at that index: its own fence
check, guard, effect and result (an Assign's fence is the entry's index, unique per task
because a task is assigned at most once per entry). So every guarantee above holds per
command, a log written before Batch existed replays unchanged, and the chaos audit checks
a Batch's commands one by one.

- A scheduling pass proposes its commands (expiries, deaths, releases, retries,
  admissions, assignments) in order, up to 1,000 to an entry: one entry a pass.
- An executor keeps one report entry in flight and proposes at most one per 20 ms; the
  Starts, checkpoints, Finishes and Fails its runs make meanwhile go together in the next
  (a slot's Finish and the next run's Start, made in the same moment, share one). A lone
  report goes as itself. Each entry is a round (replication, fsync on a majority, apply on
  every node), and the rounds rather than the entries cost the CPU: without the spacing a
  node on a fast log sent one round per Finish. A Finish held back delays its slot's
  refill by up to 20 ms, which the auto prefetch measures and covers. An entry in flight
  for 0.5 s no longer holds the next back: one lost with a dead leader waits for its
  proposal timeout, and the Finishes behind it must land inside their lease.

Measured in bench/scale.py (1M keys, 1,000-key tasks, load 2-3, interleaved with the
code before): 0.60-0.64 entries a task in all, heartbeats and the plan's parts included,
where there were 4.1; the slots wrote 86-89 % of the time from the first Start (65-69 %
before), and the cluster's CPU per key fell 5.6-6.6 -> 4.2-4.8 us (batching without the
spacing had left it where it was).
"""


def _doc(obj: object) -> str:
    return " ".join((inspect.getdoc(obj) or "").split())


def _fields(cls: type) -> str:
    return ", ".join(f"`{field.name}`" for field in dataclasses.fields(cls))


def render_markdown() -> str:
    """The lifecycle as Markdown, from the table, guards and command docstrings above."""
    names = [cls.__name__ for cls in TASK_COMMANDS]
    lines = [
        "# Task lifecycle",
        "",
        "Generated by `python -m warmd.statemachine.lifecycle --markdown` from",
        "`warmd/statemachine/lifecycle.py`; a test keeps this file equal to the rendering.",
        "",
        "## States",
        "",
        *(f"- **{state}**: {STATE_MEANINGS[state]}" for state in TaskState),
        "",
        "## Transitions",
        "",
        "A row is the task's state, a column the command; a cell is the next state, or `-`",
        "when the command is refused in that state. `SubmitTask` creates a task in "
        f"{INITIAL_STATE}.",
        "Start, ReportProgress, Finish and Fail carry a fence and are refused (and counted in",
        "`stale_fence_rejections`) unless it is the task's current fence.",
        "",
        "| state | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for state in TaskState:
        row = TRANSITIONS[state]
        cells = [str(row[cls]) if cls in row else "-" for cls in TASK_COMMANDS]
        lines.append(f"| {state} | " + " | ".join(cells) + " |")
    lines += ["", "## Task commands", ""]
    for cls in TASK_COMMANDS:
        guard, effect = GUARDS.get(cls), EFFECTS.get(cls)
        lines.append(f"- **{cls.__name__}**({_fields(cls)}): {_doc(cls)}")
        lines.append(f"  Proposed by {PROPOSERS[cls]}.")
        if guard is not None:
            lines.append(f"  Guard: {_doc(guard)}")
        if effect is not None:
            lines.append(f"  Effect: {_doc(effect)}")
    lines += ["", "## Node commands", "", "They change the node registry, never a task's state.", ""]
    lines += [f"- **{cls.__name__}**({_fields(cls)}): {_doc(cls)}" for cls in NODE_COMMANDS]
    lines += ["", "## Rule set commands", "", "They replace the replicated rule set "
              "(kept in snapshots), never a task's state.", "",
              f"- **SetRules**({_fields(SetRules)}): {_doc(SetRules)}"]
    lines += ["", "## Envelopes", "", f"- **Session**({_fields(Session)}): {_doc(Session)}",
              f"- **Batch**({_fields(Batch)}): {_doc(Batch)}", ""]
    lines += ["## Time", "", CLOCKS, "## Pipelining", "", PIPELINING,
              "## Entries per task", "", ENTRIES]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the Markdown rendering (the only option, `--markdown`)."""
    if argv != ["--markdown"]:
        print("usage: python -m warmd.statemachine.lifecycle --markdown", file=sys.stderr)
        return 2
    sys.stdout.write(render_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
