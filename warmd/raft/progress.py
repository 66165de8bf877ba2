"""The leader's per-follower Progress: probe / replicate / snapshot, and the in-flight window."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from warmd.raft.types import ProgressState, Snapshot


class Decrease(Enum):
    """What a rejected APPEND did to a member's Progress."""

    STALE = "stale"  # an old answer: ignored
    MOVED = "moved"  # next moved back: probe again at once
    LOST = "lost"  # the member lost entries it had acknowledged: match reset, probe again


class Inflights:
    """The last indexes of unacknowledged APPENDs, at most `capacity` of them."""

    __slots__ = ("_capacity", "_last_indexes")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._last_indexes: deque[int] = deque()

    def add(self, last_index: int) -> None:
        self._last_indexes.append(last_index)

    def free_to(self, index: int) -> None:
        """Forget every message whose entries end at or below `index` (acknowledged)."""
        window = self._last_indexes
        while window and window[0] <= index:
            window.popleft()

    def free_first_one(self) -> None:
        """Forget the oldest message, so one more may go out (etcd's FreeFirstOne)."""
        if self._last_indexes:
            self._last_indexes.popleft()

    def full(self) -> bool:
        return len(self._last_indexes) >= self._capacity

    def reset(self) -> None:
        self._last_indexes.clear()

    def __len__(self) -> int:
        return len(self._last_indexes)


@dataclass(slots=True)
class SnapshotSend:
    """An InstallSnapshot under way: which snapshot, and how far its chunks have got."""

    snapshot: Snapshot
    sent_offset: int = 0  # the next byte to send
    acked_offset: int = 0  # the follower has every byte before this
    acked_at_last_check: int = -1  # acked_offset at the previous heartbeat (stall detection)
    stalled_heartbeats: int = 0  # heartbeats since the acked offset last moved
    rewound_to: int = -1  # the offset the last rewind resumed from (one rewind per gap)


@dataclass(slots=True)
class Progress:
    """What the leader knows of one member's log, and how it sends to it (etcd's tracker)."""

    next: int
    max_inflight: int
    match: int = 0
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False  # in PROBE, one APPEND is out: wait for its answer or a heartbeat
    recent_active: bool = False  # heard from since the last check-quorum round
    last_response_tick: int = -1  # the leader's tick count when this member last answered
    is_learner: bool = False
    inflights: Inflights = field(init=False)
    snapshot_send: SnapshotSend | None = None
    # Who waits for the commit index there: the last index appended from proposals this
    # member forwarded (it answers their clients once it applies them). A member with
    # nothing waiting learns a new commit with its next entries or heartbeat instead of
    # an empty APPEND of its own (RaftNode._tells_commit_now).
    commit_wanted: int = 0
    # The highest commit index sent to it that its log reaches (an APPEND's commit capped
    # at the APPEND's last index, a heartbeat's); optimistic (a message may be lost, which
    # the next heartbeat repairs), so reset whenever the state changes.
    commit_told: int = 0

    def __post_init__(self) -> None:
        self.inflights = Inflights(self.max_inflight)

    def _reset_state(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.snapshot_send = None
        self.inflights.reset()
        self.commit_told = 0

    def become_probe(self) -> None:
        """After a rejection or a finished snapshot: find the match one APPEND at a time."""
        pending = self.snapshot_send
        self._reset_state(ProgressState.PROBE)
        if pending is not None:
            self.next = max(self.match + 1, pending.snapshot.meta.index + 1)
        else:
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot: Snapshot) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.snapshot_send = SnapshotSend(snapshot=snapshot)

    def maybe_update(self, index: int) -> bool:
        """The follower has `index`: raise match (and next); returns whether match moved."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def sent_entries(self, last_index: int, count: int) -> None:
        """Account for an APPEND that carried `count` entries ending at `last_index`."""
        if self.state == ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index)
        else:
            self.probe_sent = True

    def told_commit(self, commit: int) -> None:
        """A message that lets the member commit up to `commit` went out."""
        if commit > self.commit_told:
            self.commit_told = commit

    def waits_for_commit(self, committed: int, wanted_by_all: int) -> bool:
        """Whether something waits on the member (its own `commit_wanted`, or for a voter
        the leader's `wanted_by_all`) for a commit it has not been told yet and that the
        leader can tell it now (`committed`, capped at what the member was sent).

        A learner is left out of `wanted_by_all`: its entries already wait for a batch or
        the leader's next tick, and commit-only APPENDs to learners and their answers were
        half the leader's messages to them (docs/benchmarks.md, "Membership")."""
        told = self.commit_told
        wanted = self.commit_wanted if self.is_learner else max(self.commit_wanted, wanted_by_all)
        return wanted > told and min(committed, self.next - 1) > told

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> Decrease:
        """A follower rejected the APPEND at `rejected`; move next back.

        A rejection of the current probe at or below `match` proves the follower lost
        entries it had acknowledged (a truncated or wiped disk): match drops to 0, so
        the member stops counting for any index until it acknowledges it again, and
        next moves below the old match. Returns what happened (STALE: ignored).
        """
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return Decrease.STALE  # etcd: an answer to an APPEND sent before match moved
            self.next = self.match + 1
            return Decrease.MOVED
        if self.next - 1 != rejected:
            return Decrease.STALE
        self.probe_sent = False
        if rejected <= self.match:
            self.lose_match(min(rejected - 1, match_hint))
            return Decrease.LOST
        # rejected > match, so next moves back by at least one: every rejection that
        # triggers a new probe lowers next, and the probes of one search are bounded.
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        return Decrease.MOVED

    def lose_match(self, held_index: int) -> None:
        """The member lost entries it acknowledged and holds at most up to `held_index`.

        Match drops to 0 (nothing it holds is proven any more, so it counts for no
        index until it acknowledges it again) and probing restarts after `held_index`.
        """
        self._reset_state(ProgressState.PROBE)
        self.match = 0
        self.next = max(1, held_index + 1)

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True
