"""Log replication: matching, conflicts, fast back-tracking, the commit rule, batching, the window."""

from __future__ import annotations

import dataclasses
import random

import pytest

from warmd.errors import InvariantViolation
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.errors import NotLeader, ProposalDropped
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProgressState,
    Ready,
    Role,
    SnapshotMeta,
)

LEADER_LOG = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]  # Figure 7, the leader for term 8


def storage_with(terms: list[int], voters: tuple[int, ...] = (1, 2, 3), term: int = 0) -> MemoryStorage:
    storage = MemoryStorage(ConfState(voters=voters))
    storage.append([Entry(term=t, index=i) for i, t in enumerate(terms, start=1)])
    storage.set_hard_state(HardState(term=max([term, *terms])))
    return storage


def persist(node: RaftNode, storage: MemoryStorage):
    """Drive one Ready the way a driver does and return it."""
    ready = node.ready()
    if ready.snapshot is not None:
        storage.apply_snapshot(ready.snapshot)
    storage.append(ready.entries)
    if ready.hard_state is not None:
        storage.set_hard_state(ready.hard_state)
    node.advance(ready)
    return ready


def manual_leader(terms: list[int], **fields: object) -> tuple[RaftNode, MemoryStorage]:
    """Node 1 of {1,2,3} with log `terms`, made leader by stepping a vote from node 2."""
    storage = storage_with(terms)
    node = RaftNode(RaftConfig(node_id=1, pre_vote=False, **fields), storage, random.Random(1))  # type: ignore[arg-type]
    node.campaign()
    node.step(Message(type=MessageType.VOTE_RESPONSE, from_id=2, to=1, term=node.term))
    assert node.role == Role.LEADER
    persist(node, storage)
    return node, storage


@pytest.mark.parametrize(
    "follower_terms",
    [
        [1, 1, 1, 4, 4, 5, 5, 6, 6],  # (a) missing one entry
        [1, 1, 1, 4],  # (b) missing many
        [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],  # (c) one extra uncommitted entry
        [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],  # (d) extra entries of a later term
        [1, 1, 1, 4, 4, 4, 4],  # (e) missing and extra
        [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],  # (f) a long conflicting suffix
    ],
    ids=list("abcdef"),
)
def test_leader_brings_every_figure7_follower_in_line(make_network, follower_terms: list[int]) -> None:
    """§5.3 Figure 7: the leader forces each follower's log to duplicate its own."""
    net = make_network(3, pre_vote=False)
    for node_id, terms in ((1, LEADER_LOG), (2, follower_terms), (3, LEADER_LOG)):
        net.add_node(node_id, storage_with(terms, term=7))
    net.elect(1)
    net.propose(1, b"after")
    assert net.log_terms(2) == net.log_terms(1)
    assert net.log_terms(1)[-2:] == [(11, 8), (12, 8)]
    assert net.nodes[2].log.committed == 12


def test_fast_backtracking_skips_a_conflicting_term_per_round_trip(make_network) -> None:
    """§5.3 optimisation: conflict term hints cost a few rejections, not one per entry."""
    net = make_network(3, pre_vote=False)
    follower = [1, 1, 1] + [2] * 20 + [3] * 20
    for node_id, terms in ((1, LEADER_LOG), (2, follower), (3, LEADER_LOG)):
        net.add_node(node_id, storage_with(terms, term=7))
    net.elect(1)
    rejections = [m for m in net.sent if m.type == MessageType.APPEND_RESPONSE and m.reject and m.from_id == 2]
    assert 1 <= len(rejections) <= 3
    assert net.log_terms(2) == net.log_terms(1)


def test_follower_rejects_append_whose_previous_entry_does_not_match() -> None:
    """§5.3: the consistency check refuses an APPEND whose (index, term) is not in the log, with a hint."""
    storage = storage_with([1, 1, 2])
    node = RaftNode(RaftConfig(node_id=2), storage, random.Random(2))
    node.step(Message(type=MessageType.APPEND, from_id=1, to=2, term=3, index=3, log_term=3,
                      entries=(Entry(term=3, index=4),)))
    reply = node.ready().messages[-1]
    assert reply.reject and reply.index == 3
    assert (reply.reject_hint, reply.reject_term) == (3, 2)


def test_leader_only_commits_entries_of_its_term_by_counting() -> None:
    """§5.4.2 / Figure 8: a replica count on an old-term entry commits nothing until the new term's entry is replicated."""
    node, _ = manual_leader([1, 2])
    assert node.term == 3 and node.log.last_index() == 3
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=3, index=2))
    assert node.log.committed == 0  # index 2 is on a majority but is of term 2
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=3, index=3))
    assert node.log.committed == 3  # committing the no-op commits everything before it


def test_leader_counts_itself_only_after_advance() -> None:
    """Persist-before-count: the leader's own new entries join the quorum only on advance()."""
    node, storage = manual_leader([])
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=1, index=1))
    assert node.log.committed == 1
    node.propose(b"x")
    ready = node.ready()
    assert [e.data for e in ready.entries] == [b"x"]
    assert any(m.type == MessageType.APPEND for m in ready.messages)  # sent before durable (allowed)
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=3, to=1, term=1, index=1))
    assert node.log.committed == 1
    storage.append(ready.entries)
    node.advance(ready)
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=1, index=2))
    assert node.log.committed == 2


def test_follower_acknowledges_entries_in_the_ready_that_persists_them() -> None:
    """Persist-before-send: the APPEND_RESPONSE rides with the entries it acknowledges."""
    node = RaftNode(RaftConfig(node_id=2), MemoryStorage(ConfState(voters=(1, 2, 3))), random.Random(2))
    node.step(Message(type=MessageType.APPEND, from_id=1, to=2, term=1, index=0, log_term=0,
                      entries=(Entry(term=1, index=1, data=b"a"),)))
    ready = node.ready()
    assert [e.data for e in ready.entries] == [b"a"]
    assert ready.hard_state == HardState(term=1, vote=0, commit=0)
    assert ready.must_sync
    assert [(m.type, m.index) for m in ready.messages] == [(MessageType.APPEND_RESPONSE, 1)]


def test_readys_may_be_outstanding_and_are_advanced_oldest_first() -> None:
    """Asynchronous storage writes: ready() again before advance() hands out only what is
    new; advance() takes the oldest outstanding Ready, anything else is a programmer error."""
    storage = MemoryStorage(ConfState(voters=(1,)))
    node = RaftNode(RaftConfig(node_id=1), storage, random.Random(1))
    node.campaign()
    first = node.ready()
    node.propose(b"x")
    second = node.ready()
    assert [e.index for e in first.entries] == [1]
    assert [e.index for e in second.entries] == [2]  # the no-op is not handed out twice
    with pytest.raises(InvariantViolation, match="advance"):
        node.advance(second)
    with pytest.raises(InvariantViolation, match="advance"):
        node.advance(Ready())  # not a Ready it handed out
    assert node.log.committed == 0  # nothing of ours is durable yet
    storage.append(first.entries)
    node.advance(first)
    assert node.log.committed == 1
    storage.append(second.entries)
    node.advance(second)
    assert node.log.committed == 2


def test_commit_only_change_needs_no_sync(make_network) -> None:
    """must_sync is set for entries and term/vote changes, not for a commit index that moved."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"x")
    net.tick(1)
    follower_readies = net.readies[2]
    commit_only = [r for r in follower_readies if r.hard_state and not r.entries and r.committed_entries]
    assert commit_only and not any(r.must_sync for r in commit_only)


@pytest.mark.parametrize(
    ("fields", "data_size", "expected_sizes"),
    [
        ({"max_entries_per_message": 2}, 1, [2, 2, 1]),
        ({"max_size_per_message_bytes": 120}, 40, [2, 2, 1]),  # 56 bytes each counted
        ({"max_size_per_message_bytes": 10}, 40, [1, 1, 1, 1, 1]),  # never fewer than one
        ({}, 1, [5]),
    ],
)
def test_appends_are_batched_within_count_and_size_limits(
    fields: dict[str, int], data_size: int, expected_sizes: list[int]
) -> None:
    """Proposals made between two Readies go out in as few APPENDs as the limits allow."""
    node, storage = manual_leader([], max_inflight_messages=16, **fields)
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=1, index=1))
    persist(node, storage)
    for number in range(5):
        node.propose(bytes([number]) * data_size)
    ready = persist(node, storage)
    sizes = [len(m.entries) for m in ready.messages if m.type == MessageType.APPEND and m.to == 2]
    assert sizes == expected_sizes


def test_inflight_window_bounds_unacknowledged_appends(make_network) -> None:
    """In replicate state at most max_inflight_messages APPENDs are outstanding per follower."""
    net = make_network(3, max_inflight_messages=2, max_entries_per_message=1)
    net.elect(1)
    net.drop = lambda m: m.type == MessageType.APPEND_RESPONSE and m.from_id == 3
    for number in range(6):
        net.nodes[1].propose(bytes([number]))
        net.stabilize()
    status = {peer.node_id: peer for peer in net.nodes[1].status().progress}
    assert status[3].state == ProgressState.REPLICATE and status[3].inflight == 2
    appends_to_3 = [m for m in net.sent if m.type == MessageType.APPEND and m.to == 3 and m.entries]
    assert len(appends_to_3) == 3  # the no-op (acked before the drop) and a full window
    assert status[2].match == 7
    net.heal()
    net.tick(3)
    assert net.nodes[3].log.committed == 7


def test_probe_state_sends_one_append_at_a_time() -> None:
    """A follower in probe state gets one APPEND until it answers or a heartbeat is answered."""
    node, storage = manual_leader([])
    for number in range(3):
        node.propose(bytes([number]))
        ready = persist(node, storage)
        assert not [m for m in ready.messages if m.to == 3]  # still waiting on the no-op probe
    node.step(Message(type=MessageType.HEARTBEAT_RESPONSE, from_id=3, to=1, term=1))
    ready = persist(node, storage)
    assert [m.type for m in ready.messages if m.to == 3] == [MessageType.APPEND]


def test_proposal_is_forwarded_by_a_follower(make_network) -> None:
    """A follower with a known leader forwards the proposal, which then commits everywhere."""
    net = make_network(3)
    net.elect(1)
    net.propose(3, b"via follower")
    net.tick(1)
    assert all(state == [b"via follower"] for state in net.app_state.values())
    forwarded = [m for m in net.sent if m.type == MessageType.PROPOSE]
    assert [(m.from_id, m.to, m.term) for m in forwarded] == [(3, 1, 0)]


def test_follower_forwards_the_proposals_of_one_ready_in_one_message(make_network) -> None:
    """Proposals made on a follower between two Readies travel together, split only at the
    message size limit, and each commits once, in order."""
    net = make_network(3, max_size_per_message_bytes=250)
    net.elect(1)
    commands = [f"{number:03d}".encode() * 33 for number in range(5)]  # 99 bytes each
    net.propose(3, *commands)
    net.tick(1)
    assert all(state == commands for state in net.app_state.values())
    forwarded = [m for m in net.sent if m.type == MessageType.PROPOSE]
    assert [len(m.entries) for m in forwarded] == [2, 2, 1]
    assert all((m.from_id, m.to, m.term) == (3, 1, 0) for m in forwarded)


def test_follower_without_forwarding_raises_not_leader(make_network) -> None:
    """With forward_proposals off, a follower names the leader instead of forwarding."""
    net = make_network(3, forward_proposals=False)
    net.elect(1)
    with pytest.raises(NotLeader) as raised:
        net.nodes[2].propose(b"x")
    assert raised.value.leader_id == 1


def test_proposal_without_leader_is_dropped_with_reason(make_network) -> None:
    """No known leader: the proposal is dropped with the NO_LEADER reason."""
    net = make_network(3)
    with pytest.raises(ProposalDropped) as raised:
        net.nodes[1].propose(b"x")
    assert raised.value.reason == ProposalDropped.NO_LEADER


def test_non_bytes_proposal_is_refused() -> None:
    """Bad input gets a clear error: a proposal must be bytes."""
    node, _ = manual_leader([])
    with pytest.raises(TypeError, match="bytes"):
        node.propose("text")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "message",
    [
        Message(type=MessageType.APPEND, from_id=2, to=9, term=5),  # not for us
        Message(type=MessageType.APPEND, from_id=1, to=1, term=5),  # from ourselves
        Message(type=MessageType.APPEND, from_id=0, to=1, term=5),  # from nobody
        Message(type=99, from_id=2, to=1, term=5),  # type: ignore[arg-type]
        Message(type=MessageType.APPEND, from_id=2, to=1, term=5, index=-1),
        Message(type=MessageType.APPEND, from_id=2, to=1, term=5, index=0,
                entries=(Entry(term=5, index=2),)),  # gap
        Message(type=MessageType.APPEND, from_id=2, to=1, term=5, index=0,
                entries=(Entry(term=6, index=1),)),  # entry term above message term
        Message(type=MessageType.APPEND, from_id=2, to=1, term=5, index=0,
                entries=(Entry(term=5, index=1, data="str"),)),  # type: ignore[arg-type]
        Message(type=MessageType.PROPOSE, from_id=2, to=1, term=5),  # forwarded kinds carry term 0
        Message(type=MessageType.VOTE, from_id=2, to=1, term=0),
        Message(type=MessageType.SNAPSHOT, from_id=2, to=1, term=1, snapshot_meta="x"),  # type: ignore[arg-type]
        Message(type=MessageType.HEARTBEAT, from_id=2, to=1, term=1, context="x"),  # type: ignore[arg-type]
    ],
)
def test_garbage_messages_are_ignored(message: Message) -> None:
    """A malformed message changes nothing and produces no output."""
    node, _ = manual_leader([])
    before = node.status()
    node.step(message)
    assert node.status() == before
    assert not node.has_ready()


def test_step_of_a_non_message_is_a_type_error() -> None:
    """Passing something that is not a Message is a caller bug with a clear error."""
    node, _ = manual_leader([])
    with pytest.raises(TypeError, match="Message"):
        node.step({"type": 1})  # type: ignore[arg-type]


def test_stale_append_response_is_ignored() -> None:
    """A duplicated old rejection does not move next back (etcd's stale-reject rule)."""
    node, storage = manual_leader([])
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=1, index=1))
    persist(node, storage)
    node.propose(b"x")
    persist(node, storage)
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=1, index=0,
                      reject=True, reject_hint=0))
    peer = {p.node_id: p for p in node.status().progress}[2]
    assert peer.match == 1 and peer.state == ProgressState.REPLICATE and peer.next == 3


def test_committed_entries_are_applied_in_order_once(make_network) -> None:
    """State machine safety at unit scale: every node applies the same commands in the same order."""
    net = make_network(5)
    net.elect(2)
    for number in range(20):
        net.propose(1 + number % 5, f"c{number}".encode())
    net.tick(2)
    expected = [f"c{number}".encode() for number in range(20)]
    assert all(state == expected for state in net.app_state.values())
    applied_types = {e.type for r in net.readies[3] for e in r.committed_entries}
    assert applied_types == {EntryType.NORMAL}


@pytest.mark.parametrize(
    "fields",
    [
        {"snapshot_meta": "not a meta"},
        {"snapshot_meta": SnapshotMeta(index=3), "chunk_data": "text"},
        {"snapshot_meta": SnapshotMeta(index=3), "chunk_offset": -5},
    ],
)
def test_follower_ignores_malformed_snapshot_chunks(fields: dict[str, object]) -> None:
    """A SNAPSHOT chunk with fields of the wrong kind is dropped before it can crash the follower."""
    node = RaftNode(RaftConfig(node_id=2), MemoryStorage(ConfState(voters=(1, 2, 3))), random.Random(2))
    node.step(Message(type=MessageType.SNAPSHOT, from_id=1, to=2, term=1, **fields))  # type: ignore[arg-type]
    assert node.term == 0  # not even the term was taken from it
    assert not node.has_ready()


def test_leader_bounds_uncommitted_proposals(make_network) -> None:
    """A leader that cannot commit refuses proposals past max_uncommitted_bytes, then recovers."""
    net = make_network(3, max_uncommitted_bytes=100, check_quorum=False)
    net.elect(1)
    net.isolate(1)
    leader = net.nodes[1]
    leader.propose(b"x" * 150)  # one proposal always fits
    with pytest.raises(ProposalDropped) as raised:
        leader.propose(b"y")
    assert raised.value.reason == ProposalDropped.TOO_MUCH_UNCOMMITTED
    net.heal()
    net.tick(2)
    leader.propose(b"z" * 90)
    net.stabilize()
    assert net.app_state[2] == [b"x" * 150, b"z" * 90]


def test_no_entry_over_the_cap_enters_any_log(make_network) -> None:
    """A proposal over max_entry_bytes is refused where it is made, with a clear reason; one
    forwarded by a follower with a looser cap is dropped by the leader; one at the cap commits."""
    net = make_network(3, max_entry_bytes=1000)
    net.elect(1)
    with pytest.raises(ProposalDropped) as raised:
        net.nodes[1].propose(b"x" * 1001)
    assert raised.value.reason == ProposalDropped.ENTRY_TOO_LARGE
    assert "1001 bytes, the cap is 1000" in str(raised.value)
    with pytest.raises(ProposalDropped):
        net.nodes[2].propose(b"y" * 1001)  # refused on the follower before it is forwarded
    follower = net.nodes[3]
    follower.config = dataclasses.replace(follower.config, max_entry_bytes=2000)
    follower.propose(b"z" * 1500)  # forwarded; the leader's cap drops it
    follower.propose(b"w" * 1000)
    net.stabilize()
    assert net.app_state[1] == net.app_state[3] == [b"w" * 1000]  # 3 forwarded it
