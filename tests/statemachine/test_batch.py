"""A Batch entry applies each of its commands as if alone at the entry's index."""

from __future__ import annotations

import pytest

from warmd.statemachine.commands import (
    Assign,
    Batch,
    Finish,
    InvalidCommand,
    MarkReady,
    RegisterNode,
    Release,
    Session,
    Start,
    SubmitTask,
    TaskSpec,
    decode_command,
    encode_command,
    stamp,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.snapshot import decode_snapshot, encode_snapshot
from warmd.statemachine.state import Applied, Rejected, batch_results
from warmd.statemachine.topics import Topic


def _ledger(tasks: int) -> Ledger:
    ledger = Ledger()
    ledger.append(RegisterNode(node_id=1, capacity=8, lease_ms=1_000, now_ms=0))
    for number in range(tasks):
        spec = TaskSpec(keys=(f"k{number}",), target="redis")
        ledger.append(SubmitTask(task_id=f"t{number}", spec=spec, now_ms=0))
    return ledger


def test_each_command_gets_its_own_result_and_assigns_share_the_entry_index() -> None:
    """Admissions and assignments in one entry: every Assign's fence is the entry's index,
    and a refused command (an unknown task) refuses only itself."""
    ledger = _ledger(2)
    batch = Batch(commands=(
        MarkReady(task_id="t0", now_ms=1), MarkReady(task_id="t1", now_ms=1),
        Assign(task_id="t0", node_id=1, now_ms=1), Assign(task_id="nope", node_id=1, now_ms=1),
        Assign(task_id="t1", node_id=1, now_ms=1)))
    index = ledger.next_index
    results = batch_results(ledger.append(batch), len(batch.commands))
    assert results[:3] == [Applied(None), Applied(None), Applied(index)]
    assert isinstance(results[3], Rejected) and "unknown task" in results[3].reason
    assert results[4] == Applied(index)
    assert [ledger.state.tasks[task_id].fence for task_id in ("t0", "t1")] == [index, index]
    assert ledger.machine.take_changed() >= {Topic.TASKS}


def test_reports_of_several_tasks_are_each_checked_under_their_own_fence() -> None:
    """One node's Finishes in one entry: the current fence finishes, a stale one is refused
    and counted, exactly as two separate entries would be."""
    ledger = _ledger(2)
    ledger.append_all([MarkReady(task_id="t0", now_ms=1), MarkReady(task_id="t1", now_ms=1)])
    fences = [ledger.append(Assign(task_id=task_id, node_id=1, now_ms=2)).value  # type: ignore[union-attr]
              for task_id in ("t0", "t1")]
    starts = Batch(commands=tuple(Start(task_id=f"t{n}", node_id=1, fence=fence, now_ms=3)
                                  for n, fence in enumerate(fences)))
    assert batch_results(ledger.append(starts), 2) == [Applied(None), Applied(None)]
    finishes = Batch(commands=(
        Finish(task_id="t0", node_id=1, fence=fences[0], now_ms=4),
        Finish(task_id="t1", node_id=1, fence=fences[1] - 1, now_ms=4)))
    results = batch_results(ledger.append(finishes), 2)
    assert results[0] == Applied(None)
    assert isinstance(results[1], Rejected) and "stale fence" in results[1].reason
    assert ledger.state.tasks["t0"].state == TaskState.SUCCEEDED
    assert ledger.state.tasks["t1"].state == TaskState.RUNNING
    assert ledger.state.stale_fence_rejections == 1


def test_a_release_and_reassignment_in_one_entry_fence_out_the_old_owner() -> None:
    """Release then Assign of the same task in one entry: the new fence is the entry's
    index, and the old owner's Finish under its fence is refused."""
    ledger = _ledger(1)
    ledger.append(RegisterNode(node_id=2, capacity=8, lease_ms=1_000, now_ms=0))
    ledger.append(MarkReady(task_id="t0", now_ms=1))
    old = ledger.append(Assign(task_id="t0", node_id=1, now_ms=1)).value  # type: ignore[union-attr]
    ledger.append(RegisterNode(node_id=1, capacity=0, lease_ms=1_000, now_ms=2))
    ledger.machine.state.nodes[1].alive = False  # as DeclareDead leaves it
    index = ledger.next_index
    results = batch_results(ledger.append(Batch(commands=(
        Release(task_id="t0", fence=old, now_ms=3, reason="owner lost"),
        Assign(task_id="t0", node_id=2, now_ms=3)))), 2)
    assert results == [Applied(None), Applied(index)]
    refused = ledger.append(Finish(task_id="t0", node_id=1, fence=old, now_ms=4))
    assert isinstance(refused, Rejected)


def test_a_batch_in_a_session_survives_a_snapshot() -> None:
    """The session keeps the batch's result (plain maps), so a snapshot round-trips it."""
    ledger = _ledger(1)
    batch = Batch(commands=(MarkReady(task_id="t0", now_ms=1),
                            Assign(task_id="t0", node_id=1, now_ms=1)))
    result = ledger.append(Session(client_id="c", sequence=1, command=batch))
    restored = decode_snapshot(encode_snapshot(ledger.state))
    assert restored.sessions["c"].result == result


@pytest.mark.parametrize("commands", [(), (Session(client_id="c", sequence=1, command=MarkReady(
    task_id="t0", now_ms=1)),)], ids=["empty", "nested-session"])
def test_empty_or_nested_batches_are_refused(commands: tuple[object, ...]) -> None:
    """A Batch holds 1.. task or node commands, never a session or another envelope."""
    with pytest.raises(InvalidCommand):
        Batch(commands=commands)  # type: ignore[arg-type]
    data = encode_command(Batch(commands=(MarkReady(task_id="t0", now_ms=1),)))
    assert decode_command(data) == Batch(commands=(MarkReady(task_id="t0", now_ms=1),))


def test_stamp_sets_leader_time_on_every_command_of_a_batch() -> None:
    """The leader's clock reaches each command inside a Batch, inside a session too."""
    batch = Batch(commands=(MarkReady(task_id="t0", now_ms=1), Assign(task_id="t0", node_id=1,
                                                                       now_ms=2)))
    stamped = stamp(Session(client_id="c", sequence=1, command=batch), 99)
    assert isinstance(stamped, Session) and isinstance(stamped.command, Batch)
    assert [command.now_ms for command in stamped.command.commands] == [99, 99]
