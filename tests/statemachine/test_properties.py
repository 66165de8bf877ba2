"""Random command sequences keep the state machine's invariants (hypothesis, seeded by it)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmd.statemachine.commands import (
    FENCED_COMMANDS,
    Assign,
    Cancel,
    DeclareDead,
    Drain,
    Expire,
    Fail,
    Finish,
    Heartbeat,
    MarkReady,
    MarkWaiting,
    RegisterNode,
    Release,
    RemoveNode,
    ReportProgress,
    Rerun,
    Retry,
    Session,
    Skip,
    Start,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.lifecycle import TERMINAL_STATES, TRANSITIONS, TaskState
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import ACTIVE_STATES, Applied, MachineState, Rejected
from warmd.testing.index_check import index_problems

TASK_IDS = ("t0", "t1", "t2", "t3", "t4", "t5")
GIVE_UP = {"Cancel", "Skip", "Expire"}
NODE_IDS = (1, 2, 3)
CAPACITY = 2
LEASE_MS = 2_000
KEYS = 5
UNASSIGNED = (TaskState.PENDING, TaskState.WAITING, TaskState.READY)


def _fence_for(draw, state: MachineState, task_id: str) -> int:
    task = state.tasks.get(task_id)
    current = task.fence if task and task.fence else 1
    return draw(st.sampled_from([current, current, current, max(1, current - 1), current + 3]))


def _owner_for(draw, state: MachineState, task_id: str) -> int:
    task = state.tasks.get(task_id)
    owner = task.owner if task and task.owner else 1
    return draw(st.sampled_from([owner, owner, owner, *NODE_IDS]))


def _choices(draw, task_id: str, node_id: int, spec: TaskSpec, fenced: dict, now_ms: int):
    """A maker per command name, so the test can aim at the commands the table allows."""
    fence = fenced["fence"]
    return {
        "SubmitTask": lambda: SubmitTask(task_id=task_id, spec=spec, now_ms=now_ms),
        "MarkReady": lambda: MarkReady(task_id=task_id, now_ms=now_ms),
        "MarkWaiting": lambda: MarkWaiting(task_id=task_id, now_ms=now_ms),
        "Skip": lambda: Skip(task_id=task_id, now_ms=now_ms, reason="gate"),
        "Assign": lambda: Assign(task_id=task_id, node_id=node_id, now_ms=now_ms),
        "Start": lambda: Start(**fenced),
        "ReportProgress": lambda: ReportProgress(**fenced, keys_done=draw(st.integers(0, KEYS + 1))),
        "Finish": lambda: Finish(**fenced),
        "Fail": lambda: Fail(**fenced, error="e", retryable=draw(st.booleans())),
        "Release": lambda: Release(task_id=task_id, fence=fence, now_ms=now_ms),
        "Cancel": lambda: Cancel(task_id=task_id, now_ms=now_ms),
        "Retry": lambda: Retry(task_id=task_id, not_before_ms=now_ms + 10, now_ms=now_ms,
                               manual=draw(st.booleans())),
        "Expire": lambda: Expire(task_id=task_id, now_ms=now_ms),
        "Rerun": lambda: Rerun(task_id=task_id, node_id=node_id, away=draw(st.booleans()),
                               now_ms=now_ms),
        "RegisterNode": lambda: RegisterNode(
            node_id=node_id, capacity=CAPACITY, lease_ms=LEASE_MS, now_ms=now_ms
        ),
        "Heartbeat": lambda: Heartbeat(node_id=node_id, now_ms=now_ms),
        "Drain": lambda: Drain(node_id=node_id, now_ms=now_ms, draining=draw(st.booleans())),
        "DeclareDead": lambda: DeclareDead(node_id=node_id, now_ms=now_ms),
        "RemoveNode": lambda: RemoveNode(node_id=node_id, now_ms=now_ms),
    }


@st.composite
def _command(draw, state: MachineState, now_ms: int):
    """One command: mostly one the task's state allows (so deep states are reached), else any."""
    live = sorted(task.task_id for task in state.tasks.values() if task.state not in TERMINAL_STATES)
    task_id = draw(st.sampled_from(live if live and draw(st.booleans()) else TASK_IDS))
    node_id = draw(st.sampled_from(NODE_IDS))
    deadline = draw(st.sampled_from([None, None, now_ms + 100, now_ms + 5_000]))
    spec = TaskSpec(keys=tuple(f"{task_id}:{n}" for n in range(KEYS)), target="r",
                    deadline_ms=deadline, max_attempts=draw(st.integers(1, 3)))
    fenced = {"task_id": task_id, "node_id": _owner_for(draw, state, task_id),
              "fence": _fence_for(draw, state, task_id), "now_ms": now_ms}
    makers = _choices(draw, task_id, node_id, spec, fenced, now_ms)
    task = state.tasks.get(task_id)
    allowed = [cls.__name__ for cls in TRANSITIONS[task.state]] if task else ["SubmitTask"]
    onward = [name for name in allowed if name not in GIVE_UP]
    if onward and draw(st.integers(0, 9)) < 6:
        name = draw(st.sampled_from(onward))
    elif allowed and draw(st.booleans()):
        name = draw(st.sampled_from(allowed))
    else:
        name = draw(st.sampled_from(sorted(makers)))
    command = makers[name]()
    if draw(st.integers(0, 9)) == 0:
        command = Session(client_id="c", sequence=draw(st.integers(1, 4)), command=command)
    return command


def _check_invariants(state: MachineState) -> None:
    for task_state, members in state.by_state.items():
        for task_id in members:
            assert state.tasks[task_id].state == task_state
    assert sum(len(members) for members in state.by_state.values()) == len(state.tasks)
    for task in state.tasks.values():
        if task.state in ACTIVE_STATES:
            assert task.owner != 0 and 0 < task.fence <= state.applied_index
        if task.state in UNASSIGNED:
            assert (task.owner, task.fence) == (0, 0)
        assert 0 <= task.checkpoint <= len(task.spec.keys)
        if task.state == TaskState.SUCCEEDED:
            assert task.checkpoint == len(task.spec.keys)
        assert task.attempt <= task.spec.max_attempts or task.attempt > 1
    for node in state.nodes.values():
        assert state.load(node.node_id) <= node.capacity
    assert index_problems(state) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_sequences_keep_invariants(data: st.DataObject) -> None:
    """Under random commands: one state per task, active tasks have an owner and a live fence,
    terminal states never change, no stale fenced report is accepted, and counts add up."""
    ledger, shadow = Ledger(), Ledger()
    for node_id in NODE_IDS:
        register = RegisterNode(node_id=node_id, capacity=CAPACITY, lease_ms=LEASE_MS, now_ms=0)
        ledger.append(register)
        shadow.append(register)
    now_ms = 0
    terminal_seen: dict[str, TaskState] = {}
    stale_expected = 0
    for _ in range(data.draw(st.integers(10, 60))):
        now_ms += data.draw(st.sampled_from([0, 1, 10, 30, 30, 30, 2_500]))
        if data.draw(st.booleans()):  # executors heartbeat often; most steps see live nodes
            command = Heartbeat(node_id=data.draw(st.sampled_from(NODE_IDS)), now_ms=now_ms)
            assert ledger.append(command) == shadow.append(command)
        command = data.draw(_command(ledger.state, now_ms))
        inner = command.command if isinstance(command, Session) else command
        before = ledger.state.tasks.get(getattr(inner, "task_id", ""))
        fence_before = before.fence if before else None
        session = ledger.state.sessions.get("c")
        replayed = isinstance(command, Session) and session and command.sequence <= session.sequence
        result = ledger.append(command)
        assert shadow.append(command) == result  # determinism: same entries, same results
        if isinstance(inner, FENCED_COMMANDS) and before is not None and not replayed:
            if isinstance(result, Applied):
                assert inner.fence == fence_before, "a stale fenced report was accepted"
            elif isinstance(result, Rejected) and result.reason.startswith("stale fence"):
                stale_expected += 1
        _check_invariants(ledger.state)
        for task_id, final in terminal_seen.items():
            assert ledger.state.tasks[task_id].state == final
        terminal_seen.update(
            {task.task_id: task.state for task in ledger.state.tasks.values()
             if task.state in TERMINAL_STATES}
        )
    assert ledger.state.stale_fence_rejections == stale_expected
    assert ledger.machine.digest() == shadow.machine.digest()
    restored = StateMachine()
    restored.restore(ledger.machine.snapshot())
    assert restored.digest() == ledger.machine.digest()
    assert index_problems(restored.state) == []
