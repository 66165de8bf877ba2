"""The demo runner as a real process: a short headless run, and a clean stop on a signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUNNER = [sys.executable, "-m", "warmd.demo.runner", "--headless"]


def children_of(parent_pid: int) -> set[int]:
    """Live (non-zombie) processes whose parent is `parent_pid`, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent_pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_headless_json_run_shows_warm_beating_cold() -> None:
    """A short run prints one JSON object; warm has a higher hit rate and fewer origin
    queries than cold, and no child outlives the runner."""
    completed = subprocess.run(
        [*RUNNER, "--json", "--days", "2", "--sessions-per-day", "500", "--requests", "300"],
        capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    table = json.loads(completed.stdout)
    assert set(table) == {"cold", "warm", "steady"}
    cold, warm, steady = table["cold"], table["warm"], table["steady"]
    assert warm["hit_rate"] > cold["hit_rate"]
    assert warm["origin_queries"] < cold["origin_queries"] / 2
    assert steady["hit_rate"] == 1.0 and steady["origin_queries"] == 0
    assert cold["p95_ms"] > steady["p95_ms"]
    assert "warm-up replayed" in completed.stderr


def test_bad_arguments_exit_2_with_a_reason() -> None:
    """A non-positive history length is refused before anything starts."""
    completed = subprocess.run([*RUNNER, "--days", "0"], capture_output=True, text=True,
                               timeout=30)
    assert completed.returncode == 2 and "--days" in completed.stderr


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_every_child(signal_number: int) -> None:
    """Ctrl-C (or SIGTERM) mid-run stops redis and the shop and exits 130."""
    runner = subprocess.Popen([*RUNNER, "--days", "3", "--sessions-per-day", "1500"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        children: set[int] = set()
        while time.monotonic() < deadline and len(children) < 2:
            children = children_of(runner.pid)
            time.sleep(0.05)
        assert len(children) >= 2, "redis and the shop never both started"
        os.kill(runner.pid, signal_number)
        assert runner.wait(timeout=20) == 130
        assert b"interrupted" in (runner.stderr.read() if runner.stderr else b"")
        assert not [pid for pid in children if alive(pid)]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
