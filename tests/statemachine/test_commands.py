"""Commands encode to tagged msgpack maps and back; anything malformed is refused clearly."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.statemachine.access import AddToken, RecordAudit, RevokeToken, hash_secret
from warmd.statemachine.commands import (
    COMMAND_TYPES,
    AddPlanPart,
    Assign,
    Batch,
    Cancel,
    DeclareDead,
    Drain,
    Expire,
    Fail,
    Finish,
    Heartbeat,
    InvalidCommand,
    MarkReady,
    MarkWaiting,
    OpenPlan,
    PlannedTask,
    RecordEffect,
    RegisterNode,
    Release,
    RemoveNode,
    ReportProgress,
    Rerun,
    Retry,
    Session,
    Skip,
    Start,
    SubmitPlan,
    SubmitTask,
    TaskSpec,
    decode_command,
    encode_command,
    labels_from,
    stamp,
)
from warmd.statemachine.replication import PeerProgress, ReportReplication
from warmd.statemachine.ruleset import SetRuleEnabled, SetRules
from warmd.statemachine.summaries import ReportSummary

SPEC = TaskSpec(
    keys=("user:1", "user:2"), target="redis-main", rule="users", priority=5,
    not_before_ms=10, deadline_ms=90_000, required_labels=labels_from({"zone": "a"}),
    max_attempts=4, gate="db-ready", gate_timeout_ms=5_000,
)
SAMPLES = [
    SubmitTask(task_id="t1", spec=SPEC, now_ms=1),
    MarkReady(task_id="t1", now_ms=2),
    MarkWaiting(task_id="t1", now_ms=2, reason="gate closed"),
    Skip(task_id="t1", now_ms=3, reason="gate timed out"),
    Assign(task_id="t1", node_id=2, now_ms=4),
    Start(task_id="t1", node_id=2, fence=7, now_ms=5),
    ReportProgress(task_id="t1", node_id=2, fence=7, keys_done=1, now_ms=6),
    Finish(task_id="t1", node_id=2, fence=7, now_ms=7, result="ok"),
    Fail(task_id="t1", node_id=2, fence=7, now_ms=7, error="timeout", retryable=False),
    Release(task_id="t1", fence=7, now_ms=8, reason="node 2 dead"),
    Cancel(task_id="t1", now_ms=9, reason="operator"),
    Retry(task_id="t1", not_before_ms=100, now_ms=9, manual=True),
    Rerun(task_id="t1", node_id=2, away=True, now_ms=9, actor="olga"),
    MarkReady(task_id="t1", now_ms=2, gate_detail="file: /ready exists"),
    Expire(task_id="t1", now_ms=90_000),
    RegisterNode(node_id=3, capacity=8, lease_ms=3_000, now_ms=1, labels=(("zone", "b"),)),
    Heartbeat(node_id=3, now_ms=2),
    Drain(node_id=3, now_ms=3, draining=False),
    DeclareDead(node_id=3, now_ms=9_000),
    RemoveNode(node_id=3, now_ms=9_001),
    SetRules.of((("a.rules", "rule a {\n    match GET /a\n}\n"),), now_ms=10),
    SetRules.of((("a.rules", "rule a {\n    match GET /a\n}\n"),), now_ms=10, actor="alice"),
    SetRuleEnabled(name="a", enabled=False, now_ms=10, actor="alice"),
    ReportReplication(node_id=1, term=3, commit_index=40, last_index=41, now_ms=17,
                      version="0.9", peers=(
                          PeerProgress(node_id=1, voter=True, match_index=41, last_contact_ms=0),
                          PeerProgress(node_id=4, voter=False, match_index=-1,
                                       last_contact_ms=-1))),
    Session(client_id="warmctl-1", sequence=4, command=Cancel(task_id="t1", now_ms=1)),
    ReportSummary(node_id=2, source="nginx", sequence=5, lines=10, malformed=1,
                  data=b"\x00summary", now_ms=11),
    SubmitPlan(plan_id="p1", trigger="cache-flush:redis", rules_version="", requests=2,
               tasks=(PlannedTask(task_id="p1-1", spec=SPEC),), now_ms=12, watch="redis",
               note="zero-config"),
    RecordEffect(plan_id="p1", cache="redis", before_hits=1, before_misses=9, after_hits=9,
                 after_misses=1, window_ms=60_000, now_ms=13),
    AddToken(name="ci", role="operator", secret_hash=hash_secret("s"), expires_ms=0,
             created_by="uid 0 (root)", now_ms=14),
    RevokeToken(name="ci", now_ms=15),
    RecordAudit(actor="ci", role="operator", token_name="ci", interface="api",
                source="127.0.0.1", action="task-cancel", subject="task_id=t1", result="ok",
                error="", now_ms=16),
    OpenPlan(plan_id="p2", trigger="manual", rules_version="", requests=4, parts=2, tasks=2,
             now_ms=14, watch="redis", note="big"),
    AddPlanPart(plan_id="p2", part=1, tasks=(PlannedTask(task_id="p2-1", spec=SPEC),), now_ms=15),
    Batch(commands=(Finish(task_id="t1", node_id=2, fence=5, now_ms=9, result="ok"),
                    DeclareDead(node_id=3, now_ms=9, heartbeats=4),
                    Assign(task_id="t2", node_id=2, now_ms=9))),
]


def test_samples_cover_every_command_type() -> None:
    """The round-trip samples include one of every command type, so none goes untested."""
    assert {type(sample).__name__ for sample in SAMPLES} == set(COMMAND_TYPES)


@pytest.mark.parametrize("command", SAMPLES, ids=lambda command: type(command).__name__)
def test_round_trip(command: object) -> None:
    """decode(encode(c)) == c, and the bytes are a map tagged with the class name."""
    data = encode_command(command)
    assert decode_command(data) == command
    assert msgpack.unpackb(data)["type"] == type(command).__name__


def _wire(**fields: object) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


START = {"type": "Start", "task_id": "t", "node_id": 1, "fence": 2, "now_ms": 3}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xc1", "not valid msgpack"),
        (msgpack.packb([1, 2]), "a command must be a map"),
        (_wire(task_id="t"), "needs a string 'type' tag"),
        (_wire(type="Launch"), "unknown command type 'Launch'"),
        (_wire(type="Start", task_id="t"), "Start: missing field(s) fence, node_id, now_ms"),
        (_wire(**START, colour="red"), "Start: unknown field(s) colour"),
        (_wire(**{**START, "fence": "2"}), "Start.fence: expected int, got str"),
        (_wire(**{**START, "fence": True}), "Start.fence: expected an integer, got a boolean"),
        (_wire(**{**START, "fence": 0}), "Start.fence: must be >= 1, got 0"),
        (_wire(**{**START, "task_id": ""}), "Start.task_id: must be 1..256 characters"),
        (_wire(**{**START, "now_ms": -1}), "Start.now_ms: must be >= 0"),
        (_wire(type="SubmitTask", task_id="t", now_ms=1, spec={"keys": [], "target": "r"}),
         "TaskSpec.keys: must hold 1..100000 keys, got 0"),
        (_wire(type="SubmitTask", task_id="t", now_ms=1, spec={"keys": "k", "target": "r"}),
         "TaskSpec.keys: expected a list, got str"),
        (_wire(type="SubmitTask", task_id="t", now_ms=1,
               spec={"keys": ["k"], "target": "r", "deadline_ms": 5, "not_before_ms": 9}),
         "TaskSpec.deadline_ms: must be after not_before_ms"),
        (_wire(type="SubmitTask", task_id="t", now_ms=1,
               spec={"keys": ["k"], "target": "r", "max_attempts": 0}),
         "TaskSpec.max_attempts: must be >= 1"),
        (_wire(type="RegisterNode", node_id=1, capacity=1, lease_ms=1, now_ms=0,
               labels=[["a", "1"], ["a", "2"]]), "RegisterNode.labels: duplicate label key"),
        (_wire(type="RegisterNode", node_id=1, capacity=1, lease_ms=1, now_ms=0, labels=[["a"]]),
         "RegisterNode.labels[0]: expected 2 items, got 1"),
        (_wire(type="Session", client_id="c", sequence=1,
               command={"type": "Session", "client_id": "c", "sequence": 2, "command": START}),
         "Session.command: a session envelope cannot hold another"),
        (_wire(type="Session", client_id="c", sequence=0, command=START),
         "Session.sequence: must be >= 1"),
        (_wire(**{**START, "fence": 2**64 - 1}), "does not fit in 64 signed bits"),
    ],
)
def test_malformed_commands_are_refused_with_a_clear_message(data: bytes, message: str) -> None:
    """Each kind of malformed command raises InvalidCommand naming the field and the problem."""
    with pytest.raises(InvalidCommand) as caught:
        decode_command(data)
    assert message in str(caught.value)


def test_python_callers_are_validated_too() -> None:
    """Constructing a bad command in code fails the same way as decoding one."""
    with pytest.raises(InvalidCommand, match=r"Assign\.node_id: must be >= 1"):
        Assign(task_id="t", node_id=0, now_ms=0)
    with pytest.raises(InvalidCommand, match="does not fit in 64 signed bits"):
        Heartbeat(node_id=1, now_ms=2**64)
    with pytest.raises(InvalidCommand, match="not a command"):
        encode_command(SPEC)  # type: ignore[arg-type]


def test_lists_become_tuples_and_labels_are_canonical() -> None:
    """Lists are accepted and stored as tuples; labels are sorted, so equal sets compare equal."""
    spec = TaskSpec(keys=["a"], target="r", required_labels=[("z", "1"), ("a", "2")])
    assert spec.keys == ("a",)
    assert spec.required_labels == (("a", "2"), ("z", "1"))
    assert spec == TaskSpec(keys=("a",), target="r", required_labels=labels_from({"z": "1", "a": "2"}))


def test_stamp_sets_leader_time_inside_envelopes() -> None:
    """stamp() replaces now_ms, also on the command inside a session envelope."""
    stamped = stamp(Session(client_id="c", sequence=1, command=Heartbeat(node_id=1, now_ms=5)), 99)
    assert stamped.command == Heartbeat(node_id=1, now_ms=99)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    """Arbitrary bytes either decode to a command or raise InvalidCommand, nothing else."""
    try:
        command = decode_command(data)
    except InvalidCommand:
        return
    assert decode_command(encode_command(command)) == command


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
), st.sampled_from(sorted(COMMAND_TYPES)))
def test_random_maps_with_a_valid_tag_never_escape(body: object, tag: str) -> None:
    """A map with a real tag but random fields is decoded or refused, never crashing."""
    fields = body if isinstance(body, dict) else {"task_id": body}
    with contextlib.suppress(InvalidCommand):
        decode_command(msgpack.packb({**fields, "type": tag}, use_bin_type=True))


def _through_init(wire: object) -> object:
    """The reference decoder: the class called with the wire fields (what `build` did
    before it set slots directly), the unknown and missing fields refused first."""
    if not isinstance(wire, dict) or wire.get("type") not in COMMAND_TYPES:
        raise InvalidCommand("not a tagged map")
    fields = {key: value for key, value in wire.items() if key != "type"}
    try:
        return COMMAND_TYPES[wire["type"]](**fields)
    except TypeError as error:  # an unknown or missing keyword
        raise InvalidCommand(str(error)) from None


_WIRE_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**64 - 1) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)


_FIELD_NAMES = {"task_id", "node_id", "now_ms", "fence", "sequence", "client_id", "colour",
                "keys_done", "result", "fsync_p99_us", "reason", "error", "type", "command"}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SAMPLES), st.dictionaries(
    st.sampled_from(sorted(_FIELD_NAMES - {"command"})),
    _WIRE_VALUES, max_size=3), st.lists(st.sampled_from(sorted(_FIELD_NAMES)), max_size=2))
def test_decoding_sets_the_same_fields_as_constructing(sample: object, changes: dict[str, object],
                                                      dropped: list[str]) -> None:
    """A sample's wire map with fields changed, added or dropped: the decoder (which sets
    slots without __init__) and the class's constructor accept the same maps and build
    equal commands, or both refuse."""
    wire = msgpack.unpackb(encode_command(sample))  # type: ignore[arg-type]
    wire.update({key: value for key, value in changes.items() if key != "type"})
    for key in dropped:
        wire.pop(key, None)
    try:
        expected = _through_init(wire)
    except InvalidCommand:
        with pytest.raises(InvalidCommand):
            decode_command(msgpack.packb(wire, use_bin_type=True))
        return
    assert decode_command(msgpack.packb(wire, use_bin_type=True)) == expected
