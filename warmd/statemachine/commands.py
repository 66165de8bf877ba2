"""Every command the replicated log can hold: frozen dataclasses and their tagged msgpack maps.

Construction validates each field (type and range), so a malformed command is refused
with `InvalidCommand` when it is built or decoded — before it is proposed — and
`apply()` only ever sees well-formed commands. Time enters only as `now_ms`, stamped
by the leader (`stamp()`); no command reads a clock.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import msgpack

from warmd.statemachine.access import AddToken, RecordAudit, RevokeToken  # access.py
from warmd.statemachine.replication import ReportReplication  # the leader's table (replication.py)
from warmd.statemachine.ruleset import SetRuleEnabled, SetRules  # the rule set (ruleset.py)
from warmd.statemachine.schema import (
    TEXT_CHARS_MAX,
    Validated,
    build,
    check_min,
    check_name,
    check_text,
    fail,
    from_map,
    to_wire,
)
from warmd.statemachine.schema import (
    InvalidCommand as InvalidCommand,  # re-exported: callers catch it from here
)
from warmd.statemachine.summaries import ReportSummary  # replicated summaries (summaries.py)

Labels = tuple[tuple[str, str], ...]

KEY_BYTES_MAX = 65_536  # one cache key or request line
KEYS_PER_TASK_MAX = 100_000
COMMAND_BYTES_MAX = 64 * 1024 * 1024


def labels_from(mapping: typing.Mapping[str, str]) -> Labels:
    """Return labels in their canonical form: (key, value) pairs sorted by key."""
    return tuple(sorted(mapping.items()))


_FROZEN = {"frozen": True, "slots": True, "kw_only": True}


@dataclass(**_FROZEN)
class TaskSpec(Validated):
    """What a task is: its work items, where they go, and the policy the scheduler applies."""

    WIRE_TAGGED: ClassVar[bool] = False  # always nested in SubmitTask or a snapshot

    keys: tuple[str, ...]  # cache keys or request lines; the checkpoint counts these
    target: str  # the cache or service the keys are warmed into
    rule: str = ""  # the rule that produced the task; per-rule concurrency limits key on it
    priority: int = 0  # higher is assigned first
    not_before_ms: int = 0  # the useful window opens
    deadline_ms: int | None = None  # the useful window closes: past it the task EXPIRES
    required_labels: Labels = ()  # a node must carry all of these labels to run it
    max_attempts: int = 3  # runs allowed, counting the first; retries stop after
    gate: str = ""  # readiness gate name; empty means ready as soon as the window opens
    gate_timeout_ms: int = 600_000  # how long a WAITING task waits before it is SKIPPED
    # How the executor loads each key (see warmd/runtime/execute/task_runner.py): "" writes the key
    # itself (tests, chaos), "replay" GETs each request line from the http cache `target`,
    # "fetch" GETs `loader_url` (with {path}) and writes the body under the matching
    # `cache_keys` entry into `target`, "plugin:NAME" calls a loader plugin.
    loader: str = ""
    loader_url: str = ""
    cache_keys: tuple[str, ...] = ()  # empty, or one cache key per entry of `keys`
    ttl_s: int = 0  # 0: the executor's default TTL
    ttl_jitter_permille: int = 100  # TTLs spread over [ttl * (1 - this / 1000), ttl]
    rate_per_s: int = 0  # hard cap on origin requests per second for this task (0: none)
    concurrency: int = 0  # most origin requests in flight for this task (0: adaptive default)
    # The rule's `slo pNN LATENCY`: origin latency objective (0: none) and its percentile
    # in permille (990 for p99); the origin limiter backs off when the objective is missed.
    slo_latency_ms: int = 0
    slo_permille: int = 0
    plan_id: str = ""  # the plan that made the task ("" for tasks submitted by hand)
    rules_version: str = ""  # the rule set the plan used ("" zero-config or by hand)
    value: str = ""  # what a loader-less task writes for every key ("": the task id)

    def _check_values(self) -> None:
        check_text("TaskSpec.value", self.value)
        if self.cache_keys and len(self.cache_keys) != len(self.keys):
            fail("TaskSpec.cache_keys", "must be empty or hold one cache key per key")
        for name in ("ttl_s", "rate_per_s", "concurrency", "ttl_jitter_permille",
                     "slo_latency_ms", "slo_permille"):
            check_min(f"TaskSpec.{name}", getattr(self, name), 0)
        if self.ttl_jitter_permille >= 1000:
            fail("TaskSpec.ttl_jitter_permille", "must be below 1000 (a TTL never reaches 0)")
        check_text("TaskSpec.loader_url", self.loader_url)
        if not 1 <= len(self.keys) <= KEYS_PER_TASK_MAX:
            fail("TaskSpec.keys", f"must hold 1..{KEYS_PER_TASK_MAX} keys, got {len(self.keys)}")
        lengths = tuple(map(len, self.keys))  # in C: up to 100,000 keys, checked on every decode
        if min(lengths) < 1 or max(lengths) > KEY_BYTES_MAX:
            fail("TaskSpec.keys", f"each key must be 1..{KEY_BYTES_MAX} characters")
        check_min("TaskSpec.max_attempts", self.max_attempts, 1)
        check_min("TaskSpec.gate_timeout_ms", self.gate_timeout_ms, 1)
        if self.deadline_ms is not None and self.deadline_ms <= self.not_before_ms:
            fail("TaskSpec.deadline_ms", "must be after not_before_ms")
        _canonical_labels(self, "required_labels")


def _canonical_labels(owner: object, name: str) -> None:
    """Check labels and store them sorted by key, so equal label sets compare equal."""
    where = f"{type(owner).__name__}.{name}"
    labels = tuple(sorted(getattr(owner, name)))
    object.__setattr__(owner, name, labels)
    keys = [key for key, _ in labels]
    if len(set(keys)) != len(keys):
        fail(where, "duplicate label key")
    for key, value in labels:
        check_name(where, key)
        if len(value) > TEXT_CHARS_MAX:
            fail(where, f"label value longer than {TEXT_CHARS_MAX}")


# ---- task commands -------------------------------------------------------------------------


@dataclass(**_FROZEN)
class SubmitTask(Validated):
    """Create a task in PENDING. Applied value: the task id."""

    task_id: str
    spec: TaskSpec
    now_ms: int


@dataclass(**_FROZEN)
class MarkReady(Validated):
    """The task may run: its window is open and its readiness gate (if any) passed;
    `gate_detail` is what the gate's checks answered (kept among the task's notes)."""

    task_id: str
    now_ms: int
    gate_detail: str = ""

    def _check_values(self) -> None:
        check_text("MarkReady.gate_detail", self.gate_detail)


@dataclass(**_FROZEN)
class MarkWaiting(Validated):
    """The task's readiness gate is not yet satisfied; it waits, up to its gate timeout."""

    task_id: str
    now_ms: int
    reason: str = ""

    def _check_values(self) -> None:
        check_text("MarkWaiting.reason", self.reason)


@dataclass(**_FROZEN)
class Skip(Validated):
    """Give up on the task before it runs (its gate never opened); SKIPPED is final."""

    task_id: str
    now_ms: int
    reason: str

    def _check_values(self) -> None:
        check_text("Skip.reason", self.reason)


@dataclass(**_FROZEN)
class Assign(Validated):
    """Give the task to a node. The fence is this entry's log index. Applied value: the fence."""

    task_id: str
    node_id: int
    now_ms: int


@dataclass(**_FROZEN)
class Start(Validated):
    """The assigned node begins the task; refused past the deadline (never run late)."""

    task_id: str
    node_id: int
    fence: int
    now_ms: int


@dataclass(**_FROZEN)
class ReportProgress(Validated):
    """Checkpoint: `keys_done` of the task's keys are warmed; a new owner resumes from here."""

    task_id: str
    node_id: int
    fence: int
    keys_done: int
    now_ms: int


@dataclass(**_FROZEN)
class Finish(Validated):
    """The task succeeded; SUCCEEDED is final."""

    task_id: str
    node_id: int
    fence: int
    now_ms: int
    result: str = ""

    def _check_values(self) -> None:
        check_text("Finish.result", self.result)


@dataclass(**_FROZEN)
class Fail(Validated):
    """The attempt failed; `retryable` says whether another attempt could succeed."""

    task_id: str
    node_id: int
    fence: int
    now_ms: int
    error: str
    retryable: bool = True

    def _check_values(self) -> None:
        check_text("Fail.error", self.error)


@dataclass(**_FROZEN)
class Release(Validated):
    """Take the task back from an owner that is dead or removed; it returns to READY."""

    task_id: str
    fence: int
    now_ms: int
    reason: str = ""

    def _check_values(self) -> None:
        check_text("Release.reason", self.reason)


@dataclass(**_FROZEN)
class Cancel(Validated):
    """Stop the task for good (operator request); CANCELLED is final."""

    task_id: str
    now_ms: int
    reason: str = ""

    def _check_values(self) -> None:
        check_text("Cancel.reason", self.reason)


@dataclass(**_FROZEN)
class Retry(Validated):
    """Send a FAILED task back to PENDING, not to be made ready before `not_before_ms`.

    The leader draws the backoff (with jitter) and stamps it here, so every replica
    agrees. `manual` retries (an operator's) ignore the attempt limit.
    """

    task_id: str
    not_before_ms: int
    now_ms: int
    manual: bool = False


@dataclass(**_FROZEN)
class Rerun(Validated):
    """An operator's new attempt of a FAILED task, pinned to `node_id` (away=False) or kept
    off it (away=True) for the rest of the task's life; the scheduler and Assign honour it."""

    task_id: str
    node_id: int
    away: bool
    now_ms: int
    actor: str = ""

    def _check_values(self) -> None:
        check_min("Rerun.node_id", self.node_id, 1)
        check_text("Rerun.actor", self.actor)


@dataclass(**_FROZEN)
class Expire(Validated):
    """The task's window closed before it finished; EXPIRED is final and recorded."""

    task_id: str
    now_ms: int


# ---- node commands -------------------------------------------------------------------------


@dataclass(**_FROZEN)
class RegisterNode(Validated):
    """A node joins (or rejoins) the executor pool with its capacity, labels and lease."""

    node_id: int
    capacity: int  # tasks it may hold: running, or assigned ahead of a free slot
    lease_ms: int  # silence longer than this makes it dead
    now_ms: int
    labels: Labels = ()

    def _check_values(self) -> None:
        check_min("RegisterNode.capacity", self.capacity, 0)
        check_min("RegisterNode.lease_ms", self.lease_ms, 1)
        _canonical_labels(self, "labels")


@dataclass(**_FROZEN)
class Heartbeat(Validated):
    """A node is alive; a node declared dead comes back to life (its old fences stay stale).

    `fsync_p99_us` is the node's WAL fsync p99 since it started (-1: none yet), carried so
    that every node's console shows every peer's, with the heartbeat's age."""

    WIRE_OMITTED_AT_DEFAULT: ClassVar[frozenset[str]] = frozenset({"fsync_p99_us"})

    node_id: int
    now_ms: int
    fsync_p99_us: int = -1

    def _check_values(self) -> None:
        check_min("Heartbeat.fsync_p99_us", self.fsync_p99_us, -1)


@dataclass(**_FROZEN)
class Drain(Validated):
    """Stop (or, with draining=False, resume) giving new tasks to a node; running ones finish."""

    node_id: int
    now_ms: int
    draining: bool = True


@dataclass(**_FROZEN)
class DeclareDead(Validated):
    """The node missed its heartbeats past its lease; its tasks may be released.

    `heartbeats` is the node's heartbeat count the leader judged it silent on: refused if a
    heartbeat was applied since, so the judgement rests on the leader's own clock and never
    on the time a node stamped (-1: an entry from before the count, judged on the stamps)."""

    node_id: int
    now_ms: int
    heartbeats: int = -1


@dataclass(**_FROZEN)
class RemoveNode(Validated):
    """Forget a node; tasks it still owned may be released."""

    node_id: int
    now_ms: int


# ---- plans (records in plans.py) ----------------------------------------------------------

TASKS_PER_PLAN_MAX = 10_000


@dataclass(**_FROZEN)
class PlannedTask(Validated):
    """One task of a plan: its id and its spec."""

    WIRE_TAGGED: ClassVar[bool] = False

    task_id: str
    spec: TaskSpec


@dataclass(**_FROZEN)
class SubmitPlan(Validated):
    """Create a plan's tasks (all PENDING) at once; applied value: the plan id.

    trigger: why it was made: "schedule", "every:<rule>", "cron:<rule>",
    "cache-flush:<cache>", "cache-restart:<cache>", "gate-ready:<gate>", "new-rules",
    "manual". rules_version: the committed rule set it used ("" with no rules: zero-config).
    requests: how many predicted requests the plan holds across its tasks. note: a word for
    operators (e.g. why a plan is empty).
    """

    plan_id: str
    trigger: str
    rules_version: str
    requests: int
    tasks: tuple[PlannedTask, ...]
    now_ms: int
    watch: str = ""  # the cache whose hit rate shows the plan's effect ("" none)
    note: str = ""

    def _check_values(self) -> None:
        check_name("SubmitPlan.plan_id", self.plan_id)
        check_name("SubmitPlan.trigger", self.trigger)
        check_text("SubmitPlan.note", self.note)
        check_min("SubmitPlan.requests", self.requests, 0)
        if len(self.tasks) > TASKS_PER_PLAN_MAX:
            fail("SubmitPlan.tasks", f"at most {TASKS_PER_PLAN_MAX} tasks, got {len(self.tasks)}")
        ids = [task.task_id for task in self.tasks]
        if len(set(ids)) != len(ids):
            fail("SubmitPlan.tasks", "two tasks have the same id")


@dataclass(**_FROZEN)
class OpenPlan(Validated):
    """The header of a plan too big for one entry: its tasks follow in `parts` AddPlanPart
    entries (see plan_parts.py) and are created, all at once, when the last part applies.
    Applied value: the plan id. Fields as in SubmitPlan; `tasks` counts the tasks to come."""

    plan_id: str
    trigger: str
    rules_version: str
    requests: int
    parts: int
    tasks: int
    now_ms: int
    watch: str = ""
    note: str = ""

    def _check_values(self) -> None:
        check_name("OpenPlan.plan_id", self.plan_id)
        check_name("OpenPlan.trigger", self.trigger)
        check_text("OpenPlan.note", self.note)
        check_min("OpenPlan.requests", self.requests, 0)
        check_min("OpenPlan.parts", self.parts, 1)
        check_min("OpenPlan.tasks", self.tasks, 1)
        if self.tasks > TASKS_PER_PLAN_MAX or self.parts > self.tasks:
            fail("OpenPlan.tasks", f"must be parts..{TASKS_PER_PLAN_MAX}, got {self.tasks} "
                                   f"in {self.parts} parts")


@dataclass(**_FROZEN)
class AddPlanPart(Validated):
    """Part `part` (0-based, in order) of an opened plan's tasks. Applied value: the part
    number, or the plan id for the last part, which creates every task of the plan."""

    plan_id: str
    part: int
    tasks: tuple[PlannedTask, ...]
    now_ms: int

    def _check_values(self) -> None:
        check_name("AddPlanPart.plan_id", self.plan_id)
        check_min("AddPlanPart.part", self.part, 0)
        if not 1 <= len(self.tasks) <= TASKS_PER_PLAN_MAX:
            fail("AddPlanPart.tasks", f"must hold 1..{TASKS_PER_PLAN_MAX} tasks")


@dataclass(**_FROZEN)
class RecordEffect(Validated):
    """The hit rate of the plan's watched cache before the trigger and after the warm-up.

    Counts are server-counter deltas over `window_ms` (warmd's own reads subtracted).
    Applied value: None. A second report for the same plan replaces the first.
    """

    plan_id: str
    cache: str
    before_hits: int
    before_misses: int
    after_hits: int
    after_misses: int
    window_ms: int
    now_ms: int

    def _check_values(self) -> None:
        check_name("RecordEffect.plan_id", self.plan_id)
        check_name("RecordEffect.cache", self.cache)
        for name in ("before_hits", "before_misses", "after_hits", "after_misses", "window_ms"):
            check_min(f"RecordEffect.{name}", getattr(self, name), 0)



# ---- the client-session envelope -----------------------------------------------------------


@dataclass(**_FROZEN)
class Session(Validated):
    """Apply `command` once per (client_id, sequence): a retry gets the first result back."""

    client_id: str
    sequence: int
    command: Command

    def _check_values(self) -> None:
        check_min("Session.sequence", self.sequence, 1)
        if isinstance(self.command, Session):
            fail("Session.command", "a session envelope cannot hold another")


BATCH_COMMANDS_MAX = 2_000  # a scheduling pass proposes at most ~2,000 commands (~150 KB)


@dataclass(**_FROZEN)
class Batch(Validated):
    """Several task or node commands in one log entry, applied in order, each exactly as
    if it were alone at this entry's index (its own guards, fences and result; an Assign's
    fence is this entry's index). Applied value: each command's result, in order
    (`batch_results`). One entry instead of one per command: a scheduling pass's admissions
    and assignments, or the reports an executor has ready at once."""

    commands: tuple[BatchedCommand, ...]

    def _check_values(self) -> None:
        if not 1 <= len(self.commands) <= BATCH_COMMANDS_MAX:
            fail("Batch.commands", f"must hold 1..{BATCH_COMMANDS_MAX} commands, "
                                   f"got {len(self.commands)}")


TaskCommand = Union[  # noqa: UP007 - a runtime Union, used for isinstance and type hints
    SubmitTask, MarkReady, MarkWaiting, Skip, Assign, Start, ReportProgress, Finish, Fail,
    Release, Cancel, Retry, Expire, Rerun,
]
NodeCommand = Union[RegisterNode, Heartbeat, Drain, DeclareDead, RemoveNode]  # noqa: UP007
BatchedCommand = Union[TaskCommand, NodeCommand]  # noqa: UP007 - what a Batch may hold
AccessCommand = Union[AddToken, RevokeToken, RecordAudit]  # noqa: UP007
Command = Union[  # noqa: UP007
    TaskCommand, NodeCommand, SetRules, ReportSummary, SubmitPlan, RecordEffect, AccessCommand,
    Session, OpenPlan, AddPlanPart, SetRuleEnabled, ReportReplication, Batch,
]

TASK_COMMANDS: tuple[type, ...] = typing.get_args(TaskCommand)
NODE_COMMANDS: tuple[type, ...] = typing.get_args(NodeCommand)
COMMAND_TYPES: dict[str, type[Command]] = {
    cls.__name__: cls
    for cls in (*TASK_COMMANDS, *NODE_COMMANDS, SetRules, ReportSummary, SubmitPlan, RecordEffect,
                *typing.get_args(AccessCommand), Session, OpenPlan, AddPlanPart, SetRuleEnabled,
                ReportReplication, Batch)
}
_COMMAND_CLASSES = tuple(COMMAND_TYPES.values())
FENCED_COMMANDS = (Start, ReportProgress, Finish, Fail)


def stamp(command: Command, now_ms: int) -> Command:
    """Return `command` with the leader's clock in `now_ms` (inside envelopes too)."""
    if isinstance(command, Session):
        return dataclasses.replace(command, command=stamp(command.command, now_ms))
    if isinstance(command, Batch):
        return Batch(commands=tuple(dataclasses.replace(each, now_ms=now_ms)
                                    for each in command.commands))
    return dataclasses.replace(command, now_ms=now_ms)


# ---- wire form -----------------------------------------------------------------------------


def command_to_wire(command: Command | TaskSpec) -> Any:
    """The command (or spec) as plain msgpack-able maps and lists; snapshots reuse it."""
    return to_wire(command)


def command_from_wire(wire: Any) -> Command:
    """Inverse of command_to_wire. Raises: InvalidCommand."""
    return from_map(wire, "command", COMMAND_TYPES)


def spec_from_wire(wire: Any) -> TaskSpec:
    """Inverse of command_to_wire for a TaskSpec. Raises: InvalidCommand."""
    return build(TaskSpec, wire, "TaskSpec")


def encode_command(command: Command) -> bytes:
    """Encode a command as a tagged msgpack map: {"type": "Start", "task_id": ..., ...}."""
    if not isinstance(command, _COMMAND_CLASSES):
        raise InvalidCommand(f"not a command: {type(command).__name__}")
    return msgpack.packb(to_wire(command), use_bin_type=True)


def decode_command(data: bytes) -> Command:
    """Decode and validate a command. Raises: InvalidCommand, with what is wrong and where."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidCommand(f"command data must be bytes, got {type(data).__name__}")
    if len(data) > COMMAND_BYTES_MAX:
        raise InvalidCommand(f"command of {len(data)} bytes exceeds {COMMAND_BYTES_MAX}")
    try:
        wire = msgpack.unpackb(bytes(data), raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise InvalidCommand(f"command is not valid msgpack: {error}") from None
    try:
        return from_map(wire, "command", COMMAND_TYPES)
    except TypeError as error:  # e.g. an unhashable map key inside a field
        raise InvalidCommand(f"command is malformed: {error}") from None
