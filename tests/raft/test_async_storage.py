"""Asynchronous storage writes (docs/raft.md): the core's rules while Readys are in flight.

Each test breaks if one rule is dropped: a follower's acknowledgement or vote never
leaves before its Ready is durable, a leader counts itself only for what is durable,
entries are applied only once committed and durable here, a Ready never repeats what an
earlier one handed out, and an overwritten suffix is not marked stable by a stale Ready.
"""

from __future__ import annotations

import random

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfState, Entry, HardState, Message, MessageType, Ready

VOTERS = ConfState(voters=(1, 2, 3))


def _follower(node_id: int = 2) -> tuple[RaftNode, MemoryStorage]:
    storage = MemoryStorage(VOTERS)
    return RaftNode(RaftConfig(node_id=node_id), storage, random.Random(node_id)), storage


def _append(term: int, index: int, log_term: int, commit: int, *entries: tuple[int, bytes],
            to: int = 2) -> Message:
    return Message(type=MessageType.APPEND, from_id=1, to=to, term=term, index=index,
                   log_term=log_term, commit=commit,
                   entries=tuple(Entry(term=t, index=index + offset + 1, data=data)
                                 for offset, (t, data) in enumerate(entries)))


def _persist(storage: MemoryStorage, ready: Ready) -> None:
    storage.append(ready.entries)
    if ready.hard_state is not None:
        storage.set_hard_state(ready.hard_state)


def _early_types(ready: Ready) -> set[MessageType]:
    return {message.type for message in ready.early_messages}


def test_a_follower_acknowledgement_waits_for_its_ready() -> None:
    """The APPEND_RESPONSE is in the Ready's messages, never among its early ones."""
    node, _ = _follower()
    node.step(_append(1, 0, 0, 0, (1, b"a")))
    ready = node.ready()
    assert [(m.type, m.index) for m in ready.messages] == [(MessageType.APPEND_RESPONSE, 1)]
    assert ready.early_messages == ()
    assert ready.must_sync


def test_a_vote_and_a_vote_request_wait_for_the_term_to_be_durable() -> None:
    """A granted vote and a candidate's requests leave only with their hard state on disk."""
    voter, _ = _follower()
    voter.step(Message(type=MessageType.VOTE, from_id=3, to=2, term=1))
    granted = voter.ready()
    assert granted.hard_state == HardState(term=1, vote=3, commit=0)
    assert [m.type for m in granted.messages] == [MessageType.VOTE_RESPONSE]
    assert granted.early_messages == ()
    candidate, _ = _follower(1)
    candidate.campaign()
    campaign = candidate.ready()
    assert campaign.early_messages == () and campaign.messages


def test_a_new_leader_sends_nothing_early_until_its_term_is_durable() -> None:
    """While the Ready that raised its term is in flight, even APPENDs wait: restarted
    without that term, the node could win the same term again with other entries."""
    node, storage = _follower(1)
    node.step(Message(type=MessageType.VOTE, from_id=3, to=1, term=1))  # votes, term 1
    vote = node.ready()  # in flight: the vote is not durable yet
    node.campaign()  # term 2 (pre-vote answered below)
    node.step(Message(type=MessageType.PRE_VOTE_RESPONSE, from_id=2, to=1, term=2))
    node.step(Message(type=MessageType.VOTE_RESPONSE, from_id=2, to=1, term=2))
    elected = node.ready()
    assert any(m.type == MessageType.APPEND for m in elected.messages)
    assert elected.early_messages == ()
    for ready in (vote, elected):
        _persist(storage, ready)
        node.advance(ready)
    last = node.log.last_index()
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=2, index=last))
    node.propose(b"x")
    replicated = node.ready()
    assert _early_types(replicated) == {MessageType.APPEND}  # term durable: appends go early


def test_the_leader_counts_itself_only_for_durable_entries() -> None:
    """One follower's ack of an entry the leader has not persisted commits nothing; the
    leader's own fsync (advance) then makes the quorum."""
    node, storage = _follower(1)
    node.campaign()
    node.step(Message(type=MessageType.PRE_VOTE_RESPONSE, from_id=2, to=1, term=1))
    node.step(Message(type=MessageType.VOTE_RESPONSE, from_id=2, to=1, term=1))
    elected = node.ready()
    _persist(storage, elected)
    node.advance(elected)
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=1, index=1))
    assert node.log.committed == 1
    node.propose(b"x")
    in_flight = node.ready()
    node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=2, to=1, term=1, index=2))
    assert node.log.committed == 1  # 2 of 3 acknowledged, but not on the leader's disk
    later = node.ready()
    assert later.committed_entries == ()
    _persist(storage, in_flight)
    node.advance(in_flight)
    assert node.log.committed == 2
    _persist(storage, later)
    node.advance(later)


def test_committed_entries_are_handed_out_only_once_durable_here() -> None:
    """Entries committed by the leader but still in flight here are not given to apply;
    the Ready after their advance gives them, once."""
    node, storage = _follower()
    node.step(_append(1, 0, 0, 0, (1, b"a"), (1, b"b")))
    first = node.ready()
    node.step(_append(1, 2, 1, 2))  # the leader's commit covers both, not yet on our disk
    second = node.ready()
    assert second.entries == () and second.committed_entries == ()
    _persist(storage, first)
    node.advance(first)
    third = node.ready()
    assert [e.data for e in third.committed_entries] == [b"a", b"b"]
    _persist(storage, second)
    node.advance(second)
    _persist(storage, third)
    node.advance(third)
    assert not node.has_ready() and node.log.applied == 2


def test_readys_in_flight_hand_out_each_entry_once() -> None:
    """A second Ready carries only what arrived after the first was made."""
    node, _ = _follower()
    node.step(_append(1, 0, 0, 0, (1, b"a")))
    first = node.ready()
    node.step(_append(1, 1, 1, 0, (1, b"b")))
    second = node.ready()
    assert [e.index for e in first.entries] == [1]
    assert [e.index for e in second.entries] == [2]
    assert not node.has_ready()


def test_a_suffix_overwritten_in_flight_is_not_marked_stable_by_the_old_ready() -> None:
    """Entries 2-3 of term 1 are in flight when a term-2 leader replaces them from 2: the
    old Ready's advance must not call the new entries durable; the new one's does."""
    node, storage = _follower()
    node.step(_append(1, 0, 0, 0, (1, b"a")))
    base = node.ready()
    _persist(storage, base)
    node.advance(base)
    node.step(_append(1, 1, 1, 1, (1, b"b"), (1, b"c")))
    old = node.ready()
    node.step(Message(type=MessageType.APPEND, from_id=3, to=2, term=2, index=1, log_term=1,
                      commit=1, entries=(Entry(term=2, index=2, data=b"B"),)))
    new = node.ready()
    assert [(e.index, e.term) for e in new.entries] == [(2, 2)]
    _persist(storage, old)
    node.advance(old)
    assert node.log.stable_index() < 2  # (2, term 1) was written, then replaced: not stable
    _persist(storage, new)
    node.advance(new)
    assert node.log.stable_index() == 2 and node.log.term(2) == 2
