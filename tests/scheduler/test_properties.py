"""Random clusters: every assignment a pass proposes is accepted and respects every limit."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.scheduler import SchedulerConfig, decide
from warmd.scheduler.liveness import is_live, stamped_silence
from warmd.statemachine.commands import (
    Assign,
    Drain,
    Heartbeat,
    RegisterNode,
    SubmitTask,
    TaskSpec,
    labels_from,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.state import ACTIVE_STATES, Rejected

ZONES = ("a", "b", "c")
RULES = ("r0", "r1", "r2")


@st.composite
def _cluster(draw) -> tuple[Ledger, SchedulerConfig, int]:
    """Nodes with random capacity, zone, drain flag and silence; tasks with random needs."""
    ledger = Ledger()
    for node_id in range(1, draw(st.integers(1, 6)) + 1):
        labels = labels_from({"zone": draw(st.sampled_from(ZONES))})
        ledger.append(RegisterNode(node_id=node_id, capacity=draw(st.integers(0, 4)),
                                   lease_ms=1_000, now_ms=0, labels=labels))
        if draw(st.booleans()):
            ledger.append(Drain(node_id=node_id, now_ms=0))
        ledger.append(Heartbeat(node_id=node_id, now_ms=draw(st.sampled_from([0, 500, 900]))))
    for number in range(draw(st.integers(0, 25))):
        zone = draw(st.sampled_from((None, *ZONES)))
        spec = TaskSpec(
            keys=(f"k{number}",), target="redis", rule=draw(st.sampled_from(RULES)),
            priority=draw(st.integers(0, 3)),
            required_labels=labels_from({"zone": zone}) if zone else (),
        )
        ledger.append(SubmitTask(task_id=f"t{number}", spec=spec, now_ms=number))
    limits = tuple((rule, draw(st.integers(0, 5))) for rule in RULES if draw(st.booleans()))
    config = SchedulerConfig(rule_concurrency=limits,
                             assignments_per_pass_max=draw(st.integers(1, 30)))
    return ledger, config, draw(st.sampled_from([100, 1_200, 1_600]))


@settings(max_examples=80, deadline=None)
@given(_cluster(), st.integers(0, 2**32 - 1))
def test_passes_only_propose_acceptable_assignments(cluster, seed: int) -> None:
    """Two passes over a random cluster: no Assign is refused, and afterwards no live node is
    over capacity, no draining or silent node got work, labels match and rule limits hold."""
    ledger, config, now_ms = cluster
    before = {node_id: node.draining or not is_live(node, stamped_silence(ledger.state, now_ms))
              for node_id, node in ledger.state.nodes.items()}
    for _ in range(2):
        commands = decide(ledger.state, now_ms, config, random.Random(seed))
        for command, result in zip(commands, ledger.append_all(commands), strict=True):
            assert not (isinstance(command, Assign) and isinstance(result, Rejected)), result
    active = [task for state in ACTIVE_STATES for task in ledger.state.in_state(state)]
    per_rule = Counter(task.spec.rule for task in active)
    for task in active:
        node = ledger.state.nodes[task.owner]
        assert not before[task.owner], "work given to a draining or silent node"
        assert node.carries(task.spec.required_labels)
    for node_id, node in ledger.state.nodes.items():
        assert ledger.state.load(node_id) <= node.capacity
    for rule, limit in config.rule_concurrency:
        assert per_rule[rule] <= limit
