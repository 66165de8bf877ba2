"""RaftLog: the stable log in LogStorage plus the unstable tail not yet persisted.

The unstable part (entries from `offset`, or a snapshot received from the leader)
goes out in Ready.entries / Ready.snapshot and becomes stable on advance(). Entries
below `offset` are in storage and agree with this log.

Several Readys may be in flight at once (the driver keeps stepping while a Ready's fsync
runs), so the log keeps two more marks: `handed`, the last unstable entry already given
to a Ready (the next Ready carries only what follows it), and `applying`, the last
committed entry given out to be applied. Committed entries are given out only up to the
stable index: an entry is applied once it is committed AND on this node's own disk.
"""

from __future__ import annotations

from collections.abc import Sequence

from warmd.errors import invariant
from warmd.raft.errors import Compacted, Unavailable
from warmd.raft.storage import NO_LIMIT_BYTES, LogStorage, entry_size, limit_size
from warmd.raft.types import Entry, Snapshot

NO_LIMIT = NO_LIMIT_BYTES


class RaftLog:
    """The log as the core sees it: stable storage, unstable tail, commit and applied marks."""

    def __init__(self, storage: LogStorage) -> None:
        self.storage = storage
        self.unstable: list[Entry] = []
        self.unstable_snapshot: Snapshot | None = None
        self.offset = storage.last_index() + 1
        self.handed = self.offset - 1  # the last entry given to a Ready (>= offset - 1)
        self.snapshot_handed = False  # unstable_snapshot is in a Ready already
        self.committed = storage.first_index() - 1
        self.applied = self.committed
        self.applying = self.committed  # the last entry given out to be applied (>= applied)

    # --- bounds and terms ---

    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.unstable[-1].index
        return self.offset - 1

    def stable_index(self) -> int:
        """The last index that is durable and agrees with this log (0 while a snapshot is unstable)."""
        if self.unstable_snapshot is not None:
            return 0
        return self.offset - 1

    def term(self, index: int) -> int:
        """The term of `index`; raises Compacted below the first index - 1, Unavailable past last."""
        if index >= self.offset:
            position = index - self.offset
            if position < len(self.unstable):
                return self.unstable[position].term
            raise Unavailable(f"index {index} is past the last index {self.last_index()}")
        snapshot = self.unstable_snapshot
        if snapshot is not None:
            if index == snapshot.meta.index:
                return snapshot.meta.term
            raise Compacted(f"index {index} is below the snapshot at {snapshot.meta.index}")
        return self.storage.term(index)

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """§5.4.1: a candidate's log at least as up to date as ours earns our vote."""
        our_term = self.last_term()
        return last_term > our_term or (last_term == our_term and last_index >= self.last_index())

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """The index of the first entry that disagrees with the log (0: none, or all new)."""
        last = self.last_index()
        for entry in entries:
            if entry.index > last:
                return entry.index
            if not self.match_term(entry.index, entry.term):
                return entry.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= `index` whose term is <= `term`, and that term (fast back-tracking)."""
        while index > 0:
            try:
                our_term = self.term(index)
            except (Compacted, Unavailable):
                return index, 0
            if our_term <= term:
                return index, our_term
            index -= 1
        return 0, 0

    # --- changes ---

    def append(self, entries: Sequence[Entry]) -> None:
        """Append `entries`, truncating any unstable or stable suffix from entries[0].index."""
        if not entries:
            return
        after = entries[0].index - 1
        if after + 1 == self.offset + len(self.unstable) and after >= self.committed:
            self.unstable.extend(entries)  # the common case: a plain extension of the tail
            return
        invariant(after >= self.committed, f"truncating committed entries at {after + 1}")
        invariant(after <= self.last_index(), f"append at {after + 1} leaves a gap")
        self.handed = min(self.handed, after)  # the replacements go out in the next Ready
        if after + 1 == self.offset + len(self.unstable):
            self.unstable.extend(entries)
        elif after + 1 <= self.offset:
            # Storage will truncate on persisting; until then the new tail is unstable.
            self.offset = after + 1
            self.handed = after
            self.unstable = list(entries)
        else:
            del self.unstable[after + 1 - self.offset :]
            self.unstable.extend(entries)

    def commit_to(self, index: int) -> bool:
        """Raise the commit index (never lower it); returns whether it moved."""
        if index <= self.committed:
            return False
        invariant(index <= self.last_index(), f"commit {index} past last index {self.last_index()}")
        self.committed = index
        return True

    def applied_to(self, index: int) -> None:
        invariant(index <= self.committed, f"applied {index} past commit {self.committed}")
        self.applied = max(self.applied, index)
        self.applying = max(self.applying, self.applied)

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to `index` are durable, unless the tail was replaced since the Ready."""
        if index < self.offset or not self.match_term(index, term):
            return
        del self.unstable[: index + 1 - self.offset]
        self.offset = index + 1
        self.handed = max(self.handed, index)

    def stable_snapshot_to(self, index: int) -> None:
        if self.unstable_snapshot is not None and self.unstable_snapshot.meta.index == index:
            self.unstable_snapshot = None
            self.snapshot_handed = False

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the log with a snapshot from the leader (committed at its index)."""
        self.committed = snapshot.meta.index
        self.unstable = []
        self.offset = snapshot.meta.index + 1
        self.handed = snapshot.meta.index
        self.unstable_snapshot = snapshot
        self.snapshot_handed = False

    # --- handing out to Readys ---

    def has_unhanded(self) -> bool:
        """Whether entries or a snapshot wait to go out in a Ready."""
        if self.unstable_snapshot is not None and not self.snapshot_handed:
            return True
        return self.handed < self.last_index()

    def hand_out(self) -> tuple[tuple[Entry, ...], Snapshot | None]:
        """The unstable entries (and snapshot) not yet in a Ready; marks them handed."""
        snapshot = None
        if self.unstable_snapshot is not None and not self.snapshot_handed:
            snapshot, self.snapshot_handed = self.unstable_snapshot, True
        entries = tuple(self.unstable[self.handed + 1 - self.offset :])
        self.handed = self.last_index()
        return entries, snapshot

    # --- reads ---

    def slice(self, lo: int, hi: int, max_bytes: int = NO_LIMIT) -> list[Entry]:
        """Entries [lo, hi) within max_bytes (at least one); Compacted below the first index."""
        if lo < self.first_index():
            raise Compacted(f"entries from {lo} were compacted")
        invariant(hi <= self.last_index() + 1, f"slice to {hi} past last {self.last_index()}")
        if lo >= hi:
            return []
        result: list[Entry] = []
        if lo < self.offset:
            stable_hi = min(hi, self.offset)
            result = self.storage.entries(lo, stable_hi, max_bytes)
            if len(result) < stable_hi - lo or hi <= self.offset:
                return result
        start = max(lo, self.offset) - self.offset
        tail = self.unstable[start : hi - self.offset]
        if not result:
            return limit_size(tail, max_bytes)
        budget = max_bytes - sum(entry_size(entry) for entry in result)
        for entry in tail:
            budget -= entry_size(entry)
            if budget < 0:
                break
            result.append(entry)
        return result

    def entries_from(self, lo: int, max_bytes: int, max_count: int) -> list[Entry]:
        """Up to `max_count` entries from `lo`, within max_bytes (at least one if any)."""
        hi = min(self.last_index() + 1, lo + max_count)
        return self.slice(lo, hi, max_bytes)

    def _appliable(self) -> int:
        """The last index that may be applied: committed and durable on this node."""
        return min(self.committed, self.stable_index())

    def has_next_committed(self) -> bool:
        return self._appliable() > max(self.applying, self.first_index() - 1)

    def next_committed(self, max_bytes: int = NO_LIMIT) -> list[Entry]:
        """Committed, durable entries not yet given out to be applied, within max_bytes (at
        least one if any); marks them as being applied."""
        lo = max(self.applying + 1, self.first_index())
        hi = self._appliable()
        if lo > hi:
            return []
        entries = self.slice(lo, hi + 1, max_bytes)
        self.applying = entries[-1].index
        return entries
