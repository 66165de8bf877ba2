"""A node's heartbeat carries its WAL fsync p99, so every node can show every peer's."""

from __future__ import annotations

from warmd.statemachine.commands import Heartbeat, RegisterNode, decode_command, encode_command
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.snapshot import decode_snapshot, encode_snapshot


def test_heartbeat_sets_the_fsync_p99_and_one_without_keeps_the_last() -> None:
    machine = StateMachine()
    machine.apply(1, RegisterNode(node_id=2, capacity=4, lease_ms=5_000, now_ms=0))
    assert machine.state.nodes[2].fsync_p99_us == -1
    machine.apply(2, Heartbeat(node_id=2, now_ms=10, fsync_p99_us=3_100))
    machine.apply(3, Heartbeat(node_id=2, now_ms=20))  # an older sender: no figure
    assert machine.state.nodes[2].fsync_p99_us == 3_100
    restored = decode_snapshot(encode_snapshot(machine.state))
    assert restored.nodes[2].fsync_p99_us == 3_100


def test_the_field_travels_and_defaults_when_absent() -> None:
    beat = Heartbeat(node_id=2, now_ms=10, fsync_p99_us=250)
    assert decode_command(encode_command(beat)) == beat
    bare = encode_command(Heartbeat(node_id=2, now_ms=10))
    assert b"fsync" not in bare, "left off the wire at its default: a bench's 100 bytes hold"
    assert decode_command(bare).fsync_p99_us == -1
