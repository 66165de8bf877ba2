"""Membership changes one server at a time: learners, promotion, removal, the pending rule."""

from __future__ import annotations

import pytest

from warmd.raft.confchange import decode_conf_change, encode_conf_change
from warmd.raft.errors import PromotionCheck, PromotionRefused, ProposalDropped
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfChange, ConfChangeType, Message, MessageType, Role

ADD_LEARNER, ADD_VOTER, REMOVE = ConfChangeType.ADD_LEARNER, ConfChangeType.ADD_VOTER, ConfChangeType.REMOVE_NODE


def cluster_with_learner(make_network, **fields: object):
    """Three voters led by node 1, plus node 4 joined as a learner and caught up."""
    net = make_network(3, **fields)
    net.elect(1)
    net.add_node(4, MemoryStorage(net.conf_state))  # a joiner starts from the founding ConfState
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    net.stabilize()
    net.tick(2)
    return net


def test_conf_change_round_trips_through_its_encoding() -> None:
    """A ConfChange survives encoding into entry data; garbage data is an invalid change."""
    change = ConfChange(ADD_VOTER, 7, b"10.0.0.7:7000")
    assert decode_conf_change(encode_conf_change(change)) == change
    with pytest.raises(ProposalDropped) as raised:
        decode_conf_change(b"\xc1garbage")
    assert raised.value.reason == ProposalDropped.INVALID_CONF_CHANGE


def test_learner_receives_the_log_but_never_votes_or_campaigns(make_network) -> None:
    """§4.2.1: a learner replicates the log, stays a learner and never raises its term."""
    net = cluster_with_learner(make_network)
    net.propose(1, b"x")
    net.tick(1)
    learner = net.nodes[4]
    assert learner.role == Role.LEARNER
    assert net.app_state[4] == [b"x"]
    assert all(node.conf_state.learners == (4,) for node in net.nodes.values())
    net.isolate(4)
    net.tick(60, nodes=[4])
    assert learner.term == net.nodes[1].term and learner.role == Role.LEARNER


def test_learner_does_not_count_for_the_commit_quorum(make_network) -> None:
    """A learner's acknowledgement never completes a majority of voters."""
    net = cluster_with_learner(make_network, check_quorum=False)
    net.cut(1, 2)
    net.cut(1, 3)
    committed = net.nodes[1].log.committed
    net.propose(1, b"y")
    net.tick(1, nodes=[1])  # a replicating learner's entries go out in batches or on a tick
    assert net.nodes[4].log.last_index() == net.nodes[1].log.last_index()
    assert net.nodes[1].log.committed == committed


def test_learner_gets_entries_in_batches_or_on_the_tick_and_the_commit_with_them(
        make_network) -> None:
    """A replicating learner is sent nothing per Ready: its entries go out once a quarter of
    learner_lag_entries_max wait, or on the leader's next tick; no empty APPEND tells it a
    commit (voters get theirs at once). What each APPEND and answer cost the leader is
    spent once per batch, and the learner never lags enough to refuse a promotion."""
    net = cluster_with_learner(make_network, heartbeat_ticks=2, learner_lag_entries_max=64)
    leader, learner = net.nodes[1], net.nodes[4]

    def appends_since(mark: int) -> list[Message]:
        return [m for m in net.sent[mark:] if m.type == MessageType.APPEND]

    mark = len(net.sent)
    net.propose(1, b"z")
    assert {m.to for m in appends_since(mark) if m.entries} == {2, 3}
    assert {m.to for m in appends_since(mark) if not m.entries} == {2, 3}, "commit to voters"
    assert learner.log.last_index() < leader.log.last_index()
    net.tick(1, nodes=[1])
    assert learner.log.last_index() == leader.log.last_index()
    net.tick(2)  # a heartbeat interval: the learner hears the commit
    assert learner.log.committed == leader.log.committed
    assert net.app_state[4] == net.app_state[1]

    mark = len(net.sent)
    net.propose(1, *(b"batch%d" % i for i in range(16)))  # 64 // 4 entries waiting
    to_learner = [m for m in appends_since(mark) if m.to == 4 and m.entries]
    assert to_learner and learner.log.last_index() == leader.log.last_index()
    assert len(to_learner) < 16, "one APPEND per batch, not per entry"


def test_a_learners_answer_does_not_send_it_the_entries_that_arrived_meanwhile(
        make_network) -> None:
    """The answer to a learner's batch waits like the batch did: what the leader appended
    while the batch travelled goes out with the next full batch or tick, not one APPEND
    per round trip (which kept the leader's messages per commit near a voter's)."""
    net = cluster_with_learner(make_network, learner_lag_entries_max=64)
    leader, learner = net.nodes[1], net.nodes[4]
    for i in range(16):
        leader.propose(b"batch%d" % i)
    net.process_ready(1)  # the batch of 16 leaves for the learner
    leader.propose(b"meanwhile")  # appended before the learner's answer comes back
    mark = len(net.sent)
    net.stabilize()
    assert learner.log.last_index() == leader.log.last_index() - 1
    assert not [m for m in net.sent[mark:] if m.to == 4 and m.entries]
    net.tick(1, nodes=[1])
    assert learner.log.last_index() == leader.log.last_index()


def test_caught_up_learner_is_promoted(make_network) -> None:
    """ADD_VOTER on a caught-up learner makes it a voter on every node."""
    net = cluster_with_learner(make_network)
    net.nodes[1].propose_conf_change(ConfChange(ADD_VOTER, 4))
    net.stabilize()
    net.tick(1)
    assert all(node.conf_state.voters == (1, 2, 3, 4) for node in net.nodes.values())
    assert net.nodes[4].role == Role.FOLLOWER


def test_lagging_learner_promotion_is_refused(make_network) -> None:
    """The leader refuses to promote a learner far behind, naming the reason."""
    net = cluster_with_learner(make_network, learner_lag_entries_max=5)
    net.isolate(4)
    net.propose(1, *[bytes([n]) for n in range(10)])
    with pytest.raises(PromotionRefused) as raised:
        net.nodes[1].propose_conf_change(ConfChange(ADD_VOTER, 4))
    assert raised.value.reason == ProposalDropped.LEARNER_LAGGING
    assert raised.value.check is PromotionCheck.CAUGHT_UP
    assert "10 entries behind the commit index" in str(raised.value)
    net.heal()
    net.tick(2)
    net.nodes[1].propose_conf_change(ConfChange(ADD_VOTER, 4))  # caught up now: accepted


def test_learner_that_never_answered_is_not_promoted(make_network) -> None:
    """A learner the leader never heard from (e.g. a rejected handshake) stays a learner.

    On a young log it is within the lag limit, so only the contact check refuses it.
    """
    net = make_network(3)
    net.elect(1)
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))  # node 4 does not exist
    net.stabilize()
    with pytest.raises(PromotionRefused) as raised:
        net.nodes[1].propose_conf_change(ConfChange(ADD_VOTER, 4))
    assert raised.value.check is PromotionCheck.RECENT_CONTACT
    assert raised.value.reason == ProposalDropped.LEARNER_UNREACHABLE
    assert "never answered" in str(raised.value)
    assert net.nodes[1].conf_state.voters == (1, 2, 3)


def test_learner_silent_for_an_election_timeout_is_not_promoted(make_network) -> None:
    """A caught-up learner that stopped answering is refused until it answers again."""
    net = cluster_with_learner(make_network, election_timeout_ticks=10)
    net.isolate(4)
    net.tick(11, nodes=[1])
    with pytest.raises(PromotionRefused) as raised:
        net.nodes[1].propose_conf_change(ConfChange(ADD_VOTER, 4))
    assert raised.value.check is PromotionCheck.RECENT_CONTACT
    net.heal()
    net.tick(2)
    net.nodes[1].propose_conf_change(ConfChange(ADD_VOTER, 4))  # answered again: accepted


def test_only_one_conf_change_may_be_pending(make_network) -> None:
    """§4.1: a second change is refused while the first is uncommitted."""
    net = make_network(3)
    net.elect(1)
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    with pytest.raises(ProposalDropped) as raised:
        net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 5))
    assert raised.value.reason == ProposalDropped.CONF_CHANGE_PENDING
    net.stabilize()
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 5))


def test_new_leader_appends_no_change_before_committing_in_its_term(make_network) -> None:
    """The dissertation's fix (§4.1 bug): no change until an entry of the leader's term commits."""
    net = make_network(3)
    net.drop = lambda m: m.type == MessageType.APPEND  # the no-op never reaches anyone
    net.elect(1)
    with pytest.raises(ProposalDropped) as raised:
        net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    assert raised.value.reason == ProposalDropped.TERM_NOT_COMMITTED


def test_configuration_takes_effect_when_appended(make_network) -> None:
    """§4.1: the leader uses the new configuration as soon as the entry is in its log."""
    net = make_network(3)
    net.elect(1)
    net.isolate(1)
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    assert net.nodes[1].conf_state.learners == (4,)
    assert net.nodes[2].conf_state.learners == ()


def test_truncated_conf_change_is_undone(make_network) -> None:
    """§4.1: a node whose uncommitted change is overwritten goes back to the previous configuration."""
    net = make_network(3)
    net.elect(1)
    net.isolate(1)
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    net.stabilize()
    net.tick(40, nodes=[2, 3])
    new_leader = net.leaders()
    assert new_leader and new_leader != [1]
    net.propose(new_leader[0], b"newer")
    net.heal()
    net.tick(25)
    assert net.nodes[1].conf_state.learners == ()
    assert net.log_terms(1) == net.log_terms(new_leader[0])


@pytest.mark.parametrize(
    "change",
    [ConfChange(ADD_VOTER, 2), ConfChange(ADD_LEARNER, 3), ConfChange(REMOVE, 9)],
    ids=["add-existing-voter", "demote-voter", "remove-stranger"],
)
def test_invalid_changes_are_refused(make_network, change: ConfChange) -> None:
    """Changes that would do nothing or demote a voter are refused as invalid."""
    net = make_network(3)
    net.elect(1)
    with pytest.raises(ProposalDropped) as raised:
        net.nodes[1].propose_conf_change(change)
    assert raised.value.reason == ProposalDropped.INVALID_CONF_CHANGE


def test_removing_the_last_voter_is_refused(make_network) -> None:
    """A cluster never configures itself out of voters."""
    net = make_network(1)
    net.elect(1)
    with pytest.raises(ProposalDropped, match="last voter"):
        net.nodes[1].propose_conf_change(ConfChange(REMOVE, 1))


def test_removed_leader_steps_down_and_never_campaigns(make_network) -> None:
    """§4.2.2: once its removal commits the leader steps down; a successor takes over at once."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"before")
    net.nodes[1].propose_conf_change(ConfChange(REMOVE, 1))
    net.stabilize()
    assert net.nodes[1].role == Role.FOLLOWER
    successors = net.leaders()
    assert len(successors) == 1 and successors[0] in (2, 3)
    assert any(m.type == MessageType.TIMEOUT_NOW and m.from_id == 1 for m in net.sent)
    term = net.nodes[successors[0]].term
    net.tick(60)
    assert net.nodes[1].term <= term
    assert net.leaders() == successors
    net.propose(successors[0], b"after")
    net.tick(1, nodes=[2, 3])
    assert net.app_state[2] == net.app_state[3] == [b"before", b"after"]


def test_removed_follower_leaves_quorum(make_network) -> None:
    """After removing a voter of three, the remaining two commit on their own."""
    net = make_network(3)
    net.elect(1)
    net.nodes[1].propose_conf_change(ConfChange(REMOVE, 3))
    net.stabilize()
    net.isolate(3)
    net.propose(1, b"two of two")
    assert net.app_state[1] == [b"two of two"]
    net.tick(60, nodes=[3])
    assert net.nodes[3].role != Role.LEADER


def test_follower_forwards_a_conf_change(make_network) -> None:
    """A conf change proposed on a follower is forwarded and applied like one from the leader."""
    net = make_network(3)
    net.elect(1)
    net.nodes[2].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    net.stabilize()
    assert net.nodes[1].conf_state.learners == (4,)


def test_joiner_with_empty_configuration_learns_the_founding_one(make_network) -> None:
    """A blank joiner gets the founding ConfState with the leader's first APPEND, then replays changes."""
    net = make_network(3)
    net.elect(1)
    net.add_node(4, MemoryStorage())  # an empty disk: no configuration at all
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    net.stabilize()
    net.tick(2)
    assert net.nodes[4].conf_state.voters == (1, 2, 3)
    assert net.nodes[4].role == Role.LEARNER
    net.nodes[1].propose_conf_change(ConfChange(ADD_VOTER, 4))
    net.stabilize()
    assert net.nodes[4].conf_state.voters == (1, 2, 3, 4)


def test_restarted_blank_joiner_relearns_the_founding_configuration(make_network) -> None:
    """A joiner whose disk holds no configuration asks for it again after a restart."""
    net = make_network(3)
    net.elect(1)
    net.add_node(4, MemoryStorage())
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    net.stabilize()
    net.nodes[1].propose_conf_change(ConfChange(ADD_VOTER, 4))
    net.stabilize()
    restarted = net.restart(4)
    assert restarted.conf_state.voters == ()  # the changes wait for the founding configuration
    net.tick(1)
    assert restarted.conf_state.voters == (1, 2, 3, 4)


def test_blank_joiner_learns_configuration_from_a_snapshot(make_network) -> None:
    """When the leader's log is compacted, a blank joiner gets the configuration with the snapshot."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"a")
    net.tick(1)
    net.snapshot_app(1)
    net.add_node(4, MemoryStorage())
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    net.stabilize()
    net.tick(2)
    assert net.nodes[4].conf_state.learners == (4,)
    assert net.app_state[4] == [b"a"]


def test_blank_joiner_does_not_compact_before_it_knows_its_configuration() -> None:
    """compact() on a node with no configuration keeps the log (its snapshot could not name one)."""
    import random

    from warmd.raft.config import RaftConfig
    from warmd.raft.core import RaftNode
    from warmd.raft.types import Entry, HardState

    storage = MemoryStorage()
    storage.append([Entry(term=1, index=1, data=b"x")])
    storage.set_hard_state(HardState(term=1, commit=1))
    node = RaftNode(RaftConfig(node_id=4), storage, random.Random(4))
    ready = node.ready()
    storage.append(ready.entries)
    node.advance(ready)
    assert node.compact(1, b"state") is None
    assert not node.has_ready() and node.log.first_index() == 1


def test_configuration_snapshot_to_a_caught_up_joiner_ends_snapshot_state(make_network) -> None:
    """A snapshot sent only to hand a restarted blank joiner its configuration does not stall it."""
    from warmd.raft.types import ProgressState

    net = make_network(3)
    net.elect(1)
    net.add_node(4, MemoryStorage())
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    net.stabilize()
    net.propose(1, b"a")
    net.tick(1)
    net.snapshot_app(1)  # snapshot index == the learner's match
    net.restart(4)  # its disk holds no configuration: it asks again
    net.tick(2)
    assert net.nodes[4].conf_state.learners == (4,)
    net.propose(1, b"b")
    net.tick(1)
    assert net.app_state[4] == [b"a", b"b"]
    peer = {p.node_id: p for p in net.nodes[1].status().progress}[4]
    assert peer.state == ProgressState.REPLICATE
