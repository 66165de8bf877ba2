"""The chaos smoke run: `python -m chaos` for 60 s on 3 real daemons must report no violation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
LAST_LINE = re.compile(r"faults=(\d+) tasks=(\d+) lost=(\d+) duplicates=(\d+) "
                       r"stale_fence_accepted=(\d+) divergent=(\d+)")


@pytest.mark.timeout(240)
def test_sixty_seconds_of_faults_leave_no_violation() -> None:
    """Kills, pauses, partitions and transfers for 60 s lose, double and fork nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "chaos", "--nodes", "3", "--duration", "60", "--seed", "1"],
        cwd=PROJECT, capture_output=True, text=True, timeout=220, check=False)
    output = done.stdout + done.stderr
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    match = LAST_LINE.fullmatch(last)
    assert match is not None, output[-3000:]
    faults, tasks, lost, duplicates, stale, divergent = map(int, match.groups())
    assert done.returncode == 0, output[-3000:]
    assert faults >= 5 and tasks >= 50
    assert (lost, duplicates, stale, divergent) == (0, 0, 0, 0)
