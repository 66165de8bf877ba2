"""The tailer loses and repeats no line across rename and copytruncate rotations."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from warmd.runtime.ingest.tailer import LogTailer


def _append(path: Path, first: int, last: int) -> None:
    with open(path, "a") as handle:
        for number in range(first, last):
            handle.write(f"line {number}\n")


def _numbers(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in lines]


def test_partial_lines_wait_for_their_newline(tmp_path: Path) -> None:
    """A line without its newline yet is returned only once it is complete."""
    path = tmp_path / "access.log"
    path.write_text("line 0\nline ")
    tailer = LogTailer(str(path))
    assert tailer.poll() == ["line 0"]
    with open(path, "a") as handle:
        handle.write("1\n")
    assert tailer.poll() == ["line 1"]


def test_rename_rotation_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Lines written to the old file after the last poll and to the new file all arrive once."""
    path = tmp_path / "access.log"
    _append(path, 0, 100)
    tailer = LogTailer(str(path))
    seen = tailer.poll()
    _append(path, 100, 150)  # written after our poll, before the rename
    os.rename(path, tmp_path / "access.log.1")
    assert _numbers(tailer.poll()) == list(range(100, 150))  # new file not there yet
    _append(path, 150, 200)
    seen += tailer.poll()
    _append(path, 200, 210)
    seen += tailer.poll()
    assert _numbers(seen) == list(range(0, 100)) + list(range(150, 210))
    assert tailer.rotations == 1


def test_copytruncate_reads_the_gap_from_the_copy(tmp_path: Path) -> None:
    """After copytruncate, lines between the last poll and the copy come from the copy."""
    path = tmp_path / "access.log"
    _append(path, 0, 100)
    tailer = LogTailer(str(path))
    seen = tailer.poll()
    _append(path, 100, 130)
    shutil.copyfile(path, tmp_path / "access.log.1")
    with open(path, "r+") as handle:
        handle.truncate(0)
    _append(path, 130, 140)
    seen += tailer.poll()
    _append(path, 140, 150)
    seen += tailer.poll()
    assert _numbers(seen) == list(range(150))
    assert tailer.truncations == 1


def test_copytruncate_with_a_gzip_copy(tmp_path: Path) -> None:
    """A compressed rotated copy (access.log.1.gz) also fills the gap."""
    path = tmp_path / "access.log"
    _append(path, 0, 10)
    tailer = LogTailer(str(path))
    seen = tailer.poll()
    _append(path, 10, 20)
    with open(path, "rb") as source, gzip.open(tmp_path / "access.log.1.gz", "wb") as copy:
        copy.write(source.read())
    with open(path, "r+") as handle:
        handle.truncate(0)
    _append(path, 20, 25)
    seen += tailer.poll()
    assert _numbers(seen) == list(range(25))


def test_missing_file_and_start_at_end(tmp_path: Path) -> None:
    """A missing log yields nothing until it appears; from_start=False skips old lines."""
    path = tmp_path / "access.log"
    tailer = LogTailer(str(path))
    assert tailer.poll() == []
    _append(path, 0, 3)
    assert _numbers(tailer.poll()) == [0, 1, 2]
    late = LogTailer(str(path), from_start=False)
    assert late.poll() == []
    _append(path, 3, 5)
    assert _numbers(late.poll()) == [3, 4]
    tailer.close()
    late.close()


def test_max_bytes_reads_a_backlog_over_several_polls(tmp_path: Path) -> None:
    """With max_bytes, a big file is read in bounded chunks, each line once and in order."""
    path = tmp_path / "access.log"
    _append(path, 0, 1000)
    tailer = LogTailer(str(path))
    seen: list[str] = []
    polls = 0
    while len(seen) < 1000 and polls < 1000:
        batch = tailer.poll(max_bytes=500)
        assert not tailer.caught_up or len(seen) + len(batch) == 1000
        assert sum(len(line) + 1 for line in batch) <= 500 + 20  # at most one carried partial
        seen += batch
        polls += 1
    assert _numbers(seen) == list(range(1000)) and polls > 10
    assert tailer.poll(max_bytes=500) == [] and tailer.caught_up
    tailer.close()


def test_max_bytes_finishes_a_renamed_file_before_the_new_one(tmp_path: Path) -> None:
    """A renamed-away file still being drained in chunks is finished before the new file."""
    path = tmp_path / "access.log"
    _append(path, 0, 10)
    tailer = LogTailer(str(path))
    seen = tailer.poll(max_bytes=1000)
    _append(path, 10, 300)
    os.rename(path, tmp_path / "access.log.1")
    _append(path, 300, 310)
    for _ in range(100):
        seen += tailer.poll(max_bytes=700)
    assert _numbers(seen) == list(range(310)) and tailer.rotations == 1
    tailer.close()


def test_rotation_reopens_from_start_even_when_tailing_from_the_end(tmp_path: Path) -> None:
    """from_start=False skips only the first file's old lines; a rotated-in file is read whole."""
    path = tmp_path / "access.log"
    _append(path, 0, 5)
    tailer = LogTailer(str(path), from_start=False)
    assert tailer.poll() == []
    os.rename(path, tmp_path / "access.log.1")
    assert tailer.poll() == []  # the new file is not there yet
    _append(path, 5, 8)
    assert _numbers(tailer.poll()) == [5, 6, 7]
    tailer.close()
    late = LogTailer(str(tmp_path / "later.log"), from_start=False)
    assert late.poll() == []  # no file yet: nothing was there to skip
    _append(tmp_path / "later.log", 0, 2)
    assert _numbers(late.poll()) == [0, 1]
    late.close()


def test_a_line_without_newline_is_bounded(tmp_path: Path) -> None:
    """Bytes with no newline in sight are handed on once past the bound, not kept forever."""
    path = tmp_path / "access.log"
    path.write_bytes(b"x" * ((1 << 20) + 10))
    tailer = LogTailer(str(path))
    (line,) = tailer.poll()
    assert len(line) == (1 << 20) + 10
    tailer.close()
