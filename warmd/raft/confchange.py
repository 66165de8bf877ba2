"""ConfChange encoding (msgpack) and the single-server change rules on a ConfState."""

from __future__ import annotations

import msgpack

from warmd.raft.errors import ProposalDropped
from warmd.raft.types import ConfChange, ConfChangeType, ConfState


def encode_conf_change(change: ConfChange) -> bytes:
    """The bytes of a CONF_CHANGE entry's data."""
    return msgpack.packb([int(change.type), change.node_id, change.context], use_bin_type=True)


def decode_conf_change(data: bytes) -> ConfChange:
    """Parse a CONF_CHANGE entry; malformed data raises ProposalDropped(INVALID_CONF_CHANGE)."""
    try:
        kind, node_id, context = msgpack.unpackb(data, raw=False)
        change = ConfChange(type=ConfChangeType(kind), node_id=node_id, context=bytes(context))
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        raise ProposalDropped(ProposalDropped.INVALID_CONF_CHANGE, str(error)) from error
    if not isinstance(node_id, int) or isinstance(node_id, bool) or node_id <= 0:
        raise ProposalDropped(ProposalDropped.INVALID_CONF_CHANGE, f"node id {node_id!r}")
    return change


def apply_conf_change(state: ConfState, change: ConfChange) -> ConfState:
    """The configuration after `change`; a change that changes nothing returns `state`.

    ADD_VOTER adds a voter or promotes a learner; ADD_LEARNER adds a learner (a voter
    is never demoted this way: it stays a voter); REMOVE_NODE removes either.
    """
    voters, learners = set(state.voters), set(state.learners)
    node = change.node_id
    if change.type == ConfChangeType.ADD_VOTER:
        learners.discard(node)
        voters.add(node)
    elif change.type == ConfChangeType.ADD_LEARNER:
        if node not in voters:
            learners.add(node)
    else:
        voters.discard(node)
        learners.discard(node)
    return ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))


def check_conf_change(state: ConfState, change: ConfChange) -> None:
    """Raise ProposalDropped when `change` would be a no-op or leave no voter."""
    node = change.node_id
    if change.type == ConfChangeType.ADD_VOTER and node in state.voters:
        raise ProposalDropped(ProposalDropped.INVALID_CONF_CHANGE, f"{node} is already a voter")
    if change.type == ConfChangeType.ADD_LEARNER and (node in state.voters or node in state.learners):
        raise ProposalDropped(ProposalDropped.INVALID_CONF_CHANGE, f"{node} is already a member")
    if change.type == ConfChangeType.REMOVE_NODE:
        if node not in state.voters and node not in state.learners:
            raise ProposalDropped(ProposalDropped.INVALID_CONF_CHANGE, f"{node} is not a member")
        if state.voters == (node,):
            raise ProposalDropped(ProposalDropped.INVALID_CONF_CHANGE, "cannot remove the last voter")
