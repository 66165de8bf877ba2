"""Seeded random schedules over the test network: reorder, drop, duplicate, partition, restart.

A small in-package fuzzer (the full simulator lives in warmd.testing): after every
step (blank joiners included), at most one leader per term and applied sequences that are prefixes of each
other; at the end, after healing, a leader emerges and a new write applies everywhere.
"""

from __future__ import annotations

import contextlib
import itertools
import random

import pytest

from warmd.raft.errors import ProposalDropped, RaftError, SnapshotOutOfDate
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfChange, ConfChangeType, Role


def check_safety(net, leaders_by_term: dict[int, int]) -> None:
    for node_id, node in net.nodes.items():
        if node.role == Role.LEADER:
            owner = leaders_by_term.setdefault(node.term, node_id)
            assert owner == node_id, f"two leaders in term {node.term}: {owner} and {node_id}"
    states = sorted(net.app_state.values(), key=len)
    for shorter, longer in itertools.pairwise(states):
        assert longer[: len(shorter)] == shorter, "applied sequences diverge"


def random_step(net, rng: random.Random, counter: list[int]) -> None:
    roll = rng.random()
    node_ids = list(net.nodes)
    if roll < 0.35:
        net.nodes[rng.choice(node_ids)].tick()
    elif roll < 0.75 and net.queue:
        position = rng.randrange(len(net.queue))
        net.queue.rotate(-position)
        message = net.queue.popleft()
        net.queue.rotate(position)
        if rng.random() < 0.1:
            return  # lost
        if rng.random() < 0.05:
            net.queue.append(message)  # duplicated
        net.nodes[message.to].step(message)
    elif roll < 0.85:
        counter[0] += 1
        with contextlib.suppress(RaftError):
            net.nodes[rng.choice(node_ids)].propose(b"w%d" % counter[0])
    elif roll < 0.88:
        net.heal()
        if rng.random() < 0.5:
            net.isolate(rng.choice(node_ids))
        else:
            net.cut(*rng.sample(node_ids, 2))
    elif roll < 0.90:
        net.restart(rng.choice(node_ids))
    elif roll < 0.92:
        node_id = rng.choice(node_ids)
        with contextlib.suppress(SnapshotOutOfDate, ValueError):
            net.snapshot_app(node_id)
    elif roll < 0.93:
        leader = [n for n in node_ids if net.nodes[n].role == Role.LEADER]
        if leader:
            change = ConfChange(rng.choice(list(ConfChangeType)), rng.choice(node_ids))
            with contextlib.suppress(ProposalDropped):
                net.nodes[leader[0]].propose_conf_change(change)
    for node_id in node_ids:
        if rng.random() < 0.7:  # otherwise the node keeps unpersisted work a restart loses
            net.process_ready(node_id)


@pytest.mark.parametrize("seed", range(40))
def test_random_schedule_is_safe_and_live(make_network, seed: int) -> None:
    """Random faults never break election safety or applied-prefix agreement; healing restores progress."""
    rng = random.Random(seed)
    net = make_network(3 + seed % 3, seed=seed, snapshot_chunk_bytes=32)
    if seed % 2 == 0:
        net.add_node(len(net.nodes) + 1, MemoryStorage())  # a blank joiner conf changes may add
    leaders_by_term: dict[int, int] = {}
    counter = [0]
    for _ in range(1500):
        random_step(net, rng, counter)
        check_safety(net, leaders_by_term)
    net.heal()
    voters = [n for n in net.nodes if n in next(iter(net.nodes.values())).conf_state.voters]
    for _ in range(300):
        net.tick(1)
        check_safety(net, leaders_by_term)
        if [n for n in net.leaders() if n in voters]:
            break
    leaders = [n for n in net.leaders() if net.nodes[n].conf_state.voters]
    assert leaders, f"seed {seed}: no leader after healing"
    leader = leaders[-1]
    for _ in range(50):
        try:
            net.nodes[leader].propose(b"final")
            break
        except ProposalDropped:
            net.tick(1)
    members = set(net.nodes[leader].conf_state.voters) | set(net.nodes[leader].conf_state.learners)
    for _ in range(40):  # a snapshot stalled by earlier losses resumes within a few heartbeats
        net.tick(1)
        if all(net.app_state[node_id][-1:] == [b"final"] for node_id in members):
            break
    for node_id in members:
        assert net.app_state[node_id][-1:] == [b"final"], f"seed {seed}: node {node_id} lags"
    check_safety(net, leaders_by_term)
