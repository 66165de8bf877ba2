"""DriverStatus: the frozen picture of a node that `warmctl status` and `members` print.

Built from the core's RaftStatus plus what only the driver knows: member addresses, the
latest snapshot, and when each peer was last heard from. Plain values only, so
`to_document()` is JSON for the admin socket.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from warmd.raft.types import RaftStatus
from warmd.runtime.node.applier import Applier


@dataclass(frozen=True, slots=True)
class PeerView:
    """One member as this node sees it; replication fields are None off the leader."""

    node_id: int
    address: str
    voter: bool
    match_index: int | None
    next_index: int | None
    inflight: int | None
    replication: str | None  # probe, replicate or snapshot
    last_contact_s: float | None  # seconds since a message from it arrived; None: never


@dataclass(frozen=True, slots=True)
class DriverStatus:
    node_id: int
    role: str  # follower, pre_candidate, candidate, leader, learner
    term: int
    leader_id: int  # 0: unknown
    commit_index: int
    applied_index: int
    last_index: int
    snapshot_index: int
    voters: tuple[int, ...]
    learners: tuple[int, ...]
    peers: tuple[PeerView, ...]
    removed: bool  # this node was removed from the cluster

    def to_document(self) -> dict[str, Any]:
        """A JSON-ready dict (lists for tuples)."""
        document = asdict(self)
        document["voters"] = list(self.voters)
        document["learners"] = list(self.learners)
        document["peers"] = [asdict(peer) for peer in self.peers]
        return document


def build_status(raft: RaftStatus, applier: Applier, snapshot_index: int,
                 last_contact_s: dict[int, float], now_s: float, removed: bool) -> DriverStatus:
    """Combine the core's status with the driver's knowledge (see the module docstring)."""
    progress = {peer.node_id: peer for peer in raft.progress}
    members = sorted(set(raft.conf_state.voters) | set(raft.conf_state.learners))
    peers = []
    for node_id in members:
        peer = progress.get(node_id)
        contact = last_contact_s.get(node_id)
        address = applier.addresses.get(node_id)
        peers.append(PeerView(
            node_id=node_id,
            address=str(address) if address is not None else "",
            voter=node_id in raft.conf_state.voters,
            match_index=peer.match if peer else None,
            next_index=peer.next if peer else None,
            inflight=peer.inflight if peer else None,
            replication=peer.state.name.lower() if peer else None,
            last_contact_s=round(now_s - contact, 3) if contact is not None else None,
        ))
    return DriverStatus(
        node_id=raft.node_id, role=raft.role.name.lower(), term=raft.term,
        leader_id=raft.leader_id, commit_index=raft.commit, applied_index=applier.applied_index,
        last_index=raft.last_index, snapshot_index=snapshot_index,
        voters=tuple(raft.conf_state.voters), learners=tuple(raft.conf_state.learners),
        peers=tuple(peers), removed=removed,
    )
