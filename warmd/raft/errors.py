"""Operating errors the Raft core raises to its caller (never for a peer's bad message).

A peer's stale or malformed message is ignored, not raised: only the local API
(`propose`, `read_index`, `transfer_leadership`, storage reads) raises these.
"""

from __future__ import annotations

from enum import Enum

from warmd.errors import WarmdError


class RaftError(WarmdError):
    """Base of every Raft operating error."""


class NotLeader(RaftError):
    """This node is not the leader and does not forward; retry at `leader_id` (0: unknown)."""

    def __init__(self, leader_id: int) -> None:
        super().__init__(f"not the leader; leader is {leader_id or 'unknown'}")
        self.leader_id = leader_id


class ProposalDropped(RaftError):
    """The proposal (or read, or transfer) was refused; `reason` says why, in words."""

    NO_LEADER = "no leader"
    TRANSFER_IN_PROGRESS = "leadership transfer in progress"
    CONF_CHANGE_PENDING = "a configuration change is pending"
    TERM_NOT_COMMITTED = "the leader has not committed an entry of its term yet"
    NOT_MEMBER = "this node is not a member of the cluster"
    LEARNER_LAGGING = "the learner is too far behind to be promoted"
    LEARNER_UNREACHABLE = "the learner has not answered the leader recently"
    INVALID_CONF_CHANGE = "invalid configuration change"
    NOT_A_VOTER = "the transfer target is not a voter"
    TOO_MUCH_UNCOMMITTED = "too much uncommitted data at the leader"
    ENTRY_TOO_LARGE = "the entry is larger than the configured cap (raft.max_entry_bytes)"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason + (f": {detail}" if detail else ""))
        self.reason = reason
        self.detail = detail


class PromotionCheck(Enum):
    """The check a learner failed when its promotion to voter was refused."""

    RECENT_CONTACT = "recent-contact"  # it has not answered the leader within an election timeout
    CAUGHT_UP = "caught-up"  # it lags the commit index by more than learner_lag_entries_max


class PromotionRefused(ProposalDropped):
    """A learner's promotion was refused; `check` says which requirement it failed."""

    def __init__(self, check: PromotionCheck, detail: str) -> None:
        reason = (ProposalDropped.LEARNER_UNREACHABLE if check is PromotionCheck.RECENT_CONTACT
                  else ProposalDropped.LEARNER_LAGGING)
        super().__init__(reason, detail)
        self.check = check


class LogLost(RaftError):
    """The disk lost entries this node knew to be committed; it must not take part again.

    Raised when a RaftNode is built on such a storage: voting with a log that lacks
    committed entries could elect a leader without them.
    """

    exit_status = 65  # EX_DATAERR, as for a corrupt log record


class Compacted(RaftError):
    """The requested index lies below the log's first index: it was compacted into a snapshot."""


class Unavailable(RaftError):
    """The requested index lies past the log's last index (or a snapshot is not ready)."""


class SnapshotOutOfDate(RaftError):
    """A snapshot older than (or as old as) the storage's current one was handed in."""
