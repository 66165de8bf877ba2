"""The leader's per-follower Progress: probe / replicate / snapshot, and the in-flight window."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from warmd.raft.types import ProgressState, Snapshot


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
    is_learner: bool = False
    inflights: Inflights = field(init=False)
    snapshot_send: SnapshotSend | None = None

    def __post_init__(self) -> None:
        self.inflights = Inflights(self.max_inflight)

    def _reset_state(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.snapshot_send = None
        self.inflights.reset()

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

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """A follower rejected the APPEND at `rejected`; move next back. False if the reject is stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True
