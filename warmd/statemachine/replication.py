"""The leader's replication table, published through the log so every node can show it.

Only the leader knows how far each peer has replicated (its progress table: match index,
last contact). A follower's console would otherwise have nothing to say about the others,
so the leader proposes a `ReportReplication` now and then (warmd/runtime/leader/
replication.py) and every replica keeps the newest one with the index it was applied at:
a follower shows each peer's figures as "the leader's, as of index I, N seconds ago".
A report from an older term than the kept one (a deposed leader's, applied late) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from warmd.statemachine.schema import Validated, check_min, check_text, fail

PEERS_MAX = 1_000
UNKNOWN = -1  # a match index or contact age the leader does not have


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerProgress(Validated):
    """One member as the leader saw it when it reported."""

    WIRE_TAGGED: ClassVar[bool] = False

    node_id: int
    voter: bool
    match_index: int  # UNKNOWN: no progress kept for it
    last_contact_ms: int  # ms since the leader last heard from it; UNKNOWN: never

    def _check_values(self) -> None:
        check_min("PeerProgress.match_index", self.match_index, UNKNOWN)
        check_min("PeerProgress.last_contact_ms", self.last_contact_ms, UNKNOWN)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportReplication(Validated):
    """The leader's view of replication at `now_ms` (its clock). Applied value: None."""

    node_id: int  # the reporting leader
    term: int
    commit_index: int
    last_index: int
    peers: tuple[PeerProgress, ...]
    now_ms: int
    version: str = ""  # the leader's warmd version

    def _check_values(self) -> None:
        for name in ("term", "commit_index", "last_index"):
            check_min(f"ReportReplication.{name}", getattr(self, name), 0)
        if len(self.peers) > PEERS_MAX:
            fail("ReportReplication.peers", f"at most {PEERS_MAX} peers, got {len(self.peers)}")
        check_text("ReportReplication.version", self.version)


@dataclass(frozen=True, slots=True)
class ReplicationRecord:
    """The newest report and the index it was applied at (what a follower's page ages by)."""

    report: ReportReplication
    index: int


def refusal(current: ReplicationRecord | None, report: ReportReplication) -> str:
    """Why `report` may not replace `current` ("" when it may)."""
    if current is not None and report.term < current.report.term:
        return (f"replication report of term {report.term} is older than the kept one "
                f"(term {current.report.term})")
    return ""
