"""Leader election: randomised timeouts, voting rules, pre-vote, check-quorum, leader lease."""

from __future__ import annotations

import random

import pytest

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfState, Entry, HardState, Message, MessageType, Role


def single_node(node_id: int = 1, voters: tuple[int, ...] = (1, 2, 3), **fields: object) -> RaftNode:
    storage = MemoryStorage(ConfState(voters=voters))
    return RaftNode(RaftConfig(node_id=node_id, **fields), storage, random.Random(node_id))  # type: ignore[arg-type]


def test_follower_campaigns_after_randomised_timeout() -> None:
    """§5.2: a follower that hears nothing campaigns within [timeout, 2*timeout) ticks."""
    for seed in range(20):
        storage = MemoryStorage(ConfState(voters=(1, 2, 3)))
        node = RaftNode(RaftConfig(node_id=1, pre_vote=False), storage, random.Random(seed))
        ticks = 0
        while node.role == Role.FOLLOWER:
            node.tick()
            ticks += 1
            assert ticks < 20
        assert 10 <= ticks < 20
        assert node.role == Role.CANDIDATE and node.term == 1


def test_timeouts_differ_between_nodes() -> None:
    """§5.2: randomised timeouts spread nodes out, so split votes are rare."""
    timeouts = set()
    for seed in range(10):
        node = RaftNode(RaftConfig(node_id=1), MemoryStorage(ConfState(voters=(1, 2, 3))), random.Random(seed))
        ticks = 0
        while node.role == Role.FOLLOWER:
            node.tick()
            ticks += 1
        timeouts.add(ticks)
    assert len(timeouts) > 3


def test_candidate_persists_term_and_vote_in_the_ready_with_its_vote_requests() -> None:
    """§5.2 + persist-before-send: the vote for itself rides in the same Ready as the requests."""
    node = single_node(pre_vote=False)
    node.campaign()
    ready = node.ready()
    assert ready.hard_state == HardState(term=1, vote=1, commit=0)
    assert ready.must_sync
    requests = [m for m in ready.messages if m.type == MessageType.VOTE]
    assert sorted(m.to for m in requests) == [2, 3]
    assert all(m.term == 1 for m in requests)


def test_election_with_three_nodes(make_network) -> None:
    """§5.2: a candidate with votes from a majority becomes leader and appends a no-op."""
    net = make_network(3)
    leader = net.elect(1)
    assert leader.term == 1
    assert net.leaders() == [1]
    assert all(node.leader_id == 1 for node in net.nodes.values())
    noop = leader.log.slice(1, 2)[0]
    assert noop.term == 1 and noop.data == b""
    assert all(node.log.committed == 1 for node in net.nodes.values())


def test_candidate_without_majority_does_not_win(make_network) -> None:
    """§5.2: with two of three nodes unreachable, the candidate stays a (pre-)candidate."""
    net = make_network(3, pre_vote=False)
    net.isolate(1)
    net.nodes[1].campaign()
    net.stabilize()
    assert net.nodes[1].role == Role.CANDIDATE
    assert net.leaders() == []


@pytest.mark.parametrize(
    ("our_last", "candidate_last", "granted"),
    [
        ((1, 1), (1, 1), True),  # equal logs
        ((1, 1), (2, 1), True),  # longer log, same last term
        ((2, 1), (1, 1), False),  # shorter log, same last term
        ((1, 2), (3, 1), False),  # longer but older last term
        ((3, 1), (1, 2), True),  # shorter but newer last term
    ],
)
def test_vote_only_for_up_to_date_log(
    our_last: tuple[int, int], candidate_last: tuple[int, int], granted: bool
) -> None:
    """§5.4.1: a voter refuses a candidate whose log is less up to date than its own."""
    storage = MemoryStorage(ConfState(voters=(1, 2, 3)))
    last_index, last_term = our_last
    storage.append([Entry(term=1 if index < last_index else last_term, index=index) for index in range(1, last_index + 1)])
    storage.set_hard_state(HardState(term=last_term))
    node = RaftNode(RaftConfig(node_id=1, pre_vote=False), storage, random.Random(1))
    candidate_index, candidate_term = candidate_last
    node.step(Message(
        type=MessageType.VOTE, from_id=2, to=1, term=5, index=candidate_index, log_term=candidate_term,
    ))
    response = node.ready().messages[-1]
    assert response.type == MessageType.VOTE_RESPONSE
    assert response.reject is (not granted)


def test_at_most_one_vote_per_term() -> None:
    """§5.2: having voted for 2 in term 1, the node refuses 3 in the same term."""
    node = single_node(pre_vote=False)
    node.step(Message(type=MessageType.VOTE, from_id=2, to=1, term=1))
    node.step(Message(type=MessageType.VOTE, from_id=3, to=1, term=1))
    node.step(Message(type=MessageType.VOTE, from_id=2, to=1, term=1))
    replies = [m for m in node.ready().messages if m.type == MessageType.VOTE_RESPONSE]
    assert [(m.to, m.reject) for m in replies] == [(2, False), (3, True), (2, False)]


def test_vote_survives_restart_so_no_double_vote() -> None:
    """§5.2 / Figure 2: the vote is persisted; after a crash the node still refuses a second candidate."""
    storage = MemoryStorage(ConfState(voters=(1, 2, 3)))
    node = RaftNode(RaftConfig(node_id=1, pre_vote=False), storage, random.Random(1))
    node.step(Message(type=MessageType.VOTE, from_id=2, to=1, term=1))
    ready = node.ready()
    assert ready.hard_state == HardState(term=1, vote=2)
    storage.set_hard_state(ready.hard_state)  # persisted, then the node crashes before advance
    restarted = RaftNode(RaftConfig(node_id=1, pre_vote=False), storage, random.Random(2))
    restarted.step(Message(type=MessageType.VOTE, from_id=3, to=1, term=1))
    reply = restarted.ready().messages[-1]
    assert reply.to == 3 and reply.reject


def test_higher_term_message_turns_leader_into_follower(make_network) -> None:
    """§5.1: a node that sees a higher term adopts it and becomes a follower."""
    net = make_network(3, check_quorum=False, pre_vote=False)
    net.elect(1)
    net.isolate(1)
    net.elect(2)
    net.heal()
    net.tick(2)
    net.propose(2, b"x")
    assert net.nodes[1].role == Role.FOLLOWER
    assert net.nodes[1].term == net.nodes[2].term
    assert net.leaders() == [2]


def test_stale_term_message_is_ignored() -> None:
    """§5.1: a request with a stale term is rejected; the old leader learns the newer term."""
    node = single_node(pre_vote=False)
    node.step(Message(type=MessageType.VOTE, from_id=2, to=1, term=3))
    node.advance(node.ready())
    node.step(Message(type=MessageType.APPEND, from_id=3, to=1, term=2, index=0, log_term=0))
    messages = node.ready().messages
    assert [(m.type, m.to, m.term) for m in messages] == [(MessageType.APPEND_RESPONSE, 3, 3)]
    assert node.leader_id == 0


def test_pre_vote_does_not_raise_terms_of_a_partitioned_node(make_network) -> None:
    """§9.6: an isolated node with pre-vote keeps its term however long it is cut off."""
    net = make_network(3)
    net.elect(1)
    net.isolate(3)
    net.tick(50, nodes=[3])
    assert net.nodes[3].term == 1
    assert net.nodes[3].role == Role.PRE_CANDIDATE


def test_rejoining_node_does_not_depose_healthy_leader(make_network) -> None:
    """§9.6: after the partition heals, the leader stays leader and the term is unchanged."""
    net = make_network(3)
    net.elect(1)
    net.isolate(3)
    net.tick(50, nodes=[3])
    net.heal()
    net.tick(5)
    assert net.leaders() == [1]
    assert all(node.term == 1 for node in net.nodes.values())


def test_without_pre_vote_a_rejoining_node_disrupts(make_network) -> None:
    """Control for the test above: without pre-vote the isolated node's term grows and disrupts."""
    net = make_network(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.tick(50, nodes=[3])
    assert net.nodes[3].term > 2
    net.heal()
    net.tick(30)
    assert net.nodes[1].term > 1


def test_pre_vote_success_leads_to_real_election(make_network) -> None:
    """§9.6: a successful pre-vote is followed by a real election at term + 1."""
    net = make_network(3)
    net.nodes[2].campaign()
    net.stabilize()
    assert net.leaders() == [2]
    assert net.nodes[2].term == 1


def test_pre_vote_is_refused_while_the_leader_is_fresh(make_network) -> None:
    """§4.2.3 leader lease: followers that heard the leader recently ignore (pre-)votes."""
    net = make_network(3)
    net.elect(1)
    net.nodes[3].campaign()
    net.stabilize()
    assert net.leaders() == [1]
    assert net.nodes[3].role != Role.LEADER
    assert {node.term for node in net.nodes.values()} == {1}


def test_check_quorum_leader_steps_down_when_cut_off(make_network) -> None:
    """§6.2: a leader that hears from no quorum for an election timeout steps down."""
    net = make_network(3)
    net.elect(1)
    net.isolate(1)
    net.tick(10, nodes=[1])  # the first round still counts the votes it got as activity
    assert net.nodes[1].role == Role.LEADER
    net.tick(10, nodes=[1])
    assert net.nodes[1].role == Role.FOLLOWER
    assert net.nodes[1].leader_id == 0


def test_check_quorum_leader_with_quorum_stays(make_network) -> None:
    """§6.2: a leader that hears from a majority keeps leading across many timeouts."""
    net = make_network(3)
    net.elect(1)
    net.isolate(3)
    net.tick(40, nodes=[1, 2])
    assert net.leaders() == [1]


def test_cut_off_leader_is_replaced_and_learns_new_term(make_network) -> None:
    """§5.2: followers elect a new leader; when healed the old leader follows the new term."""
    net = make_network(3)
    net.elect(1)
    net.isolate(1)
    net.tick(40)
    assert net.leaders() in ([2], [3])
    new_leader = net.leaders()[0]
    net.heal()
    net.tick(3)
    assert net.leaders() == [new_leader]
    assert net.nodes[1].leader_id == new_leader


def test_single_node_cluster_elects_itself_and_commits() -> None:
    """A one-voter cluster wins its own vote and commits once its own entries are persisted."""
    storage = MemoryStorage(ConfState(voters=(1,)))
    node = RaftNode(RaftConfig(node_id=1), storage, random.Random(1))
    node.campaign()
    assert node.role == Role.LEADER
    ready = node.ready()
    assert ready.entries and not ready.committed_entries  # not durable yet: not counted
    storage.append(ready.entries)
    node.advance(ready)
    node.propose(b"x")
    ready = node.ready()
    assert [e.index for e in ready.committed_entries] == [1]
    storage.append(ready.entries)
    node.advance(ready)
    assert node.ready().committed_entries[-1].data == b"x"


def test_learner_and_removed_node_never_campaign() -> None:
    """Learners and nodes outside the configuration never start an election."""
    for node in (single_node(node_id=4, voters=(1, 2, 3)),):
        for _ in range(100):
            node.tick()
        node.campaign()
        assert node.role == Role.FOLLOWER and node.term == 0


def test_pre_vote_rejection_from_a_term_zero_node_counts(make_network) -> None:
    """A fresh node at term 0 rejects a pre-vote with term 0; the pre-candidate still counts it."""
    net = make_network(3)
    node = net.nodes[1]
    node.campaign()
    node.step(Message(type=MessageType.PRE_VOTE_RESPONSE, from_id=2, to=1, term=0, reject=True))
    node.step(Message(type=MessageType.PRE_VOTE_RESPONSE, from_id=3, to=1, term=0, reject=True))
    assert node.role == Role.FOLLOWER


def _ticks_until_campaign(node: RaftNode, limit: int) -> int:
    ticks = 0
    while node.role == Role.FOLLOWER and ticks < limit:
        node.tick()
        ticks += 1
    return ticks


def test_rejected_vote_request_of_a_higher_term_keeps_the_election_clock_running() -> None:
    """Figure 2: only a leader's message or a granted vote restarts the election timer.

    A node with a longer log adopts the term of a candidate it refuses but keeps
    counting, so a stream of such candidacies cannot hold it a follower for ever.
    """
    storage = MemoryStorage(ConfState(voters=(1, 2, 3, 4, 5)))
    storage.append([Entry(term=1, index=index) for index in (1, 2, 3)])
    storage.set_hard_state(HardState(term=1))
    node = RaftNode(RaftConfig(node_id=1, pre_vote=False), storage, random.Random(3))
    ticks = 0
    while node.role == Role.FOLLOWER and ticks < 40:
        term = node.term + 1  # a candidate with a shorter log every tick, each a term higher
        node.step(Message(type=MessageType.VOTE, from_id=2 + term % 4, to=1, term=term,
                          index=2, log_term=1))
        ready = node.ready()
        assert node.term == term and ready.messages[-1].reject
        node.advance(ready)
        node.tick()
        ticks += 1
    assert node.role == Role.CANDIDATE, "the longest log never campaigned"
    assert 10 <= ticks < 20  # its own randomised timeout, however many terms went by


def test_granted_vote_restarts_the_election_clock() -> None:
    """Figure 2: a node that grants a vote gives that candidate a full timeout to win."""
    node = single_node(pre_vote=False)
    for _ in range(9):
        node.tick()
    node.step(Message(type=MessageType.VOTE, from_id=2, to=1, term=2))
    assert not node.ready().messages[-1].reject
    assert _ticks_until_campaign(node, 40) >= 10
