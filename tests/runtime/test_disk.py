"""DiskStorage on a real directory: durability across reopen, repair, refusal, compaction."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from warmd import codec
from warmd.raft.errors import Compacted, SnapshotOutOfDate, Unavailable
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from warmd.runtime.node import segment
from warmd.runtime.node.disk import DiskCorruption, DiskFailed, DiskOptions, DiskStorage

VOTERS = ConfState(voters=(1, 2, 3))


def _entries(first: int, last: int, term: int, size_bytes: int = 20) -> list[Entry]:
    return [Entry(term, index, EntryType.NORMAL, f"{term}:{index}:".encode().ljust(size_bytes, b"."))
            for index in range(first, last + 1)]


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("log-*.seg"))


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _open(directory: Path, segment_size_bytes: int = 16 * 1024 * 1024) -> DiskStorage:
    return DiskStorage.open(directory, DiskOptions(segment_size_bytes=segment_size_bytes), VOTERS)


def test_fresh_directory_is_empty_with_founding_configuration(directory: Path) -> None:
    """A new data directory holds no entries, the zero hard state and the founding ConfState."""
    storage = _open(directory)
    assert storage.initial_state() == (HardState(), VOTERS)
    assert (storage.first_index(), storage.last_index()) == (1, 0)
    assert storage.term(0) == 0
    assert storage.entries(1, 1) == []
    storage.close()


def test_entries_and_hard_state_survive_reopen(directory: Path) -> None:
    """Saved entries and hard state read back identically after close and reopen."""
    storage = _open(directory)
    written = _entries(1, 50, term=2)
    storage.save(HardState(2, 3, 40), written[:20], None, sync=True)
    storage.save(HardState(2, 3, 45), written[20:], None, sync=True)
    storage.close()
    reopened = _open(directory)
    assert reopened.initial_state() == (HardState(2, 3, 45), VOTERS)
    assert reopened.entries(1, 51) == written
    assert reopened.term(50) == 2
    reopened.close()


def test_entries_honour_max_bytes_but_return_at_least_one(directory: Path) -> None:
    """entries() cuts at max_bytes, yet always returns the first entry."""
    storage = _open(directory)
    storage.save(None, _entries(1, 10, term=1, size_bytes=100), None, sync=True)
    assert len(storage.entries(1, 11, max_bytes=1)) == 1
    assert len(storage.entries(1, 11, max_bytes=3 * 116)) == 3
    with pytest.raises(Unavailable):
        storage.entries(1, 12)
    with pytest.raises(Unavailable):
        storage.term(11)
    storage.close()


def test_conflicting_suffix_is_truncated(directory: Path) -> None:
    """Entries that overwrite an index replace the old suffix, also after reopen."""
    storage = _open(directory, segment_size_bytes=300)
    storage.save(HardState(1, 1, 3), _entries(1, 30, term=1), None, sync=True)
    assert len(_segments(directory)) > 3
    storage.save(HardState(2, 2, 3), _entries(8, 12, term=2), None, sync=True)
    expected = _entries(1, 7, term=1) + _entries(8, 12, term=2)
    assert storage.last_index() == 12
    assert storage.entries(1, 13) == expected
    storage.close()
    reopened = _open(directory, segment_size_bytes=300)
    assert reopened.entries(1, 13) == expected
    assert reopened.initial_state()[0] == HardState(2, 2, 3)
    reopened.save(None, _entries(13, 14, term=2), None, sync=True)
    assert reopened.last_index() == 14
    reopened.close()


def test_many_entries_across_segment_rotation(directory: Path) -> None:
    """Thousands of entries spread over many segments read back in order after reopen."""
    storage = _open(directory, segment_size_bytes=4096)
    for first in range(1, 3001, 100):
        storage.save(HardState(3, 1, first), _entries(first, first + 99, term=3), None, sync=False)
    storage.close()
    segments = _segments(directory)
    assert len(segments) > 20
    first_indexes = [int(path.name[4:24]) for path in segments]
    assert first_indexes == sorted(first_indexes) and first_indexes[0] == 1
    reopened = _open(directory, segment_size_bytes=4096)
    assert reopened.last_index() == 3000
    assert reopened.entries(1, 3001) == _entries(1, 3000, term=3)
    reopened.close()


def test_torn_tail_is_truncated_with_warning(directory: Path) -> None:
    """A record cut mid-write at the end of the last segment is dropped with a warning."""
    storage = _open(directory)
    storage.save(HardState(1, 1, 0), _entries(1, 10, term=1), None, sync=True)
    storage.close()
    last_segment = _segments(directory)[-1]
    size = last_segment.stat().st_size
    os.truncate(last_segment, size - 5)
    with capture_logs() as logs:
        reopened = _open(directory)
    warnings = [event for event in logs if event["event"] == "disk_torn_tail_truncated"]
    assert warnings and warnings[0]["file"] == str(last_segment)
    assert warnings[0]["offset"] < size - 5
    # The torn record was the hard state written after entry 10, so entry 10 survives.
    assert reopened.last_index() == 10
    reopened.save(None, _entries(11, 11, term=1), None, sync=True)
    reopened.close()
    assert _open(directory).last_index() == 11


def test_garbage_appended_to_tail_is_truncated(directory: Path) -> None:
    """Random garbage and zero fill after the last record are cut off, not applied."""
    storage = _open(directory)
    storage.save(None, _entries(1, 5, term=1), None, sync=True)
    storage.close()
    last_segment = _segments(directory)[-1]
    good_size = last_segment.stat().st_size
    with last_segment.open("ab") as stream:
        stream.write(b"\x00\x00\x00\x10garbage-garbage-garbage" + bytes(4096))
    with capture_logs() as logs:
        reopened = _open(directory)
    assert any(event["event"] == "disk_torn_tail_truncated" and event["offset"] == good_size
               for event in logs)
    assert last_segment.stat().st_size == good_size
    assert reopened.entries(1, 6) == _entries(1, 5, term=1)
    reopened.close()


def _record_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    return [record.offset for record in segment.scan_log_file(data, str(path), 1 << 20, True).records]


def test_bit_flip_in_middle_record_refuses_to_start(directory: Path) -> None:
    """A damaged record followed by good ones raises DiskCorruption naming file and offset."""
    storage = _open(directory)
    storage.save(None, _entries(1, 20, term=1), None, sync=True)
    storage.close()
    path = _segments(directory)[-1]
    offset = _record_offsets(path)[7]
    data = bytearray(path.read_bytes())
    data[offset + 12] ^= 0x04
    path.write_bytes(bytes(data))
    with pytest.raises(DiskCorruption) as caught:
        _open(directory)
    assert caught.value.path == str(path) and caught.value.offset == offset
    assert str(path) in str(caught.value) and f"offset {offset}" in str(caught.value)


def test_flipped_length_field_in_middle_refuses_to_start(directory: Path) -> None:
    """A damaged length field (so records cannot be skipped) is still found as corruption."""
    storage = _open(directory)
    storage.save(None, _entries(1, 20, term=1), None, sync=True)
    storage.close()
    path = _segments(directory)[-1]
    offset = _record_offsets(path)[3]
    data = bytearray(path.read_bytes())
    data[offset + 1] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(DiskCorruption) as caught:
        _open(directory)
    assert caught.value.offset == offset


def test_damage_in_an_earlier_segment_refuses_to_start(directory: Path) -> None:
    """A torn record in a segment that is not the last is corruption, not a tail."""
    storage = _open(directory, segment_size_bytes=500)
    storage.save(None, _entries(1, 40, term=1), None, sync=True)
    storage.close()
    first_segment = _segments(directory)[0]
    os.truncate(first_segment, first_segment.stat().st_size - 3)
    with pytest.raises(DiskCorruption) as caught:
        _open(directory, segment_size_bytes=500)
    assert caught.value.path == str(first_segment)


def test_snapshot_compacts_and_survives_reopen(directory: Path) -> None:
    """create_snapshot deletes covered segments, and the snapshot and later entries reload."""
    storage = _open(directory, segment_size_bytes=600)
    storage.save(HardState(4, 1, 90), _entries(1, 100, term=4), None, sync=True)
    segments_before = len(_segments(directory))
    conf = ConfState(voters=(1, 2, 3), learners=(4,))
    storage.create_snapshot(80, 4, conf, b"state-at-80")
    assert len(_segments(directory)) < segments_before
    assert storage.first_index() == 81 and storage.term(80) == 4
    with pytest.raises(Compacted):
        storage.entries(50, 60)
    with pytest.raises(Compacted):
        storage.term(10)
    with pytest.raises(SnapshotOutOfDate):
        storage.create_snapshot(70, 4, conf, b"older")
    storage.close()
    reopened = _open(directory, segment_size_bytes=600)
    assert reopened.snapshot() == Snapshot(SnapshotMeta(80, 4, conf), b"state-at-80")
    assert reopened.initial_state() == (HardState(4, 1, 90), conf)
    assert reopened.first_index() == 81 and reopened.last_index() == 100
    assert reopened.entries(81, 101) == _entries(81, 100, term=4)
    assert len(list(directory.glob("snapshot-*.snap"))) == 1
    reopened.close()


def test_second_snapshot_removes_the_first(directory: Path) -> None:
    """Only the newest snapshot file is kept after a later snapshot."""
    storage = _open(directory, segment_size_bytes=600)
    storage.save(None, _entries(1, 60, term=1), None, sync=True)
    storage.create_snapshot(20, 1, VOTERS, b"a")
    storage.create_snapshot(50, 1, VOTERS, b"b")
    names = [path.name for path in directory.glob("snapshot-*.snap")]
    assert names == [segment.snapshot_name(50, 1)]
    storage.close()


def test_installed_snapshot_replaces_the_log(directory: Path) -> None:
    """A leader's snapshot in save() discards the old log; entries after it follow."""
    storage = _open(directory, segment_size_bytes=400)
    storage.save(HardState(1, 1, 5), _entries(1, 30, term=1), None, sync=True)
    snapshot = Snapshot(SnapshotMeta(200, 5, VOTERS), b"leader-state")
    storage.save(HardState(5, 0, 200), _entries(201, 205, term=5), snapshot, sync=True)
    assert (storage.first_index(), storage.last_index()) == (201, 205)
    assert storage.term(200) == 5
    storage.close()
    reopened = _open(directory, segment_size_bytes=400)
    assert reopened.snapshot() == snapshot
    assert reopened.entries(201, 206) == _entries(201, 205, term=5)
    assert reopened.initial_state()[0] == HardState(5, 0, 200)
    with pytest.raises(SnapshotOutOfDate):
        reopened.save(None, [], Snapshot(SnapshotMeta(100, 5, VOTERS), b""), sync=True)
    reopened.close()


def test_failed_fsync_refuses_further_writes(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After fdatasync fails, save raises DiskFailed and keeps refusing; nothing is exposed."""
    storage = _open(directory)
    storage.save(None, _entries(1, 3, term=1), None, sync=True)

    def failing_sync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing_sync)
    monkeypatch.setattr(os, "fsync", failing_sync)
    with capture_logs() as logs, pytest.raises(DiskFailed):
        storage.save(None, _entries(4, 5, term=1), None, sync=True)
    assert storage.failed
    assert storage.last_index() == 3
    assert any(event["event"] == "disk_failed" for event in logs)
    monkeypatch.undo()
    with pytest.raises(DiskFailed):
        storage.save(None, _entries(4, 5, term=1), None, sync=True)
    with pytest.raises(DiskFailed):
        storage.create_snapshot(2, 1, VOTERS, b"x")
    storage.close()


def test_disk_full_raises_disk_failed(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while writing is reported as DiskFailed with 'disk full'."""
    storage = _open(directory)
    real_write = os.write

    def full_write(fd: int, data: bytes) -> int:
        if fd == storage._files._active_fd:  # only the log, not pytest's own output
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_write)
    with pytest.raises(DiskFailed, match="disk full"):
        storage.save(None, _entries(1, 2, term=1), None, sync=True)
    monkeypatch.undo()
    with pytest.raises(DiskFailed):
        storage.save(None, _entries(1, 2, term=1), None, sync=True)
    assert storage.last_index() == 0
    storage.close()


def test_group_commit_uses_one_sync_per_save(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save of many entries and a hard state issues exactly one fdatasync."""
    storage = _open(directory)
    storage.save(None, _entries(1, 1, term=1), None, sync=True)
    calls: list[int] = []
    real_sync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real_sync(fd)))
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    storage.save(HardState(1, 1, 1), _entries(2, 500, term=1), None, sync=True)
    assert len(calls) == 1
    storage.close()


def test_hard_state_records_merge_with_hardstate_file(directory: Path) -> None:
    """The newest term/vote and highest commit win between the file and the log records."""
    storage = _open(directory, segment_size_bytes=300)
    storage.save(HardState(3, 2, 10), _entries(1, 20, term=3), None, sync=True)
    storage.create_snapshot(10, 3, VOTERS, b"s")  # checkpoints (3, 2, 10) into `hardstate`
    storage.save(HardState(4, 0, 15), [], None, sync=True)
    storage.save(HardState(4, 1, 18), [], None, sync=True)
    storage.close()
    assert _open(directory, segment_size_bytes=300).initial_state()[0] == HardState(4, 1, 18)


def test_corrupt_hardstate_file_refuses_to_start(directory: Path) -> None:
    """A damaged `hardstate` file is reported, never replaced by the zero state."""
    storage = _open(directory, segment_size_bytes=300)
    storage.save(HardState(3, 2, 10), _entries(1, 20, term=3), None, sync=True)
    storage.create_snapshot(10, 3, VOTERS, b"s")
    storage.close()
    path = directory / "hardstate"
    path.write_bytes(path.read_bytes()[:-1] + b"\xff")
    with pytest.raises(DiskCorruption, match="hardstate"):
        _open(directory)


def test_entries_are_stored_compactly(directory: Path) -> None:
    """The in-memory log keeps terms and positions in arrays, not Entry objects."""
    storage = _open(directory)
    storage.save(None, _entries(1, 1000, term=1), None, sync=False)
    assert storage._terms.itemsize == 8 and len(storage._terms) == 1000
    assert all(type(data) is bytes for data in storage._datas)
    record = codec.encode_entry(Entry(1, 1, EntryType.NORMAL, b""))
    assert len(record) < 12
    storage.close()


def test_snapshot_at_last_index_reopens_with_empty_log(directory: Path) -> None:
    """A snapshot covering every entry leaves an empty log that accepts the next index."""
    storage = _open(directory)
    storage.save(HardState(2, 1, 10), _entries(1, 10, term=2), None, sync=True)
    storage.create_snapshot(10, 2, VOTERS, b"all")
    storage.close()
    reopened = _open(directory)
    assert (reopened.first_index(), reopened.last_index(), reopened.term(10)) == (11, 10, 2)
    reopened.save(None, _entries(11, 12, term=2), None, sync=True)
    reopened.close()
    assert _open(directory).entries(11, 13) == _entries(11, 12, term=2)


def test_reads_stay_consistent_while_a_thread_writes(directory: Path) -> None:
    """Reads on one thread see whole saves only while another thread saves and compacts."""
    storage = _open(directory, segment_size_bytes=2000)
    failures: list[str] = []

    def write() -> None:
        for first in range(1, 2001, 20):
            storage.save(HardState(1, 1, first), _entries(first, first + 19, term=1), None, sync=False)
            if first % 500 == 481:
                storage.create_snapshot(first + 19, 1, VOTERS, b"s")

    writer = threading.Thread(target=write)
    writer.start()
    while writer.is_alive():
        first, last = storage.first_index(), storage.last_index()
        try:
            got = storage.entries(first, last + 1)
        except Compacted:
            continue  # compaction ran between the two calls
        if got and (got[0].index != first or got[-1].index != last or (last % 20) != 0):
            failures.append(f"read {first}..{last} got {got[0].index}..{got[-1].index}")
    writer.join()
    assert not failures, failures[:3]
    assert storage.last_index() == 2000
    storage.close()


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 6), st.integers(1, 8), st.booleans()),
        st.tuples(st.just("snapshot"), st.integers(0, 4)),
        st.tuples(st.just("install"), st.integers(1, 5)),
        st.tuples(st.just("hard_state"), st.integers(0, 3)),
        st.tuples(st.just("reopen")),
    ),
    max_size=25,
)


def _apply(operation: tuple, disk: DiskStorage, model: MemoryStorage, term: int) -> int:
    """Apply one operation to both storages; returns the (possibly raised) current term."""
    kind = operation[0]
    last = model.last_index()
    if kind == "append":
        _, back, count, bump = operation
        term += int(bump)
        first = max(model.first_index(), last + 1 - back)
        batch = _entries(first, first + count - 1, term=term)
        disk.save(None, batch, None, sync=True)
        model.append(batch)
    elif kind == "snapshot":
        index = last - operation[1]
        if index > model.snapshot().meta.index and index >= model.first_index():
            disk.create_snapshot(index, model.term(index), VOTERS, f"at {index}".encode())
            model.create_snapshot(index, VOTERS, f"at {index}".encode())
            model.compact(index)
    elif kind == "install":
        term += 1
        snapshot = Snapshot(SnapshotMeta(last + operation[1], term, VOTERS), b"installed")
        disk.save(None, [], snapshot, sync=True)
        model.apply_snapshot(snapshot)
    elif kind == "hard_state":
        previous = model.hard_state
        # Raft casts at most one vote per term: a vote, once set, stays for the term.
        vote = previous.vote if previous.term == term and previous.vote else operation[1]
        state = HardState(term, vote, min(last, previous.commit + 1))
        disk.save(state, [], None, sync=operation[1] % 2 == 0)
        model.set_hard_state(state)
    return term


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_disk_matches_memory_storage_across_reopens(tmp_path: Path, script: list[tuple]) -> None:
    """Any sequence of appends, conflicts, snapshots, installs and reopens reads like MemoryStorage."""
    directory = tmp_path / f"model-{uuid.uuid4().hex}"
    disk = _open(directory, segment_size_bytes=200)
    model, term = MemoryStorage(VOTERS), 1
    try:
        for operation in script:
            if operation[0] == "reopen":
                disk.close()
                disk = _open(directory, segment_size_bytes=200)
            term = _apply(operation, disk, model, term)
            first, last = model.first_index(), model.last_index()
            assert (disk.first_index(), disk.last_index()) == (first, last)
            assert disk.entries(first, last + 1) == model.entries(first, last + 1, 1 << 30)
            assert disk.term(first - 1) == model.term(first - 1)
            assert disk.initial_state() == model.initial_state()
            assert disk.snapshot().meta == model.snapshot().meta
    finally:
        disk.close()


WRITER_SCRIPT = """
import sys
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
from warmd.raft.types import ConfState, Entry, HardState
from warmd.runtime.node.disk import DiskOptions, DiskStorage
storage = DiskStorage.open(sys.argv[1], DiskOptions(segment_size_bytes=64 * 1024), ConfState((1,)))
first = storage.last_index() + 1
while True:
    batch = [Entry(1, index, data=b"w" * 200) for index in range(first, first + 50)]
    storage.save(HardState(1, 1, first), batch, None, sync=True)
    first += 50
    print(first - 1, flush=True)
"""


def test_kill_during_heavy_writes_keeps_every_acknowledged_entry(directory: Path) -> None:
    """SIGKILL of a process in the middle of synced saves loses nothing it acknowledged."""
    child = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(directory)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert child.stdout is not None
    acknowledged = [int(child.stdout.readline()) for _ in range(40)]
    child.send_signal(signal.SIGKILL)
    child.wait()
    storage = DiskStorage.open(directory, DiskOptions(segment_size_bytes=64 * 1024), ConfState((1,)))
    assert storage.last_index() >= acknowledged[-1]
    assert [entry.index for entry in storage.entries(1, storage.last_index() + 1)] == \
        list(range(1, storage.last_index() + 1))
    storage.close()


def test_running_out_of_descriptors_waits_instead_of_failing(directory: Path) -> None:
    """EMFILE at a segment rotation (a real one: the fd limit reached) is waited out, not fatal."""
    import resource

    storage = _open(directory, segment_size_bytes=512)
    storage.save(HardState(1, 1, 0), _entries(1, 10, term=1), None, sync=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hoard: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 32, hard))
    try:
        with capture_logs() as logs:
            while True:
                try:
                    hoard.append(os.open("/dev/null", os.O_RDONLY))
                except OSError:
                    break
            writer = threading.Thread(target=storage.save, args=(
                HardState(1, 1, 10), _entries(11, 60, term=1), None, True))
            writer.start()
            writer.join(0.5)
            assert writer.is_alive(), "the save should wait for a descriptor"
            for fd in hoard:
                os.close(fd)
            hoard.clear()
            writer.join(10)
        assert not writer.is_alive() and not storage.failed
    finally:
        for fd in hoard:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    waits = [event for event in logs if event["event"] == "disk_waiting_for_resources"]
    assert waits and waits[0]["error"] == "EMFILE" and waits[0]["log_level"] == "warning"
    storage.close()
    reopened = _open(directory, segment_size_bytes=512)
    assert reopened.entries(1, 61) == _entries(1, 60, term=1)
    reopened.close()


def test_only_the_disks_own_errors_are_called_disk_failures(
        directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EIO is a disk failure (kind=disk); EACCES stops writes too but is not blamed on the disk."""
    for code, kind in ((errno.EIO, "disk"), (errno.EACCES, "other")):
        storage = _open(directory / str(code))

        def failing_sync(fd: int, code: int = code) -> None:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "fdatasync", failing_sync)
        with capture_logs() as logs, pytest.raises(DiskFailed):
            storage.save(None, _entries(1, 2, term=1), None, sync=True)
        monkeypatch.undo()
        assert [event["kind"] for event in logs if event["event"] == "disk_failed"] == [kind]
        storage.close()


def test_save_all_writes_several_readys_as_saving_them_in_turn(
        directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer's merged saves: a later Ready's entries overwrite an earlier one's from
    their first index, the newest hard state wins, and nothing is synced until sync()."""
    storage = _open(directory)
    storage.save(None, _entries(1, 2, term=1), None, sync=True)
    calls: list[int] = []
    real_sync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(fd), real_sync(fd)))
    storage.save_all([(HardState(1, 1, 1), _entries(3, 5, term=1)),
                      (None, _entries(6, 6, term=1)),
                      (HardState(2, 2, 2), _entries(5, 7, term=2))])
    assert calls == []
    storage.sync()
    assert len(calls) == 1
    storage.close()
    reopened = _open(directory)
    assert reopened.initial_state()[0] == HardState(2, 2, 2)
    expected = [*_entries(1, 4, term=1), *_entries(5, 7, term=2)]
    assert reopened.entries(1, 8) == expected
    reopened.close()
