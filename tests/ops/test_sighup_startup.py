"""SIGHUP at any moment of start-up leaves `warmd run` alive, and once it serves, SIGHUP reloads.

Launched as the systemd unit launches it (ExecStart's `env --ignore-signal=HUP`), the daemon
is safe from env's first instructions: Python has not started, so only a disposition that
exec passes on can save it. The first point is 20 ms, not 0: before env's own first
instruction (2-5 ms after exec on a loaded machine) no program can act at all. Launched bare
(`python -m warmd run`), what saves it from 100 ms on is `warmd.cli.warmd.main` ignoring SIGHUP
before any other import (the interpreter alone takes ~40 ms to get there).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from warmd.admin.client import AdminClientError
from warmd.testing.procs import ProcessCluster

UNIT_OFFSETS_MS = (20, *range(50, 1001, 50))
BARE_OFFSETS_MS = tuple(range(100, 1001, 100))
UNIT = Path(__file__).resolve().parents[2] / "systemd" / "warmd.service"


def unit_launcher() -> list[str]:
    """The words of the unit's ExecStart before the warmd binary."""
    line = next(line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    words = shlex.split(line.removeprefix("ExecStart="))
    return words[:words.index("warmd")]


def answers(cluster: ProcessCluster) -> bool:
    try:
        cluster.call(1, "ping", timeout_s=2.0)
    except AdminClientError:
        return False
    return True


def survives_sighup_at(offset_ms: int, bare: bool) -> str:
    """Launch, send SIGHUP `offset_ms` after exec, then check it serves and reloads on SIGHUP.

    Returns "" on success, else what went wrong.
    """
    with ProcessCluster(1) as cluster:
        node = cluster.nodes[1]
        argv = [sys.executable, "-m", "warmd", "run", "--config", str(node.config_path)]
        if not bare:
            argv = [*unit_launcher(), *argv]
        with open(node.log_path, "ab") as log_file:
            node.process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        time.sleep(offset_ms / 1000)  # Popen returns once the child has exec'd
        os.kill(node.process.pid, signal.SIGHUP)
        deadline_s = time.monotonic() + 30
        while node.running() and not answers(cluster) and time.monotonic() < deadline_s:
            time.sleep(0.05)
        if not node.running():
            return f"{offset_ms} ms (bare={bare}): died with status {node.process.returncode}"
        if not answers(cluster):
            return f"{offset_ms} ms: alive but not serving after 30 s"
        os.kill(node.process.pid, signal.SIGHUP)  # now handled: the config is re-read
        deadline_s = time.monotonic() + 10
        while '"config_reloaded"' not in node.log_text() and time.monotonic() < deadline_s:
            time.sleep(0.05)
        if '"config_reloaded"' not in node.log_text() or not node.running():
            return f"{offset_ms} ms: SIGHUP after start-up did not reload\n{node.log_text()[-2000:]}"
        return ""


def test_unit_launcher_ignores_sighup() -> None:
    """The unit's ExecStart prefix really starts its program with SIGHUP ignored."""
    probe = "import signal; print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)"
    result = subprocess.run([*unit_launcher(), sys.executable, "-c", probe],
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


def test_daemon_survives_sighup_at_every_moment_of_start_up() -> None:
    """SIGHUP 20, 50, ... 1,000 ms after exec never kills the daemon; afterwards it reloads."""
    cases = [(offset, False) for offset in UNIT_OFFSETS_MS]
    cases += [(offset, True) for offset in BARE_OFFSETS_MS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        failures = [failure for failure in pool.map(lambda case: survives_sighup_at(*case), cases)
                    if failure]
    assert not failures, "\n".join(failures)
