"""Placement respects capacity, labels, draining, liveness, priority and per-rule limits."""

from __future__ import annotations

from warmd.scheduler.assignment import assignment_order, assignments
from warmd.scheduler.config import SchedulerConfig
from warmd.statemachine.commands import (
    Assign,
    Drain,
    MarkReady,
    RegisterNode,
    Start,
    SubmitTask,
    TaskSpec,
    labels_from,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.state import Applied

LEASE_MS = 1_000
NOW_MS = 100


def _ledger(nodes: dict[int, int], labels: dict[int, dict[str, str]] | None = None) -> Ledger:
    ledger = Ledger()
    for node_id, capacity in nodes.items():
        node_labels = labels_from((labels or {}).get(node_id, {}))
        ledger.append(RegisterNode(node_id=node_id, capacity=capacity, lease_ms=LEASE_MS,
                                   now_ms=0, labels=node_labels))
    return ledger


def _submit(ledger: Ledger, task_id: str, submitted_ms: int = 0, **spec: object) -> None:
    task_spec = TaskSpec(keys=(f"{task_id}:k",), target="redis", **spec)  # type: ignore[arg-type]
    ledger.append(SubmitTask(task_id=task_id, spec=task_spec, now_ms=submitted_ms))
    ledger.append(MarkReady(task_id=task_id, now_ms=submitted_ms))


def _plan(ledger: Ledger, config: SchedulerConfig | None = None, now_ms: int = NOW_MS) -> list[Assign]:
    ready = sorted(ledger.state.in_state(TaskState.READY), key=assignment_order)
    return assignments(ledger.state, now_ms, config or SchedulerConfig(), ready)


def _placed(commands: list[Assign]) -> dict[str, int]:
    return {command.task_id: command.node_id for command in commands}


def test_capacity_is_never_exceeded_and_load_spreads() -> None:
    """Five tasks on nodes of 2 and 1 free slots: three placed, most-free node first, ties to
    the lowest node id."""
    ledger = _ledger({1: 2, 2: 1})
    for n in range(5):
        _submit(ledger, f"t{n}", submitted_ms=n)
    assert _placed(_plan(ledger)) == {"t0": 1, "t1": 1, "t2": 2}
    spread = _ledger({1: 3, 2: 3})
    for n in range(4):
        _submit(spread, f"t{n}", submitted_ms=n)
    assert _placed(_plan(spread)) == {"t0": 1, "t1": 2, "t2": 1, "t3": 2}


def test_existing_load_counts_against_capacity() -> None:
    """A node already running a task has one slot fewer."""
    ledger = _ledger({1: 1, 2: 1})
    _submit(ledger, "busy")
    fence = ledger.append(Assign(task_id="busy", node_id=1, now_ms=1)).value
    ledger.append(Start(task_id="busy", node_id=1, fence=fence, now_ms=1))
    _submit(ledger, "a")
    _submit(ledger, "b")
    assert _placed(_plan(ledger)) == {"a": 2}


def test_labels_must_match() -> None:
    """A task needing zone=b only goes to a node labelled zone=b, or waits."""
    ledger = _ledger({1: 4, 2: 4}, labels={1: {"zone": "a"}, 2: {"zone": "b", "disk": "ssd"}})
    _submit(ledger, "needs-b", required_labels=labels_from({"zone": "b"}))
    _submit(ledger, "needs-c", required_labels=labels_from({"zone": "c"}))
    assert _placed(_plan(ledger)) == {"needs-b": 2}


def test_draining_dead_and_dying_nodes_get_nothing() -> None:
    """Draining nodes, nodes silent past their lease and nodes being declared dead are skipped."""
    ledger = _ledger({1: 4, 2: 4, 3: 4})
    ledger.append(Drain(node_id=1, now_ms=1))
    ledger.append(RegisterNode(node_id=2, capacity=4, lease_ms=50, now_ms=0))  # silent at 100
    _submit(ledger, "t")
    assert _placed(_plan(ledger)) == {"t": 3}
    ready = ledger.state.in_state(TaskState.READY)
    dying = assignments(ledger.state, NOW_MS, SchedulerConfig(), ready, unusable_nodes=frozenset({3}))
    assert dying == []


def test_priority_then_age_decides_who_gets_scarce_slots() -> None:
    """With one slot, the highest priority wins; among equals, the oldest submission."""
    ledger = _ledger({1: 1})
    _submit(ledger, "old-low", submitted_ms=0, priority=0)
    _submit(ledger, "new-high", submitted_ms=5, priority=9)
    assert _placed(_plan(ledger)) == {"new-high": 1}
    other = _ledger({1: 1})
    _submit(other, "b-young", submitted_ms=5)
    _submit(other, "a-old", submitted_ms=3)
    assert _placed(_plan(other)) == {"a-old": 1}


def test_rule_concurrency_limit() -> None:
    """A rule limited to 2 never has more than 2 tasks ASSIGNED or RUNNING; others are free."""
    ledger = _ledger({1: 10})
    for n in range(4):
        _submit(ledger, f"limited{n}", rule="users")
    _submit(ledger, "other", rule="items")
    config = SchedulerConfig(rule_concurrency=(("users", 2),))
    placed = _placed(_plan(ledger, config))
    assert sorted(placed) == ["limited0", "limited1", "other"]
    ledger.append_all(_plan(ledger, config))
    assert _plan(ledger, config) == []  # the two running still hold the rule's slots


def test_assignments_per_pass_are_capped() -> None:
    """No pass assigns more than assignments_per_pass_max tasks."""
    ledger = _ledger({1: 50})
    for n in range(10):
        _submit(ledger, f"t{n}")
    assert len(_plan(ledger, SchedulerConfig(assignments_per_pass_max=3))) == 3


def test_planned_assignments_all_apply() -> None:
    """Every assignment the planner proposes passes the state machine's own guards."""
    ledger = _ledger({1: 2, 2: 3}, labels={2: {"gpu": "yes"}})
    for n in range(8):
        _submit(ledger, f"t{n}", required_labels=labels_from({"gpu": "yes"}) if n % 2 else ())
    plan = _plan(ledger)
    assert len(plan) == 5
    assert all(isinstance(result, Applied) for result in ledger.append_all(plan))


def test_a_rerun_placement_is_honoured() -> None:
    """A task pinned to node 2 waits for it even when node 1 has more room; one kept off
    node 1 goes to node 2; the scheduler never proposes an Assign the state would refuse."""
    ledger = _ledger({1: 3, 2: 1})
    _submit(ledger, "pinned")
    _submit(ledger, "avoids", submitted_ms=1)
    ledger.state.tasks["pinned"].pinned_node = 2
    ledger.state.tasks["avoids"].avoided_node = 1
    assert _placed(_plan(ledger)) == {"pinned": 2}  # node 2's one slot taken: "avoids" waits
