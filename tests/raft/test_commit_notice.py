"""Who is told a new commit index at once, and which APPENDs go unanswered.

A leader tells a replicating member a new commit index in an empty APPEND of its own
only when something there waits for it (proposals it forwarded, a read answered to it,
the leader's own proposals); the others learn it with their next entries or heartbeat.
Such a commit-only APPEND is marked COMMIT_ONLY and, accepted, is not answered; a
rejection always is.
"""

from __future__ import annotations

from warmd.raft.core import COMMIT_ONLY
from warmd.raft.types import Message, MessageType

from .conftest import Network


def _elected(make_network, **config: object) -> Network:
    net = make_network(3, **config)
    net.elect(1)
    net.tick(3)  # past the first heartbeats: every member replicating and up to date
    return net


def _since(net: Network, start: int) -> list[Message]:
    return [message for message in net.sent[start:] if message.type != MessageType.PROPOSE]


def _commit_only(messages: list[Message], to: int) -> list[Message]:
    return [message for message in messages if message.type == MessageType.APPEND
            and message.to == to and not message.entries]


def test_a_forwarded_write_tells_its_follower_the_commit_and_no_one_else(make_network) -> None:
    """Through follower 3: 3 is told the commit at once (and applies with no tick), 2 is
    sent no commit-only APPEND, and neither answers one; 2 learns it at the heartbeat."""
    net = _elected(make_network, heartbeat_ticks=2)
    start = len(net.sent)
    net.propose(3, b"w1")
    sent = _since(net, start)
    assert [message.context for message in _commit_only(sent, 3)] == [COMMIT_ONLY]
    assert _commit_only(sent, 2) == []
    answers = [message for message in sent if message.type == MessageType.APPEND_RESPONSE]
    assert sorted(message.from_id for message in answers) == [2, 3]  # the entries' answers only
    assert net.app_state[3] == net.app_state[1] == [b"w1"]
    assert net.app_state[2] == []
    net.tick(2)
    assert net.app_state[2] == [b"w1"]


def test_messages_per_commit_with_and_without_waiters(make_network) -> None:
    """The same write made on the leader (every member may wait for the leader's own
    work, e.g. its task assignments) costs two commit-only APPENDs, through a follower one."""
    counts = {}
    for proposer in (1, 3):
        net = _elected(make_network)
        start = len(net.sent)
        net.propose(proposer, b"w")
        sent = _since(net, start)
        counts[proposer] = (len(sent), len(_commit_only(sent, 2)) + len(_commit_only(sent, 3)))
        assert net.app_state[proposer] == [b"w"]
    # leader: 2 APPENDs, 2 answers, 2 commit-only; follower: 2 + 2 + 1.
    assert counts == {1: (6, 2), 3: (5, 1)}


def test_a_commit_riding_on_new_entries_needs_no_empty_append(make_network) -> None:
    """While follower 3 keeps forwarding, the commit reaches it with its next entries when
    they leave together, so fewer commit-only APPENDs than commits go out."""
    net = _elected(make_network)
    start = len(net.sent)
    for number in range(20):
        net.nodes[3].propose(b"w%d" % number)
        net.process_ready(3)
        if number % 2:
            net.stabilize()
    net.stabilize()
    sent = _since(net, start)
    assert net.app_state[3] == [b"w%d" % number for number in range(20)]
    assert len(_commit_only(sent, 2)) == 0
    commits = sum(1 for message in sent if message.type == MessageType.APPEND
                  and message.to == 3 and message.entries)
    assert len(_commit_only(sent, 3)) <= commits


def test_a_read_on_a_follower_is_served_without_a_tick(make_network) -> None:
    """Follower 2 has nothing waiting when 3's write commits; a read asked on 2 then comes
    back with that index and 2 learns the commit at once (no heartbeat needed), even when
    its answer to the entries was lost and the read's heartbeat could not tell it."""
    net = _elected(make_network, heartbeat_ticks=5)
    index = net.nodes[1].log.last_index() + 1
    net.drop = lambda message: (message.type == MessageType.APPEND_RESPONSE
                                and message.from_id == 2 and message.index == index)
    net.propose(3, b"w1")
    net.drop = None
    assert net.sent_dropped.count(True) == 1
    assert net.app_state[2] == [] and net.nodes[1].status().progress[1].match < index
    net.nodes[2].read_index(b"r1")
    net.stabilize()
    assert [state.index for state in net.read_states[2]] == [net.nodes[1].log.committed]
    assert net.nodes[2].log.committed >= net.read_states[2][0].index
    assert net.app_state[2] == [b"w1"]


def test_a_commit_only_append_that_does_not_match_is_answered(make_network) -> None:
    """A rejection is always answered, COMMIT_ONLY or not: the leader backs up on it."""
    net = _elected(make_network)
    follower = net.nodes[2]
    last = follower.log.last_index()
    start = len(net.sent)
    follower.step(Message(type=MessageType.APPEND, from_id=1, to=2, term=follower.term,
                          index=last + 3, log_term=follower.term, commit=last + 3,
                          context=COMMIT_ONLY))
    net.process_ready(2)
    answers = net.sent[start:]
    assert [(message.type, message.reject) for message in answers] == [
        (MessageType.APPEND_RESPONSE, True)]


def test_a_matching_commit_only_append_raises_the_commit_unanswered(make_network) -> None:
    """Accepted, a COMMIT_ONLY APPEND raises the commit (capped at its own index) and
    sends nothing; the same APPEND unmarked is answered."""
    net = _elected(make_network)
    net.propose(1, b"a", b"b")
    follower = net.nodes[2]
    for context, answered in ((COMMIT_ONLY, 0), (b"", 1)):
        start = len(net.sent)
        follower.step(Message(type=MessageType.APPEND, from_id=1, to=2, term=follower.term,
                              index=follower.log.last_index(), log_term=follower.term,
                              commit=follower.log.last_index(), context=context))
        net.process_ready(2)
        assert follower.log.committed == follower.log.last_index()
        assert len(net.sent[start:]) == answered


def test_a_new_leader_tells_every_member_the_commit_of_its_log(make_network) -> None:
    """Follower 3's write reached every log but was not committed when leader 1 went
    away; the new leader knows nothing of who forwarded what, so every member is told the
    commit of its no-op (and of the write before it) at once, with no heartbeat."""
    net = _elected(make_network, check_quorum=False)  # no leader lease: 2 may campaign now
    net.drop = lambda message: message.type == MessageType.APPEND_RESPONSE
    net.propose(3, b"w1")
    net.drop = None
    assert all(net.app_state[node] == [] for node in (1, 2, 3))
    net.isolate(1)
    net.elect(2)
    assert net.app_state[2] == net.app_state[3] == [b"w1"]
