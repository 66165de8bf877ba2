"""ReadIndex (§6.4): linearizable reads confirmed by a heartbeat round, on leader and followers."""

from __future__ import annotations

import random

import pytest

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.errors import ProposalDropped
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfState, MessageType, ReadState


def test_leader_read_is_answered_with_its_commit_index(make_network) -> None:
    """The leader answers after a quorum acks a heartbeat carrying the read's context."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"x")
    net.nodes[1].read_index(b"r1")
    ready = net.nodes[1].ready()
    assert not ready.entries and not ready.read_states  # nothing to persist; not answered yet
    assert {m.type for m in ready.messages} == {MessageType.HEARTBEAT}
    assert len({m.context for m in ready.messages}) == 1
    net.nodes[1].advance(ready)
    net.queue.extend(ready.messages)
    net.stabilize()
    assert net.read_states[1] == [ReadState(index=net.nodes[1].log.committed, context=b"r1")]


def test_leader_cut_off_answers_no_read(make_network) -> None:
    """Without a quorum of acks no read state is produced: a deposed leader cannot serve stale reads."""
    net = make_network(3)
    net.elect(1)
    net.isolate(1)
    net.nodes[1].read_index(b"stale?")
    net.tick(5, nodes=[1])
    assert net.read_states[1] == []


def test_follower_read_is_forwarded_and_answered(make_network) -> None:
    """A follower's read goes to the leader and returns with the leader's commit index."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"x", b"y")
    net.nodes[3].read_index(b"f1")
    net.stabilize()
    assert net.read_states[3] == [ReadState(index=net.nodes[1].log.committed, context=b"f1")]
    forwarded = [m for m in net.sent if m.type == MessageType.READ_INDEX]
    assert [(m.from_id, m.to, m.term) for m in forwarded] == [(3, 1, 0)]


def test_read_waits_until_the_leader_commits_in_its_term(make_network) -> None:
    """A new leader answers reads only once its no-op has committed (its commit index is then current)."""
    net = make_network(3)
    net.drop = lambda m: m.type == MessageType.APPEND
    net.elect(1)
    net.nodes[1].read_index(b"early")
    net.stabilize()
    assert net.read_states[1] == []
    net.heal()
    net.tick(2)
    assert [state.context for state in net.read_states[1]] == [b"early"]
    assert net.read_states[1][0].index >= 1


def test_read_after_leader_change_sees_earlier_writes(make_network) -> None:
    """A read on the new leader is at or after every write committed by the old one."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"a", b"b")
    committed_before = net.nodes[1].log.committed
    net.isolate(1)
    net.tick(40, nodes=[2, 3])
    new_leader = net.leaders()
    new_leader = [n for n in new_leader if n != 1]
    assert new_leader
    net.nodes[new_leader[0]].read_index(b"after")
    net.stabilize()
    (state,) = net.read_states[new_leader[0]]
    assert state.index > committed_before  # includes the new leader's no-op


def test_single_voter_reads_immediately() -> None:
    """A one-node cluster answers a read at once (it is its own quorum)."""
    storage = MemoryStorage(ConfState(voters=(1,)))
    node = RaftNode(RaftConfig(node_id=1), storage, random.Random(1))
    node.campaign()
    ready = node.ready()
    storage.append(ready.entries)
    node.advance(ready)  # the no-op is durable: it commits
    node.read_index(b"solo")
    assert node.ready().read_states == (ReadState(index=1, context=b"solo"),)


def test_read_without_leader_is_dropped_and_empty_context_refused(make_network) -> None:
    """A follower with no leader refuses the read; an empty context is a caller error."""
    net = make_network(3)
    with pytest.raises(ProposalDropped) as raised:
        net.nodes[2].read_index(b"x")
    assert raised.value.reason == ProposalDropped.NO_LEADER
    with pytest.raises(TypeError):
        net.nodes[2].read_index(b"")


def test_reads_with_the_same_context_from_two_nodes_are_both_answered(make_network) -> None:
    """Contexts need only be unique per requester: the leader names each heartbeat round itself."""
    net = make_network(3)
    net.elect(1)
    net.nodes[2].read_index(b"same")
    net.nodes[3].read_index(b"same")
    net.nodes[1].read_index(b"same")
    net.stabilize()
    assert [len(net.read_states[node]) for node in (1, 2, 3)] == [1, 1, 1]
