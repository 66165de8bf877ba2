"""The leader publishes its replication table through the log, so any node's /cluster can
show every peer's match index, "trails leader by" and last contact (with their age).

Every node runs `ReplicationReporter.run()`; it proposes only while its node leads: every
REPORT_INTERVAL_S while some peer trails by more than BEHIND_ENTRIES (or the membership
changed since the last report), else every REFRESH_S (the contact ages still move). That
is one small entry per 5 s on a cluster that is catching up, one per 30 s otherwise.
"""

from __future__ import annotations

from warmd.logging import get_logger
from warmd.raft.errors import NotLeader, ProposalDropped
from warmd.runtime.node.driver import Driver, DriverStopped, ProposalTimeout
from warmd.runtime.node.status import DriverStatus
from warmd.statemachine.replication import UNKNOWN, PeerProgress, ReportReplication

_log = get_logger("warmd.replication")
REPORT_INTERVAL_S = 5.0
REFRESH_S = 30.0
BEHIND_ENTRIES = 16  # fewer is entries in flight, not a peer falling behind


def report_of(status: DriverStatus, now_ms: int, version: str) -> ReportReplication:
    """The leader's status as a report (its own row: matched up to its last index)."""
    peers = []
    for peer in status.peers:
        own = peer.node_id == status.node_id
        match = status.last_index if own else peer.match_index
        contact = 0.0 if own else peer.last_contact_s
        peers.append(PeerProgress(
            node_id=peer.node_id, voter=peer.voter,
            match_index=UNKNOWN if match is None else match,
            last_contact_ms=UNKNOWN if contact is None else int(contact * 1000)))
    return ReportReplication(node_id=status.node_id, term=status.term,
                             commit_index=status.commit_index, last_index=status.last_index,
                             peers=tuple(peers), now_ms=now_ms, version=version)


def caught_up(report: ReportReplication) -> bool:
    """Every peer is within BEHIND_ENTRIES of the leader's last index (as of the report)."""
    return all(peer.match_index >= report.last_index - BEHIND_ENTRIES for peer in report.peers)


class ReplicationReporter:
    """Proposes the leader's table while this node leads (see the module docstring)."""

    def __init__(self, driver: Driver, version: str) -> None:
        self._driver = driver
        self._version = version
        self._last: ReportReplication | None = None
        self._last_s = 0.0

    def due(self, report: ReportReplication, now_s: float) -> bool:
        """Whether `report` is worth an entry now."""
        last = self._last
        if last is None or last.term != report.term:
            return True
        if {p.node_id for p in last.peers} != {p.node_id for p in report.peers}:
            return True
        idle = caught_up(last) and caught_up(report)
        return now_s - self._last_s >= (REFRESH_S if idle else REPORT_INTERVAL_S)

    async def run(self) -> None:
        clock = self._driver.clock
        while True:
            await clock.sleep(REPORT_INTERVAL_S)
            status = self._driver.status()
            if status.role != "leader":
                self._last = None
                continue
            report = report_of(status, clock.wall_ms(), self._version)
            if not self.due(report, clock.monotonic()):
                continue
            try:
                await self._driver.propose(report)
            except DriverStopped:
                return
            except (NotLeader, ProposalDropped, ProposalTimeout) as error:
                _log.debug("replication_report_dropped", error=str(error))
                continue
            self._last, self._last_s = report, clock.monotonic()
