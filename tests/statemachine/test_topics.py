"""Every command names what it changes, and the machine reports it only when applied."""

from __future__ import annotations

from warmd.statemachine.commands import (
    COMMAND_TYPES,
    Heartbeat,
    RegisterNode,
    Session,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.topics import EVERYTHING, TOPICS_OF, Topic


def test_every_command_type_has_topics() -> None:
    missing = [name for name, cls in COMMAND_TYPES.items()
               if cls is not Session and cls not in TOPICS_OF]
    assert missing == []


def test_applied_commands_report_their_topics_once() -> None:
    machine = StateMachine()
    machine.apply(1, RegisterNode(node_id=1, capacity=2, lease_ms=1000, now_ms=1))
    machine.apply(2, Heartbeat(node_id=1, now_ms=2))
    assert machine.take_changed() == {Topic.NODES, Topic.HEARTBEATS}
    assert machine.take_changed() == frozenset()


def test_refused_commands_change_nothing() -> None:
    machine = StateMachine()
    spec = TaskSpec(keys=("k",), target="redis://127.0.0.1:1")
    machine.apply(1, SubmitTask(task_id="t", spec=spec, now_ms=1))
    machine.take_changed()
    machine.apply(2, SubmitTask(task_id="t", spec=spec, now_ms=2))  # exists: refused
    machine.apply(3, Heartbeat(node_id=9, now_ms=3))  # unknown node: refused
    assert machine.take_changed() == frozenset()


def test_a_restore_changes_everything() -> None:
    machine = StateMachine()
    data = machine.snapshot()
    machine.restore(data)
    assert machine.take_changed() == EVERYTHING
