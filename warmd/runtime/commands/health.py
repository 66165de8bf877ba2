"""`health`: every member's health in one call, answered by the local node.

The cluster part is a linearizable read (ReadIndex): it succeeds only with a leader that
still hears from a quorum. Each member is then judged from what this node knows: on the
leader, when it last heard from the member and how far its log lags; elsewhere, the
member's executor heartbeats in the replicated node registry. A member this node cannot
judge is "unknown", with a pointer to the leader (which can).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warmd.admin.server import AdminServer
from warmd.errors import WarmdError
from warmd.raft.errors import RaftError
from warmd.runtime.node.driver import Driver, ProposalTimeout
from warmd.runtime.node.status import DriverStatus, PeerView
from warmd.scheduler.liveness import is_live
from warmd.statemachine.state import NodeRecord

LAG_ENTRIES_MAX = 1000  # a follower further behind than this is catching up, not healthy


class HealthCommands:
    """Handlers bound to one driver; `register(server)` adds them."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    def register(self, server: AdminServer) -> None:
        server.register("health", self.health,
                        summary="quorum and every member's health, as this node sees them")

    def _contact_s_max(self) -> float:
        """Silence longer than two election timeouts means the member is not there."""
        ticks = self._driver.node.config.election_timeout_ticks
        return max(1.0, 2 * ticks * self._driver.options.tick_interval_s)

    async def health(self, args: Mapping[str, Any]) -> dict[str, Any]:
        try:
            read_index = await self._driver.read()
            quorum = {"healthy": True, "detail": f"leader {self._driver.leader_id} confirmed "
                                                 f"by a quorum at index {read_index}"}
        except (RaftError, ProposalTimeout, WarmdError) as error:
            quorum = {"healthy": False, "detail": f"no linearizable read: {error}"}
        status = self._driver.status()
        registry = self._driver.state.nodes
        now_ms = self._driver.clock.wall_ms()
        members = [self._member(peer, status, registry.get(peer.node_id), now_ms)
                   for peer in status.peers]
        healthy = quorum["healthy"] and all(member["healthy"] is not False for member in members)
        return {"healthy": healthy, "node_id": status.node_id, "leader_id": status.leader_id,
                "term": status.term, "quorum": quorum, "members": members}

    def _member(self, peer: PeerView, status: DriverStatus, node: NodeRecord | None,
                now_ms: int) -> dict[str, Any]:
        verdict: tuple[bool | None, str]
        if peer.node_id == status.node_id:
            verdict = (not status.removed, f"this node ({status.role}, applied "
                                           f"{status.applied_index})")
        elif status.role == "leader" and peer.last_contact_s is not None:
            verdict = self._replication(peer, peer.last_contact_s, status)
        elif node is not None:
            # Off the leader only the node's own stamp is known: judge by it (a hint).
            live = is_live(node, {node.node_id: now_ms - node.last_heartbeat_ms})
            verdict = (live, f"executor heartbeat {(now_ms - node.last_heartbeat_ms) / 1000:.1f} s "
                             f"ago (lease {node.lease_ms / 1000:g} s)")
        else:
            verdict = (None, f"unknown here: ask the leader (node {status.leader_id or '?'})")
        return {"node_id": peer.node_id, "address": peer.address, "voter": peer.voter,
                "healthy": verdict[0], "detail": verdict[1]}

    def _replication(self, peer: PeerView, last_contact_s: float,
                     status: DriverStatus) -> tuple[bool, str]:
        lag = status.last_index - (peer.match_index or 0)
        if last_contact_s > self._contact_s_max():
            return False, f"not heard from for {last_contact_s:.1f} s"
        if lag > LAG_ENTRIES_MAX:
            return False, f"{lag} entries behind (catching up)"
        return True, f"heard {last_contact_s:.1f} s ago, {lag} entries behind"
