"""Snapshots: restore(snapshot()) keeps the digest and the behaviour; bad snapshots are refused."""

from __future__ import annotations

import os
import subprocess
import sys

import msgpack
import pytest

from warmd.statemachine.commands import (
    Assign,
    Fail,
    Heartbeat,
    MarkReady,
    RegisterNode,
    ReportProgress,
    Session,
    Start,
    SubmitTask,
    TaskSpec,
    labels_from,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.snapshot import SNAPSHOT_VERSION, SnapshotError


def _busy_ledger() -> Ledger:
    """A ledger with nodes, tasks in several states, a stale-fence count and sessions."""
    ledger = Ledger()
    ledger.append(RegisterNode(node_id=2, capacity=3, lease_ms=900, now_ms=0,
                               labels=labels_from({"zone": "a"})))
    ledger.append(RegisterNode(node_id=1, capacity=3, lease_ms=900, now_ms=0))
    for name in ("b", "a", "c"):
        spec = TaskSpec(keys=(f"{name}1", f"{name}2"), target="redis", deadline_ms=10_000)
        ledger.append(Session(client_id=f"client-{name}", sequence=1,
                              command=SubmitTask(task_id=name, spec=spec, now_ms=0)))
        ledger.append(MarkReady(task_id=name, now_ms=1))
    fence = ledger.append(Assign(task_id="a", node_id=2, now_ms=2)).value
    ledger.append(Start(task_id="a", node_id=2, fence=fence, now_ms=3))
    ledger.append(ReportProgress(task_id="a", node_id=2, fence=fence, keys_done=1, now_ms=4))
    ledger.append(Start(task_id="a", node_id=2, fence=fence - 1, now_ms=5))  # stale
    ledger.append(Session(client_id="client-x", sequence=3, command=Heartbeat(node_id=5, now_ms=6)))
    return ledger


def test_round_trip_keeps_the_digest_and_every_field() -> None:
    """restore(snapshot()) gives the same digest and the same records."""
    source = _busy_ledger().machine
    copy = StateMachine()
    copy.restore(source.snapshot())
    assert copy.digest() == source.digest()
    assert copy.state.tasks == source.state.tasks
    assert copy.state.nodes == source.state.nodes
    assert copy.state.sessions == source.state.sessions
    assert copy.state.stale_fence_rejections == 1
    assert copy.state.counts() == source.state.counts()


def test_restored_machine_behaves_the_same() -> None:
    """A restored replica applying the same later entries ends with the same digest and results."""
    original = _busy_ledger()
    restored = Ledger(StateMachine())
    restored.machine.restore(original.machine.snapshot())
    restored.next_index = original.next_index
    later = [
        Session(client_id="client-a", sequence=1, command=Heartbeat(node_id=1, now_ms=7)),
        Fail(task_id="a", node_id=2, fence=original.state.tasks["a"].fence, now_ms=8, error="x"),
        Assign(task_id="b", node_id=1, now_ms=9),
    ]
    assert original.append_all(later) == restored.append_all(later)
    assert original.machine.digest() == restored.machine.digest()


def test_digest_differs_when_state_differs() -> None:
    """Two different states give different digests (the digest is not a constant)."""
    one, two = _busy_ledger(), _busy_ledger()
    two.append(Heartbeat(node_id=1, now_ms=50))
    assert one.machine.digest() != two.machine.digest()


def test_digest_ignores_insertion_order() -> None:
    """Replicas that built the same records in a different order agree on the digest."""
    first, second = Ledger(), Ledger()
    first.append_all([RegisterNode(node_id=n, capacity=1, lease_ms=5, now_ms=0) for n in (1, 2)])
    second.append_all([RegisterNode(node_id=n, capacity=1, lease_ms=5, now_ms=0) for n in (2, 1)])
    assert first.machine.digest() == second.machine.digest()


def _wire(snapshot: bytes) -> dict:
    return msgpack.unpackb(snapshot, raw=False, strict_map_key=False)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda wire: {**wire, "version": 99}, "snapshot version 99 is not supported"),
        (lambda wire: {key: value for key, value in wire.items() if key != "version"},
         "snapshot has no version field"),
        (lambda wire: {**wire, "tasks": [{"task_id": "t"}]}, "snapshot is malformed"),
        (lambda wire: {**wire, "applied_index": "7"}, "snapshot is malformed"),
        (lambda wire: {**wire, "tasks": [{**wire["tasks"][0], "attempt": "2"}]},
         "TaskRecord.attempt: expected an integer"),
        (lambda wire: {**wire, "nodes": [{**wire["nodes"][0], "alive": 1}]},
         "NodeRecord.alive: expected bool"),
        (lambda wire: {**wire, "tasks": [{**wire["tasks"][0], "state": "LOST"}]},
         "snapshot is malformed"),
    ],
)
def test_bad_snapshots_are_refused_and_change_nothing(mutate, message: str) -> None:
    """An unknown version or malformed snapshot raises SnapshotError and leaves the state alone."""
    machine = _busy_ledger().machine
    before = machine.digest()
    bad = msgpack.packb(mutate(_wire(machine.snapshot())), use_bin_type=True)
    with pytest.raises(SnapshotError, match=message):
        machine.restore(bad)
    assert machine.digest() == before


def test_garbage_bytes_are_refused() -> None:
    """Bytes that are not msgpack at all raise SnapshotError."""
    with pytest.raises(SnapshotError, match="not valid msgpack"):
        StateMachine().restore(b"\xc1\xc1")


def test_snapshot_carries_its_version() -> None:
    """The snapshot map names its format version."""
    assert _wire(StateMachine().snapshot())["version"] == SNAPSHOT_VERSION


REPLICA_SCRIPT = """
import random
from warmd.scheduler import SchedulerConfig, decide
from warmd.statemachine.commands import RegisterNode, SubmitTask, TaskSpec, labels_from
from warmd.statemachine.ledger import Ledger

ledger = Ledger()
for node_id in (3, 1, 2):
    labels = labels_from({f"l{node_id}": "x", "zone": str(node_id % 2)})
    ledger.append(RegisterNode(node_id=node_id, capacity=2, lease_ms=500, now_ms=0, labels=labels))
for n in range(30):
    spec = TaskSpec(keys=(f"k{n}", f"j{n}"), target="redis", rule=f"r{n % 4}", priority=n % 5,
                    required_labels=labels_from({"zone": str(n % 2)}))
    ledger.append(SubmitTask(task_id=f"task-{n * 7919 % 31}", spec=spec, now_ms=n))
for now_ms in range(0, 3000, 250):
    ledger.append_all(decide(ledger.state, now_ms, SchedulerConfig(), random.Random(now_ms)))
print(ledger.machine.digest())
"""


def test_replicas_in_different_processes_agree_on_the_digest() -> None:
    """Two processes with different string-hash seeds apply the same log to the same digest."""
    digests = set()
    for hash_seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", REPLICA_SCRIPT], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1 and len(digests.pop()) == 64
