"""RaftConfig: every knob of the core, in ticks, counts and bytes, with validate()."""

from __future__ import annotations

from dataclasses import dataclass

from warmd.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """The configuration of one RaftNode; the driver converts seconds into ticks.

    node_id: this node's id, > 0 (0 means "none" in messages).
    election_timeout_ticks: a follower that hears nothing from a leader for a random
        number of ticks in [election_timeout_ticks, 2 * election_timeout_ticks) campaigns;
        a check-quorum leader steps down after this many ticks without a quorum; a
        leadership transfer is aborted after it.
    heartbeat_ticks: the leader sends heartbeats every this many ticks; must be less
        than election_timeout_ticks (etcd uses 1 and 10).
    max_size_per_message_bytes: an APPEND carries entries up to about this many bytes
        (always at least one entry, so a large entry still moves).
    max_entries_per_message: an APPEND carries at most this many entries.
    max_inflight_messages: in replicate state, at most this many APPENDs (or snapshot
        chunks) may be unacknowledged per follower; bounds memory and retransmission.
    pre_vote: run a pre-vote round (§9.6) so a partitioned node cannot raise terms.
    check_quorum: a leader steps down when it has not heard from a quorum within an
        election timeout, and followers ignore (pre-)votes while their leader is fresh.
    snapshot_chunk_bytes: InstallSnapshot sends the snapshot data in chunks this big.
    forward_proposals: a follower with a known leader forwards proposals and ReadIndex
        requests to it; when False, propose() raises NotLeader instead.
    learner_lag_entries_max: the leader refuses to promote a learner (ADD_VOTER) whose
        matched index is more than this many entries behind the commit index (or that
        has not answered the leader within election_timeout_ticks).
    applied_index: the index the application has already applied on restart (0: the
        storage's snapshot index, so every committed entry after it is handed out again).
    max_uncommitted_bytes: the leader refuses proposals (ProposalDropped) while the data
        of its not-yet-committed proposals exceeds this, so a leader cut off from its
        quorum does not buffer without bound; one proposal is always accepted.
    max_entry_bytes: the largest entry data a proposal may carry; a bigger one is refused
        (ProposalDropped ENTRY_TOO_LARGE) where it is proposed, and a forwarded one is
        dropped by the leader, so no entry in any log exceeds it (etcd caps a request at
        1.5 MiB for the same reason: every member keeps and ships every entry).
    max_committed_bytes_per_ready: a Ready hands out committed entries up to about this
        many bytes (at least one), so a restart replaying a long log does not produce one
        huge batch that stalls the driver; the rest follows in the next Readies.
    """

    node_id: int
    election_timeout_ticks: int = 10
    heartbeat_ticks: int = 1
    max_size_per_message_bytes: int = 1 << 20
    max_entries_per_message: int = 512
    max_inflight_messages: int = 64
    pre_vote: bool = True
    check_quorum: bool = True
    snapshot_chunk_bytes: int = 64 * 1024
    forward_proposals: bool = True
    learner_lag_entries_max: int = 64
    applied_index: int = 0
    max_committed_bytes_per_ready: int = 16 << 20
    max_uncommitted_bytes: int = 64 << 20
    max_entry_bytes: int = 1 << 20

    def validate(self) -> None:
        """Raise ConfigError naming the first field that is out of range."""
        positive = {
            "node_id": self.node_id,
            "election_timeout_ticks": self.election_timeout_ticks,
            "heartbeat_ticks": self.heartbeat_ticks,
            "max_size_per_message_bytes": self.max_size_per_message_bytes,
            "max_entries_per_message": self.max_entries_per_message,
            "max_inflight_messages": self.max_inflight_messages,
            "snapshot_chunk_bytes": self.snapshot_chunk_bytes,
            "max_committed_bytes_per_ready": self.max_committed_bytes_per_ready,
            "max_uncommitted_bytes": self.max_uncommitted_bytes,
            "max_entry_bytes": self.max_entry_bytes,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"raft: {name} must be a positive integer, got {value!r}")
        if self.heartbeat_ticks >= self.election_timeout_ticks:
            raise ConfigError(
                "raft: heartbeat_ticks must be less than election_timeout_ticks "
                f"({self.heartbeat_ticks} >= {self.election_timeout_ticks})"
            )
        if self.learner_lag_entries_max < 0 or self.applied_index < 0:
            raise ConfigError("raft: learner_lag_entries_max and applied_index must be >= 0")
