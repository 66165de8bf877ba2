"""Damage a stopped node's data directory the way an unlucky disk or operator would.

`cut_log_tail` drops the newest log entries, even synced (acknowledged) ones, keeping
the term and vote; `wipe_data` empties the directory. Both act only on a stopped node.
The daemon's own record format (`warmd.runtime.node.segment`) is used to find the entries.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from warmd import codec
from warmd.raft.types import Entry, HardState
from warmd.runtime.node import segment

MAX_RECORD_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class CutLog:
    """What `cut_log_tail` removed: entries `first_index`..`last_index` (none if first > last)."""

    first_index: int
    last_index: int
    commit_floor: int  # entries at or below this were known committed: never cut


def _hard_state_file_commit(data_dir: Path) -> int:
    path = data_dir / "hardstate"
    if not path.exists():
        return 0
    value = segment.read_single_record(path.read_bytes(), str(path), MAX_RECORD_BYTES)
    return value.commit if isinstance(value, HardState) else 0


def _last_segment(data_dir: Path) -> Path | None:
    names = sorted(path.name for path in data_dir.iterdir()
                   if segment.SEGMENT_PATTERN.match(path.name))
    return data_dir / names[-1] if names else None


def cut_log_tail(data_dir: Path, count: int, keep_committed: bool = True) -> CutLog:
    """Drop up to `count` newest entries of the last segment, never one the node knew committed.

    With `keep_committed=False` the cut ignores that floor and the commit marks stay as
    they were: the node then knows it lost committed entries and must refuse to start.

    A disk that loses synced writes: the entries were acknowledged to the leader. The
    hard state records written after them are kept, with their commit lowered to the
    new last index (a commit mark needs no sync), so term and vote survive. Cutting
    below the node's own commit would make it refuse to start (LogLost), a different
    story than the one this fault tells.
    """
    path = _last_segment(data_dir)
    if path is None:
        return CutLog(1, 0, 0)
    scanned = segment.scan_log_file(path.read_bytes(), str(path), MAX_RECORD_BYTES, True)
    records = scanned.records
    hard_states = [record.value for record in records if isinstance(record.value, HardState)]
    floor = max([_hard_state_file_commit(data_dir), *(state.commit for state in hard_states)])
    entries = [record for record in records if isinstance(record.value, Entry)]
    lowest = floor if keep_committed else 0
    cut = [record for record in entries[-count:] if record.value.index > lowest]
    if not cut:
        return CutLog(1, 0, floor)
    first = cut[0]
    kept_last = first.value.index - 1
    later_states = [record.value for record in records
                    if record.offset > first.offset and isinstance(record.value, HardState)]
    with open(path, "r+b") as handle:
        handle.truncate(first.offset)
        handle.seek(first.offset)
        for state in later_states:
            commit = min(state.commit, kept_last) if keep_committed else state.commit
            lowered = HardState(state.term, state.vote, commit)
            handle.write(segment.encode_record(codec.encode(lowered)))
    return CutLog(first.value.index, cut[-1].value.index, floor)


def wipe_data(data_dir: Path) -> int:
    """Empty the data directory (log, snapshots, hard state); returns how many files went."""
    removed = sum(1 for _ in data_dir.iterdir()) if data_dir.exists() else 0
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return removed
