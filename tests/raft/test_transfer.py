"""Leadership transfer (§3.10): TIMEOUT_NOW, catch-up of a lagging target, abort, refusals."""

from __future__ import annotations

import pytest

from warmd.raft.errors import ProposalDropped
from warmd.raft.types import MessageType, Role


def test_transfer_to_an_up_to_date_follower(make_network) -> None:
    """The target gets TIMEOUT_NOW at once and wins the next term, despite the others' lease."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"x")
    net.nodes[1].transfer_leadership(2)
    net.stabilize()
    assert net.leaders() == [2]
    assert net.nodes[2].term == 2
    assert [m.to for m in net.sent if m.type == MessageType.TIMEOUT_NOW] == [2]


def test_transfer_to_a_lagging_follower_waits_for_catch_up(make_network) -> None:
    """The leader first brings the target up to date, then sends TIMEOUT_NOW."""
    net = make_network(3)
    net.elect(1)
    net.isolate(3)
    net.propose(1, *[bytes([n]) for n in range(20)])
    net.heal()
    net.nodes[1].transfer_leadership(3)
    assert not [m for m in net.sent if m.type == MessageType.TIMEOUT_NOW]
    net.stabilize()
    net.tick(2)
    assert net.leaders() == [3]
    assert net.app_state[3] == [bytes([n]) for n in range(20)]


def test_proposals_are_dropped_during_a_transfer(make_network) -> None:
    """While a transfer is under way the leader refuses proposals with a typed reason."""
    net = make_network(3)
    net.elect(1)
    net.isolate(3)
    net.nodes[1].transfer_leadership(3)
    with pytest.raises(ProposalDropped) as raised:
        net.nodes[1].propose(b"x")
    assert raised.value.reason == ProposalDropped.TRANSFER_IN_PROGRESS


def test_transfer_to_unreachable_target_aborts_after_election_timeout(make_network) -> None:
    """A target that never catches up: the transfer is abandoned and proposals work again."""
    net = make_network(3)
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"x")
    net.nodes[1].transfer_leadership(3)
    net.tick(9, nodes=[1, 2])
    assert net.nodes[1].status().lead_transferee == 3
    net.tick(1, nodes=[1, 2])
    assert net.nodes[1].status().lead_transferee == 0
    assert net.leaders() == [1]
    net.propose(1, b"y")
    assert net.app_state[2] == [b"x", b"y"]


@pytest.mark.parametrize("target", [4, 9])
def test_transfer_to_a_non_voter_is_refused(make_network, target: int) -> None:
    """Only a voter can take over: learners and strangers are refused."""
    net = make_network(4, learners=(4,))
    net.elect(1)
    with pytest.raises(ProposalDropped) as raised:
        net.nodes[1].transfer_leadership(target)
    assert raised.value.reason == ProposalDropped.NOT_A_VOTER


def test_follower_forwards_a_transfer_request(make_network) -> None:
    """transfer_leadership on a follower asks the leader, which hands over."""
    net = make_network(3)
    net.elect(1)
    net.nodes[3].transfer_leadership(2)
    net.stabilize()
    assert net.leaders() == [2]


def test_transfer_to_itself_is_a_no_op(make_network) -> None:
    """Asking the leader to transfer to itself changes nothing."""
    net = make_network(3)
    net.elect(1)
    net.nodes[1].transfer_leadership(1)
    net.stabilize()
    assert net.leaders() == [1] and net.nodes[1].term == 1
    net.propose(1, b"still accepted")


def test_timeout_now_is_ignored_by_a_learner(make_network) -> None:
    """A learner told to campaign (e.g. by a stale leader) does not."""
    net = make_network(4, learners=(4,))
    net.elect(1)
    from warmd.raft.types import Message

    net.nodes[4].step(Message(type=MessageType.TIMEOUT_NOW, from_id=1, to=4, term=1))
    net.stabilize()
    assert net.nodes[4].role == Role.LEARNER and net.leaders() == [1]
