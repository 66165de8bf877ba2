"""The progress bar of the offline tools shows the time left, from an estimate of the lines."""

from __future__ import annotations

import gzip
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from warmd.runtime.ingest.worker import estimate_lines
from warmd.testing.loggen import LogSpec, generate_lines

SPEC = LogSpec(seed=5, days=1.0, requests_per_day=30_000)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    lines = list(generate_lines(SPEC))
    directory = tmp_path_factory.mktemp("logs")
    plain, packed = directory / "access.log", directory / "access.log.gz"
    plain.write_text("\n".join(lines) + "\n")
    with gzip.open(packed, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return plain, packed, len(lines)


def test_estimate_is_close_for_plain_and_gzip(logs: tuple[Path, Path, int]) -> None:
    plain, packed, count = logs
    for path in (plain, packed):
        estimate = estimate_lines([str(path)])
        assert estimate is not None and abs(estimate - count) < 0.1 * count, path.name
    assert estimate_lines([str(plain.parent / "missing.log")]) is None


@pytest.mark.parametrize("command", ["analyze", "predict"])
def test_bar_on_a_terminal_shows_the_time_left(logs: tuple[Path, Path, int],
                                               command: str) -> None:
    """Run on a pseudo-terminal (stderr is a TTY), the bar has a share and `s left`."""
    _, packed, _ = logs
    leader, follower = pty.openpty()
    try:
        completed = subprocess.run([sys.executable, "-m", "warmd", command, str(packed),
                                    "--workers" if command == "analyze" else "--budget",
                                    "1" if command == "analyze" else "5"],
                                   stdout=subprocess.PIPE, stderr=follower, timeout=120,
                                   check=False)
        os.close(follower)
        follower = -1
        shown = b""
        while chunk := _read(leader):
            shown += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert completed.returncode == 0, shown
    assert b"s left" in shown and b"100%" in shown, shown[-300:]


def _read(descriptor: int) -> bytes:
    try:
        return os.read(descriptor, 65_536)
    except OSError:  # EIO: the writer side is closed and drained
        return b""
