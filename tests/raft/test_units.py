"""The small parts: quorum maths, Progress, Inflights, MemoryStorage, RaftLog, RaftConfig."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warmd.errors import ConfigError, InvariantViolation
from warmd.raft import quorum
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.errors import Compacted, LogLost, SnapshotOutOfDate, Unavailable
from warmd.raft.log import RaftLog
from warmd.raft.progress import Decrease, Inflights, Progress
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    ProgressState,
    Snapshot,
    SnapshotMeta,
    make_entry,
)


def entries(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(term=term, index=start + offset) for offset, term in enumerate(terms)]


@given(st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=9))
def test_committed_index_is_matched_by_a_majority(matches: list[int]) -> None:
    """The commit index is matched by a majority, and no higher index is."""
    voters = list(range(1, len(matches) + 1))
    match = dict(zip(voters, matches, strict=True))
    index = quorum.committed_index(voters, match)
    majority = len(voters) // 2 + 1
    assert sum(1 for value in matches if value >= index) >= majority
    assert sum(1 for value in matches if value >= index + 1) < majority


@given(st.integers(min_value=1, max_value=9), st.data())
def test_vote_result_matches_counting(voter_count: int, data: st.DataObject) -> None:
    """WON with a majority of grants, LOST once a majority is impossible, else PENDING."""
    voters = list(range(1, voter_count + 1))
    votes = {v: data.draw(st.sampled_from([True, False, None])) for v in voters}
    votes = {v: granted for v, granted in votes.items() if granted is not None}
    result = quorum.vote_result(voters, votes)
    granted = sum(votes.values())
    undecided = voter_count - len(votes)
    needed = voter_count // 2 + 1
    if granted >= needed:
        assert result == quorum.VoteResult.WON
    elif granted + undecided < needed:
        assert result == quorum.VoteResult.LOST
    else:
        assert result == quorum.VoteResult.PENDING


def test_learners_and_strangers_do_not_count() -> None:
    """Only listed voters count toward a commit index or a quorum."""
    assert quorum.committed_index([1, 2, 3], {1: 5, 4: 9, 5: 9}) == 0
    assert not quorum.has_quorum([1, 2, 3], {1, 4, 5})
    assert quorum.has_quorum([1, 2, 3], {1, 3})


def test_inflights_window_frees_acknowledged_messages() -> None:
    """Inflights fills to capacity and frees every message ending at or below an ack."""
    window = Inflights(3)
    for last in (5, 10, 15):
        window.add(last)
    assert window.full()
    window.free_to(10)
    assert len(window) == 1 and not window.full()
    window.free_first_one()
    assert len(window) == 0


@pytest.mark.parametrize(
    ("state", "match", "next_index", "rejected", "hint", "outcome", "expected_next"),
    [
        (ProgressState.PROBE, 0, 10, 9, 3, Decrease.MOVED, 4),  # follows the hint
        (ProgressState.PROBE, 5, 10, 9, 2, Decrease.MOVED, 6),  # never below match + 1 ...
        (ProgressState.PROBE, 5, 6, 5, 2, Decrease.LOST, 3),  # ... unless match was lost
        (ProgressState.PROBE, 5, 6, 5, 0, Decrease.LOST, 1),  # a wiped log: from the start
        (ProgressState.PROBE, 0, 10, 7, 3, Decrease.STALE, 10),  # stale: not the index we probed
        (ProgressState.REPLICATE, 5, 20, 12, 0, Decrease.MOVED, 6),  # back to match + 1
        (ProgressState.REPLICATE, 5, 20, 4, 0, Decrease.STALE, 20),  # stale: below match
    ],
)
def test_progress_decrease_on_rejection(
    state: ProgressState, match: int, next_index: int, rejected: int, hint: int,
    outcome: Decrease, expected_next: int,
) -> None:
    """etcd's MaybeDecrTo, plus: a probe rejected at or below match proves a lost log.

    Every fresh rejection moves next back (so re-probing is bounded), a stale one is
    ignored, and a proven loss resets match so the member counts for nothing it lost.
    """
    progress = Progress(next=next_index, max_inflight=4, match=match, state=state)
    assert progress.maybe_decrease_to(rejected, hint) is outcome
    assert progress.next == expected_next
    assert progress.match == (0 if outcome is Decrease.LOST else match)


def test_progress_pauses_by_state() -> None:
    """Probe pauses after one send, replicate when the window is full, snapshot always."""
    progress = Progress(next=1, max_inflight=2)
    progress.sent_entries(1, 1)
    assert progress.is_paused()
    progress.maybe_update(1)
    progress.become_replicate()
    progress.sent_entries(3, 2)
    progress.sent_entries(5, 2)
    assert progress.next == 6 and progress.is_paused()
    progress.become_snapshot(Snapshot(meta=SnapshotMeta(index=9, term=1)))
    assert progress.is_paused()


def test_memory_storage_append_truncates_conflicting_suffix() -> None:
    """Appending at an existing index replaces everything from there on."""
    storage = MemoryStorage()
    storage.append(entries(1, 1, 1))
    storage.append(entries(2, 2, start=2))
    assert [e.term for e in storage.entries(1, 4, 1 << 20)] == [1, 2, 2]
    with pytest.raises(InvariantViolation, match="gap"):
        storage.append(entries(3, start=9))


def test_memory_storage_compaction_and_bounds() -> None:
    """Compacted below the snapshot, Unavailable past the end; snapshots only move forward."""
    storage = MemoryStorage(ConfState(voters=(1,)))
    storage.append(entries(1, 1, 2, 2))
    storage.create_snapshot(2, ConfState(voters=(1,)), b"state")
    storage.compact(2)
    assert storage.first_index() == 3 and storage.term(2) == 1
    with pytest.raises(Compacted):
        storage.term(1)
    with pytest.raises(Compacted):
        storage.entries(2, 4, 100)
    with pytest.raises(Unavailable):
        storage.term(5)
    with pytest.raises(SnapshotOutOfDate):
        storage.create_snapshot(2, ConfState(), b"")
    with pytest.raises(Compacted):
        storage.compact(2)


def test_memory_storage_size_limit_returns_at_least_one_entry() -> None:
    """entries() honours max_bytes but always returns one entry."""
    storage = MemoryStorage()
    storage.append([Entry(term=1, index=i, data=b"x" * 100) for i in range(1, 4)])
    assert len(storage.entries(1, 4, 1)) == 1
    assert len(storage.entries(1, 4, 240)) == 2


def test_memory_storage_apply_snapshot_replaces_log_and_copy_is_independent() -> None:
    """A leader's snapshot replaces the log; copy() survives later writes unchanged."""
    storage = MemoryStorage()
    storage.append(entries(1, 1))
    saved = storage.copy()
    storage.apply_snapshot(Snapshot(meta=SnapshotMeta(index=10, term=3), data=b"s"))
    assert (storage.first_index(), storage.last_index()) == (11, 10)
    assert saved.last_index() == 2
    with pytest.raises(SnapshotOutOfDate):
        storage.apply_snapshot(Snapshot(meta=SnapshotMeta(index=10, term=3)))


def test_raft_log_unstable_tail_and_stable_to() -> None:
    """Appended entries stay unstable until stable_to() with a matching term."""
    storage = MemoryStorage()
    storage.append(entries(1, 1))
    log = RaftLog(storage)
    log.append(entries(2, 2, start=3))
    assert log.last_index() == 4 and log.stable_index() == 2
    log.stable_to(4, 1)  # wrong term: the tail was replaced since
    assert log.stable_index() == 2
    storage.append(log.unstable)
    log.stable_to(4, 2)
    assert log.stable_index() == 4 and not log.unstable


def test_raft_log_truncation_below_offset_and_slice_across_the_boundary() -> None:
    """A conflicting append below the unstable offset replaces the tail; slices span both parts."""
    storage = MemoryStorage()
    storage.append(entries(1, 1, 1))
    log = RaftLog(storage)
    log.append(entries(2, 2, start=2))
    assert [(e.index, e.term) for e in log.slice(1, 4)] == [(1, 1), (2, 2), (3, 2)]
    assert log.find_conflict(entries(1, 2, 2)) == 0
    assert log.find_conflict(entries(1, 3, start=1)) == 2
    with pytest.raises(InvariantViolation):
        log.commit_to(9)
    log.commit_to(2)
    with pytest.raises(InvariantViolation, match="committed"):
        log.append(entries(5, start=2))


def test_find_conflict_by_term_walks_back_to_an_older_term() -> None:
    """The back-tracking hint is the last index whose term is at most the given term."""
    storage = MemoryStorage()
    storage.append(entries(1, 1, 2, 2, 4, 4))
    log = RaftLog(storage)
    assert log.find_conflict_by_term(6, 3) == (4, 2)
    assert log.find_conflict_by_term(6, 0) == (0, 0)
    assert log.find_conflict_by_term(3, 5) == (3, 2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"node_id": 0}, "node_id"),
        ({"node_id": 1, "heartbeat_ticks": 10}, "heartbeat_ticks"),
        ({"node_id": 1, "max_inflight_messages": 0}, "max_inflight_messages"),
        ({"node_id": 1, "election_timeout_ticks": True}, "election_timeout_ticks"),
        ({"node_id": 1, "learner_lag_entries_max": -1}, "learner_lag_entries_max"),
    ],
)
def test_config_validate_names_the_bad_field(fields: dict[str, object], message: str) -> None:
    """RaftConfig.validate() raises ConfigError naming the field; RaftNode refuses such a config."""
    config = RaftConfig(**fields)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=message):
        config.validate()
    from warmd.raft.core import RaftNode

    with pytest.raises(ConfigError):
        RaftNode(config, MemoryStorage(ConfState(voters=(1,))), random.Random(0))


def test_node_refuses_to_start_on_a_log_that_lost_committed_entries() -> None:
    """A persisted commit past the last index is LogLost (exit 65), with the recovery to follow."""
    storage = MemoryStorage(ConfState(voters=(1, 2, 3)))
    storage.append([Entry(term=1, index=index) for index in (1, 2, 3)])
    storage.set_hard_state(HardState(term=1, vote=1, commit=3))
    storage.drop_entries_after(1)
    with pytest.raises(LogLost) as raised:
        RaftNode(RaftConfig(node_id=1), storage, random.Random(1))
    assert raised.value.exit_status == 65
    assert "new id" in str(raised.value) and "commit index 3" in str(raised.value)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.sampled_from(EntryType),
       st.binary(max_size=64))
def test_make_entry_equals_the_constructor(term: int, index: int, kind: EntryType,
                                           data: bytes) -> None:
    """The hot paths' entry builder gives the constructor's entry: equal, same hash, frozen."""
    made, built = make_entry(term, index, kind, data), Entry(term, index, kind, data)
    assert made == built and hash(made) == hash(built) and repr(made) == repr(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.term = term + 1  # type: ignore[misc]
