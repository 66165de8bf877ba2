"""Claims of the Raft paper as tables, in the style of etcd's raft_paper_test.go."""

from __future__ import annotations

import random

import pytest

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfState, Entry, Message, MessageType, Role


def candidate(voter_count: int) -> RaftNode:
    storage = MemoryStorage(ConfState(voters=tuple(range(1, voter_count + 1))))
    node = RaftNode(RaftConfig(node_id=1, pre_vote=False), storage, random.Random(1))
    node.campaign()
    return node


@pytest.mark.parametrize(
    ("voter_count", "granted", "rejected", "role"),
    [
        (1, [], [], Role.LEADER),
        (3, [2], [], Role.LEADER),
        (3, [2, 3], [], Role.LEADER),
        (5, [2, 3], [], Role.LEADER),
        (5, [2], [], Role.CANDIDATE),
        (3, [], [2, 3], Role.FOLLOWER),
        (5, [2], [3, 4, 5], Role.FOLLOWER),
        (5, [2], [3, 4], Role.CANDIDATE),
        (5, [2], [3], Role.CANDIDATE),
    ],
)
def test_election_result_in_one_round(
    voter_count: int, granted: list[int], rejected: list[int], role: Role
) -> None:
    """§5.2: a candidate wins with a majority, loses once a majority refused, else waits."""
    node = candidate(voter_count)
    for voter, reject in [(v, False) for v in granted] + [(v, True) for v in rejected]:
        node.step(Message(type=MessageType.VOTE_RESPONSE, from_id=voter, to=1, term=1, reject=reject))
    assert node.role == role
    assert node.term == 1


@pytest.mark.parametrize("leader_term", [1, 2])
def test_candidate_falls_back_to_follower_on_append_from_leader(leader_term: int) -> None:
    """§5.2: a candidate that hears an APPEND of its term or later follows that leader."""
    node = candidate(3)
    node.step(Message(type=MessageType.APPEND, from_id=2, to=1, term=leader_term, index=0, log_term=0))
    assert node.role == Role.FOLLOWER
    assert (node.term, node.leader_id) == (leader_term, 2)


def test_candidate_ignores_append_of_an_older_term() -> None:
    """§5.1: an APPEND from an older term does not stop a candidacy."""
    node = candidate(3)
    node.campaign()  # a second round: term 2
    node.step(Message(type=MessageType.APPEND, from_id=3, to=1, term=1, index=0, log_term=0))
    assert node.role == Role.CANDIDATE and node.term == 2
    stale_answer = node.ready().messages[-1]
    assert (stale_answer.type, stale_answer.to, stale_answer.term) == (MessageType.APPEND_RESPONSE, 3, 2)


@pytest.mark.parametrize(
    ("voter_count", "acks", "committed"),
    [
        (1, [], True),
        (3, [], False),
        (3, [2], True),
        (5, [2], False),
        (5, [2, 3], True),
        (7, [2, 3], False),
        (7, [2, 3, 4], True),
    ],
)
def test_leader_commits_once_a_majority_has_the_entry(
    voter_count: int, acks: list[int], committed: bool
) -> None:
    """§5.3: an entry is committed once the leader (after persisting) and a majority hold it."""
    storage = MemoryStorage(ConfState(voters=tuple(range(1, voter_count + 1))))
    node = RaftNode(RaftConfig(node_id=1, pre_vote=False), storage, random.Random(1))
    node.campaign()
    for voter in range(2, voter_count // 2 + 2):
        node.step(Message(type=MessageType.VOTE_RESPONSE, from_id=voter, to=1, term=1))
    assert node.role == Role.LEADER
    ready = node.ready()
    storage.append(ready.entries)
    node.advance(ready)
    node.propose(b"x")
    ready = node.ready()
    storage.append(ready.entries)
    node.advance(ready)
    for voter in acks:
        node.step(Message(type=MessageType.APPEND_RESPONSE, from_id=voter, to=1, term=1, index=2))
    assert (node.log.committed == 2) is committed


def test_follower_appends_after_matching_previous_entry_and_ignores_duplicates() -> None:
    """§5.3: entries after a matching (index, term) are appended; a replayed APPEND changes nothing."""
    storage = MemoryStorage(ConfState(voters=(1, 2, 3)))
    node = RaftNode(RaftConfig(node_id=2), storage, random.Random(2))
    append = Message(type=MessageType.APPEND, from_id=1, to=2, term=1, index=0, log_term=0,
                     entries=(Entry(term=1, index=1, data=b"a"), Entry(term=1, index=2, data=b"b")),
                     commit=1)
    node.step(append)
    ready = node.ready()
    storage.append(ready.entries)
    storage.set_hard_state(ready.hard_state)
    node.advance(ready)
    assert node.log.last_index() == 2 and node.log.committed == 1
    node.step(append)
    ready = node.ready()
    assert ready.entries == ()
    # The replay starts below the commit index: answered with the commit index (as etcd).
    assert [(m.type, m.index, m.reject) for m in ready.messages] == [(MessageType.APPEND_RESPONSE, 1, False)]
