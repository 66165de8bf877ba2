"""The tailer loses and repeats no line across rename and copytruncate rotations."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from warmd.runtime.tailer import LogTailer


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
