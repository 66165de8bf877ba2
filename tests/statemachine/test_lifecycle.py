"""Every (task state, command) pair against a literal table, and the rendered lifecycle doc."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from warmd.statemachine.commands import (
    Assign,
    Cancel,
    DeclareDead,
    Expire,
    Fail,
    Finish,
    MarkReady,
    MarkWaiting,
    RegisterNode,
    Release,
    ReportProgress,
    Rerun,
    Retry,
    Skip,
    Start,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.lifecycle import TERMINAL_STATES, TRANSITIONS, TaskState, render_markdown
from warmd.statemachine.state import Applied, Rejected

DOC = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"
DEADLINE_MS = 10_000
LEASE_MS = 1_000
TASK = "t1"

# Written out by hand (not derived from TRANSITIONS) so a change to the table must be
# made twice on purpose. Columns follow COMMAND_NAMES.
COMMAND_NAMES = [
    "SubmitTask", "MarkReady", "MarkWaiting", "Skip", "Assign", "Start", "ReportProgress",
    "Finish", "Fail", "Release", "Cancel", "Retry", "Expire", "Rerun",
]
EXPECTED = {
    "PENDING": "- READY WAITING SKIPPED - - - - - - CANCELLED - EXPIRED -",
    "WAITING": "- READY WAITING SKIPPED - - - - - - CANCELLED - EXPIRED -",
    "READY": "- - - - ASSIGNED - - - - - CANCELLED - EXPIRED -",
    "ASSIGNED": "- - - - - RUNNING - - FAILED READY CANCELLED - EXPIRED -",
    "RUNNING": "- - - - - - RUNNING SUCCEEDED FAILED READY CANCELLED - EXPIRED -",
    "SUCCEEDED": "- - - - - - - - - - - - - -",
    "FAILED": "- - - - - - - - - - CANCELLED PENDING EXPIRED PENDING",
    "CANCELLED": "- - - - - - - - - - - - - -",
    "EXPIRED": "- - - - - - - - - - - - - -",
    "SKIPPED": "- - - - - - - - - - - - - -",
}


def _spec() -> TaskSpec:
    return TaskSpec(keys=("k1", "k2", "k3"), target="redis", deadline_ms=DEADLINE_MS)


def _fence(ledger: Ledger) -> int:
    return ledger.state.tasks[TASK].fence


FENCED = {"Start", "ReportProgress", "Finish", "Fail"}


def _ledger_in(state: TaskState) -> Ledger:
    """A ledger with node 1 registered and task t1 driven into `state`."""
    ledger = Ledger()
    ledger.append(RegisterNode(node_id=1, capacity=4, lease_ms=LEASE_MS, now_ms=0))
    ledger.append(SubmitTask(task_id=TASK, spec=_spec(), now_ms=0))
    steps = {
        TaskState.PENDING: [],
        TaskState.WAITING: [lambda _: MarkWaiting(task_id=TASK, now_ms=10)],
        TaskState.READY: [lambda _: MarkReady(task_id=TASK, now_ms=10)],
        TaskState.CANCELLED: [lambda _: Cancel(task_id=TASK, now_ms=10)],
        TaskState.EXPIRED: [lambda _: Expire(task_id=TASK, now_ms=DEADLINE_MS)],
        TaskState.SKIPPED: [lambda _: Skip(task_id=TASK, now_ms=10, reason="gate closed")],
    }
    running = [
        lambda _: MarkReady(task_id=TASK, now_ms=10),
        lambda _: Assign(task_id=TASK, node_id=1, now_ms=10),
        lambda ledger: Start(task_id=TASK, node_id=1, fence=_fence(ledger), now_ms=10),
    ]
    steps[TaskState.ASSIGNED] = running[:2]
    steps[TaskState.RUNNING] = running
    steps[TaskState.SUCCEEDED] = [
        *running, lambda ledger: Finish(task_id=TASK, node_id=1, fence=_fence(ledger), now_ms=20)
    ]
    steps[TaskState.FAILED] = [
        *running,
        lambda ledger: Fail(task_id=TASK, node_id=1, fence=_fence(ledger), now_ms=20, error="x"),
    ]
    for step in steps[state]:
        assert isinstance(ledger.append(step(ledger)), Applied)
    assert ledger.state.tasks[TASK].state == state
    return ledger


def _command(name: str, ledger: Ledger) -> object:
    """A well-formed instance of command `name` aimed at t1 by its current owner."""
    fence = max(_fence(ledger), 1)
    now_ms = 500
    return {
        "SubmitTask": lambda: SubmitTask(task_id=TASK, spec=_spec(), now_ms=now_ms),
        "MarkReady": lambda: MarkReady(task_id=TASK, now_ms=now_ms),
        "MarkWaiting": lambda: MarkWaiting(task_id=TASK, now_ms=now_ms),
        "Skip": lambda: Skip(task_id=TASK, now_ms=now_ms, reason="r"),
        "Assign": lambda: Assign(task_id=TASK, node_id=1, now_ms=now_ms),
        "Start": lambda: Start(task_id=TASK, node_id=1, fence=fence, now_ms=now_ms),
        "ReportProgress": lambda: ReportProgress(
            task_id=TASK, node_id=1, fence=fence, keys_done=2, now_ms=now_ms
        ),
        "Finish": lambda: Finish(task_id=TASK, node_id=1, fence=fence, now_ms=now_ms),
        "Fail": lambda: Fail(task_id=TASK, node_id=1, fence=fence, now_ms=now_ms, error="e"),
        "Release": lambda: Release(task_id=TASK, fence=fence, now_ms=now_ms),
        "Cancel": lambda: Cancel(task_id=TASK, now_ms=now_ms),
        "Retry": lambda: Retry(task_id=TASK, not_before_ms=900, now_ms=now_ms),
        "Expire": lambda: Expire(task_id=TASK, now_ms=DEADLINE_MS),
        "Rerun": lambda: Rerun(task_id=TASK, node_id=1, away=False, now_ms=now_ms),
    }[name]()


PAIRS = [(state, name) for state in TaskState for name in COMMAND_NAMES]


@pytest.mark.parametrize(("state", "name"), PAIRS, ids=[f"{s}-{n}" for s, n in PAIRS])
def test_every_state_command_pair(state: TaskState, name: str) -> None:
    """Each (state, command) pair moves the task as the literal table says, or is refused."""
    ledger = _ledger_in(state)
    if name == "Release":  # a release needs a lost owner; losing it touches no task
        ledger.append(DeclareDead(node_id=1, now_ms=LEASE_MS + 100))
    expected = EXPECTED[state].split()[COMMAND_NAMES.index(name)]
    result = ledger.append(_command(name, ledger))
    if expected == "-":
        assert isinstance(result, Rejected)
        if name == "SubmitTask":
            assert result.reason == f"task {TASK} already exists ({state})"
        elif name in FENCED and _fence(ledger) == 0:  # never assigned: any fence is stale
            assert result.reason.startswith("stale fence 1:")
        else:
            assert result.reason == f"{name} is not allowed in state {state}"
        assert ledger.state.tasks[TASK].state == state
    else:
        assert result == Applied(ledger.state.tasks[TASK].fence if name == "Assign" else None)
        assert ledger.state.tasks[TASK].state == TaskState(expected)


def test_table_matches_literal_expectation() -> None:
    """TRANSITIONS holds exactly the allowed pairs of the literal table, nothing more."""
    for state in TaskState:
        row = {cls.__name__: str(target) for cls, target in TRANSITIONS[state].items()}
        cells = dict(zip(COMMAND_NAMES, EXPECTED[state].split(), strict=True))
        assert row == {name: cell for name, cell in cells.items() if cell != "-"}


def test_terminal_states_have_no_way_out() -> None:
    """SUCCEEDED, CANCELLED, EXPIRED and SKIPPED accept no command at all."""
    assert {state for state in TaskState if not TRANSITIONS[state]} == TERMINAL_STATES


def test_committed_doc_equals_rendering() -> None:
    """docs/lifecycle.md is exactly what the code renders; regenerate it when the table moves."""
    assert DOC.read_text() == render_markdown(), (
        "run: python -m warmd.statemachine.lifecycle --markdown > docs/lifecycle.md"
    )


def test_markdown_command_line() -> None:
    """`python -m warmd.statemachine.lifecycle --markdown` prints the rendering; no flag is usage."""
    module = "warmd.statemachine.lifecycle"
    good = subprocess.run(
        [sys.executable, "-m", module, "--markdown"], capture_output=True, text=True, check=False
    )
    assert good.returncode == 0 and good.stdout == render_markdown()
    bad = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "usage" in bad.stderr
