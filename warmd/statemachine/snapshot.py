"""The versioned snapshot format of the replicated state: a msgpack map with `version`.

Encoding is canonical (tasks and nodes sorted by id), so equal states give equal bytes
and `digest()` can compare replicas. A snapshot of an unknown version, or a malformed
one, raises `SnapshotError` and restores nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, TypeVar

import msgpack

from warmd.errors import WarmdError
from warmd.statemachine.access import AuditRecord, TokenRecord
from warmd.statemachine.commands import (
    InvalidCommand,
    OpenPlan,
    PlannedTask,
    command_from_wire,
    command_to_wire,
    spec_from_wire,
)
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.plan_parts import StagedPlan
from warmd.statemachine.plans import PlanEffect, PlanRecord
from warmd.statemachine.replication import ReplicationRecord, ReportReplication
from warmd.statemachine.ruleset import DisabledRule, RuleSetRecord, RuleVersion, SetRules
from warmd.statemachine.schema import build, to_wire
from warmd.statemachine.state import (
    AttemptRecord,
    MachineState,
    NodeRecord,
    SessionRecord,
    TaskNote,
    TaskRecord,
    result_from_wire,
    result_to_wire,
)
from warmd.statemachine.summaries import SummaryRecord

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")

SNAPSHOT_VERSION = 1
DECODE_BATCH = 200  # records decoded between two yields of decode_snapshot_steps
READ_SIZE = 256 * 1024
_LISTS = frozenset({"tasks", "nodes", "sessions", "summaries", "plans", "staged_plans", "tokens",
                    "audit"})
SUPPORTED_VERSIONS = (1,)


class SnapshotError(WarmdError):
    """A snapshot cannot be restored: unknown version or malformed contents."""


def encode_snapshot(state: MachineState) -> bytes:
    """The state as snapshot bytes of version SNAPSHOT_VERSION."""
    wire = {
        "version": SNAPSHOT_VERSION,
        "applied_index": state.applied_index,
        "stale_fence_rejections": state.stale_fence_rejections,
        "tasks": [_task_to_wire(state.tasks[task_id]) for task_id in sorted(state.tasks)],
        "nodes": [_fields_to_wire(state.nodes[node_id]) for node_id in sorted(state.nodes)],
        # Session order is eviction order (least recently used first), so it is kept.
        "sessions": [_session_to_wire(session) for session in state.sessions.values()],
    }
    if state.finished_pruned:  # absent until the first prune: older snapshots stay equal
        wire["finished_pruned"] = state.finished_pruned
    if state.rules is not None:  # absent until the first SetRules: older snapshots stay valid
        wire["rules"] = _fields_to_wire(state.rules)
    if state.replication is not None:  # absent until a leader reported
        wire["replication"] = {"report": command_to_wire(state.replication.report),
                               "index": state.replication.index}
    if state.terms:  # absent until a command is applied with its term
        wire["terms"] = [list(start) for start in state.terms]
    if state.rule_history:  # absent until the first SetRules, like rules
        wire["rule_history"] = [_fields_to_wire(version) for version in state.rule_history]
    if state.disabled_rules:  # absent while every rule is on
        wire["disabled_rules"] = [_fields_to_wire(state.disabled_rules[name])
                                  for name in sorted(state.disabled_rules)]
    if state.summaries:  # absent when empty: older snapshots and digests stay the same
        wire["summaries"] = [_fields_to_wire(state.summaries[key]) for key in sorted(state.summaries)]
    if state.plans:  # in creation order: the oldest is dropped first
        wire["plans"] = [_plan_to_wire(plan) for plan in state.plans.values()]
    if state.staged_plans:  # absent when empty, like summaries
        wire["staged_plans"] = [_staged_to_wire(staged) for staged in state.staged_plans.values()]
    access = state.access
    if access.tokens:  # by name; hashes only (the secrets never reach the state)
        wire["tokens"] = [_fields_to_wire(access.tokens[name]) for name in sorted(access.tokens)]
    if access.audit:  # oldest first
        wire["audit"] = [_fields_to_wire(record) for record in access.audit]
    return msgpack.packb(wire, use_bin_type=True)


def decode_snapshot(data: bytes) -> MachineState:
    """Rebuild a state from snapshot bytes. Raises: SnapshotError, saying what is wrong."""
    steps = decode_snapshot_steps(data)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            state: MachineState = done.value
            return state


def decode_snapshot_steps(data: bytes | memoryview, batch: int = DECODE_BATCH
                          ) -> Generator[None, None, MachineState]:
    """`decode_snapshot` in steps: yields after every `batch` records so that the shell can
    let other work run while a big snapshot is restored; returns the state at the end.

    Raises: SnapshotError, saying what is wrong.
    """
    try:
        wire = yield from _read_wire(data, batch)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise SnapshotError(f"snapshot is not valid msgpack: {error}") from None
    if "version" not in wire:
        raise SnapshotError("snapshot has no version field")
    if wire["version"] not in SUPPORTED_VERSIONS:
        raise SnapshotError(
            f"snapshot version {wire['version']!r} is not supported "
            f"(this build reads versions {', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    try:
        return (yield from _state_from_wire(wire, batch))
    except (KeyError, TypeError, ValueError, InvalidCommand) as error:
        raise SnapshotError(f"snapshot is malformed: {type(error).__name__}: {error}") from None


def _read_wire(data: bytes | memoryview, batch: int) -> Generator[None, None, dict[str, Any]]:
    """The top-level map, its long lists read item by item (msgpack's streaming reader,
    fed a quarter MiB at a time rather than a copy of the whole snapshot at once)."""
    unpacker = msgpack.Unpacker(_ViewReader(data), read_size=READ_SIZE, raw=False,
                                strict_map_key=False, max_buffer_size=max(len(data), READ_SIZE))
    wire: dict[str, Any] = {}
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        if key not in _LISTS:
            wire[key] = unpacker.unpack()
            continue
        items = []
        for number in range(unpacker.read_array_header()):
            items.append(unpacker.unpack())
            if number % batch == batch - 1:
                yield
        wire[key] = items
    if unpacker.tell() != len(data):
        raise ValueError(f"{len(data) - unpacker.tell()} bytes of extra data after the state")
    return wire


class _ViewReader:
    """A file-like view of bytes in memory (io.BytesIO would copy a memoryview first)."""

    def __init__(self, data: bytes | memoryview) -> None:
        self._view = memoryview(data)
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._position + size
        chunk = bytes(self._view[self._position:end])
        self._position += len(chunk)
        return chunk


def _fields_to_wire(record: Any) -> dict[str, Any]:
    return {
        field.name: _plain(getattr(record, field.name)) for field in dataclasses.fields(record)
    }


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value):
        return _fields_to_wire(value)
    return value


def _task_to_wire(task: TaskRecord) -> dict[str, Any]:
    wire = _fields_to_wire(task)
    wire["spec"] = command_to_wire(task.spec)
    wire["state"] = task.state.value
    return wire


def _plan_to_wire(plan: PlanRecord) -> dict[str, Any]:
    wire = _fields_to_wire(plan)
    wire["effect"] = None if plan.effect is None else _fields_to_wire(plan.effect)
    if not plan.outcome:  # absent unless compacted: older snapshots and digests stay the same
        del wire["outcome"], wire["finished_ms"]
    return wire


def _staged_to_wire(staged: StagedPlan) -> dict[str, Any]:
    return {"header": command_to_wire(staged.header), "index": staged.index,
            "parts": staged.parts, "tasks": to_wire(tuple(staged.tasks))}


def _staged_from_wire(wire: dict[str, Any]) -> StagedPlan:
    header = command_from_wire(wire["header"])
    if not isinstance(header, OpenPlan):
        raise TypeError(f"a staged plan's header is a {type(header).__name__}, not an OpenPlan")
    tasks = [build(PlannedTask, task, "PlannedTask") for task in wire["tasks"]]
    return StagedPlan(header, _int(wire["index"]), tasks, _int(wire["parts"]))


def _session_to_wire(session: SessionRecord) -> dict[str, Any]:
    return {
        "client_id": session.client_id, "sequence": session.sequence,
        "last_index": session.last_index, "result": result_to_wire(session.result),
    }


def _state_from_wire(wire: dict[str, Any], batch: int) -> Generator[None, None, MachineState]:
    state = MachineState(
        applied_index=_int(wire["applied_index"]),
        stale_fence_rejections=_int(wire["stale_fence_rejections"]),
        finished_pruned=_int(wire.get("finished_pruned", 0)),
    )
    tasks = wire["tasks"]
    for number, task_wire in enumerate(tasks):
        tasks[number] = None  # freed as we go: dropping them all at the end stalls too
        fields = dict(task_wire)
        fields["spec"] = spec_from_wire(fields["spec"])
        fields["state"] = TaskState(fields["state"])
        fields["attempts"] = tuple(_checked(AttemptRecord(**attempt))
                                   for attempt in fields.get("attempts", ()))
        fields["notes"] = tuple(_checked(TaskNote(**note)) for note in fields.get("notes", ()))
        state.add(_checked(TaskRecord(**fields)))
        if number % batch == batch - 1:
            yield
    for node_wire in wire["nodes"]:
        fields = dict(node_wire)
        fields["labels"] = tuple((str(key), str(value)) for key, value in fields["labels"])
        node = _checked(NodeRecord(**fields))
        state.nodes[node.node_id] = node
    for session_wire in wire["sessions"]:
        session = SessionRecord(
            client_id=str(session_wire["client_id"]),
            sequence=_int(session_wire["sequence"]),
            result=result_from_wire(session_wire["result"]),
            last_index=_int(session_wire["last_index"]),
        )
        state.sessions[session.client_id] = session
    if wire.get("rules") is not None:
        state.rules = _rules_from_wire(wire["rules"])
    if wire.get("replication") is not None:
        report = command_from_wire(wire["replication"]["report"])
        if not isinstance(report, ReportReplication):
            raise TypeError(f"a replication report is a {type(report).__name__}")
        state.replication = ReplicationRecord(report, _int(wire["replication"]["index"]))
    state.terms = [(_int(index), _int(term)) for index, term in wire.get("terms", ())]
    for version_wire in wire.get("rule_history", ()):
        fields = dict(version_wire)
        for name in ("file_names", "texts"):
            fields[name] = tuple(str(item) for item in fields[name])
        state.rule_history.append(_checked(RuleVersion(**fields)))
    for disabled_wire in wire.get("disabled_rules", ()):
        disabled = _checked(DisabledRule(**disabled_wire))
        state.disabled_rules[disabled.name] = disabled
    for summary_wire in wire.get("summaries", ()):
        record = _checked(SummaryRecord(**summary_wire))
        if not isinstance(record.data, bytes):
            raise TypeError("SummaryRecord.data: expected bytes")
        state.summaries[record.key] = record
    for plan_wire in wire.get("plans", ()):
        plan = _plan_from_wire(plan_wire)
        state.plans[plan.plan_id] = plan
        state.index_plan(plan)
    for staged_wire in wire.get("staged_plans", ()):
        staged = _staged_from_wire(staged_wire)
        state.staged_plans[staged.header.plan_id] = staged
    for token_wire in wire.get("tokens", ()):
        token = _checked(TokenRecord(**token_wire))
        state.access.tokens[token.name] = token
    state.access.audit.extend(_checked(AuditRecord(**record)) for record in wire.get("audit", ()))
    return state


def _plan_from_wire(wire: dict[str, Any]) -> PlanRecord:
    fields = dict(wire)
    fields["task_ids"] = tuple(str(task_id) for task_id in fields["task_ids"])
    fields["outcome"] = tuple((str(name), _int(count)) for name, count in fields.get("outcome", ()))
    effect = fields.pop("effect")
    plan = _checked(PlanRecord(**fields))
    if effect is not None:
        plan.effect = _checked(PlanEffect(**effect))
    return plan


def _rules_from_wire(wire: dict[str, Any]) -> RuleSetRecord:
    """The committed rule set, its version re-checked against its texts."""
    command = SetRules(version=wire["version"], file_names=wire["file_names"],
                       texts=wire["texts"], now_ms=_int(wire["set_ms"]))
    return RuleSetRecord(command.version, command.file_names, command.texts,
                         _int(wire["index"]), command.now_ms)


_SCALARS = {"int": int, "str": str, "bool": bool}


def _checked(record: D) -> D:
    """Refuse a record whose scalar fields have the wrong type (a hand-edited or foreign file)."""
    for field in dataclasses.fields(record):
        expected = _SCALARS.get(str(field.type))
        value = getattr(record, field.name)
        wrong_int = expected is int and (isinstance(value, bool) or not isinstance(value, int))
        if wrong_int or (expected is not None and not isinstance(value, expected)):
            name = "an integer" if expected is int else field.type
            raise TypeError(f"{type(record).__name__}.{field.name}: expected {name}")
    return record


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value
