"""A snapshot's address book replaces the applier's: removed members do not come back."""

from __future__ import annotations

from warmd.config_table import Address
from warmd.raft.types import ConfState, Snapshot, SnapshotMeta
from warmd.runtime.node.applier import Applier
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.topics import Topic


def test_restore_replaces_the_address_book() -> None:
    source = Applier(StateMachine(), {1: Address("127.0.0.1", 7001), 2: Address("127.0.0.1", 7002)})
    snapshot = Snapshot(SnapshotMeta(index=5, term=1, conf_state=ConfState(voters=(1, 2))),
                        source.snapshot_data())
    target = Applier(StateMachine(), {1: Address("127.0.0.1", 7001),
                                      3: Address("127.0.0.1", 7003)})  # 3 was removed since
    changes = target.changes.subscribe({Topic.MEMBERSHIP, Topic.TASKS})
    target.restore(snapshot)
    assert target.addresses == source.addresses
    assert 3 not in target.addresses
    assert target.applied_index == 5
    assert changes.take() == {Topic.MEMBERSHIP, Topic.TASKS}
