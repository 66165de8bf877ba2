"""`health` off the leader judges a member by its executor heartbeat in the node registry.

mypy found this branch calling a method `NodeRecord` no longer has: asked on a follower,
`health` answered "internal error" for every member that had registered an executor.
"""

from __future__ import annotations

from warmd.runtime.commands.health import HealthCommands
from warmd.runtime.node.status import DriverStatus, PeerView
from warmd.statemachine.state import NodeRecord

NOW_MS = 1_000_000


def _follower_view(peer_id: int) -> tuple[PeerView, DriverStatus]:
    peer = PeerView(node_id=peer_id, address="127.0.0.1:7001", voter=True, match_index=None,
                    next_index=None, inflight=None, replication=None, last_contact_s=None)
    status = DriverStatus(node_id=1, role="follower", term=3, leader_id=3, commit_index=9,
                          applied_index=9, last_index=9, snapshot_index=0, voters=(1, 2, 3),
                          learners=(), peers=(peer,), removed=False)
    return peer, status


def _node(node_id: int, last_heartbeat_ms: int, alive: bool = True) -> NodeRecord:
    return NodeRecord(node_id=node_id, capacity=4, lease_ms=10_000, labels=(),
                      registered_ms=0, last_heartbeat_ms=last_heartbeat_ms, alive=alive)


def test_a_follower_judges_members_by_their_heartbeat_within_the_lease() -> None:
    commands = HealthCommands.__new__(HealthCommands)  # the follower branch reads no driver
    peer, status = _follower_view(2)
    fresh = commands._member(peer, status, _node(2, NOW_MS - 2_000), NOW_MS)
    assert fresh["healthy"] is True and "heartbeat 2.0 s ago (lease 10 s)" in fresh["detail"]
    stale = commands._member(peer, status, _node(2, NOW_MS - 11_000), NOW_MS)
    assert stale["healthy"] is False
    dead = commands._member(peer, status, _node(2, NOW_MS, alive=False), NOW_MS)
    assert dead["healthy"] is False
