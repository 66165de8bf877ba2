"""SIGHUP at any moment of start-up leaves `warmd run` alive, and once it serves, SIGHUP reloads.

Launched as the systemd unit launches it (ExecStart's `env --ignore-signal=HUP`), the daemon
is safe from env's first instructions: Python has not started, so only a disposition that
exec passes on can save it. Launched bare (`python -m warmd run`), what saves it is
`warmd.cli.warmd.main` ignoring SIGHUP before any other import.

Before the program's first act (env's first instructions, or the interpreter's ~40 ms of
start-up before main) nothing can save it, and how long that takes depends on the machine's
load (over 100 ms at load 8). So each offset counts from the moment the kernel shows SIGHUP
ignored (`SigIgn` in /proc/PID/status), the first moment the claim is about: 0 ms is the
race right after it (env has not yet exec'd Python; main has not yet imported anything).
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

UNIT_OFFSETS_MS = (0, *range(50, 1001, 50))
BARE_OFFSETS_MS = (0, *range(100, 1001, 100))
SIGHUP_BIT = 1 << (signal.SIGHUP - 1)
UNIT = Path(__file__).resolve().parents[2] / "systemd" / "warmd.service"


def unit_launcher() -> list[str]:
    """The words of the unit's ExecStart before the warmd binary."""
    line = next(line for line in UNIT.read_text().splitlines() if line.startswith("ExecStart="))
    words = shlex.split(line.removeprefix("ExecStart="))
    return words[:words.index("warmd")]


def wait_until_sighup_ignored(pid: int, timeout_s: float = 10.0) -> bool:
    """Poll the kernel's view of `pid`'s ignored signals until SIGHUP is among them."""
    deadline_s = time.monotonic() + timeout_s
    status = Path(f"/proc/{pid}/status")
    while time.monotonic() < deadline_s:
        try:
            line = next(line for line in status.read_text().splitlines()
                        if line.startswith("SigIgn:"))
        except (OSError, StopIteration):
            return False  # the process is gone
        if int(line.split()[1], 16) & SIGHUP_BIT:
            return True
        time.sleep(0.0005)
    return False


def answers(cluster: ProcessCluster) -> bool:
    try:
        cluster.call(1, "ping", timeout_s=2.0)
    except AdminClientError:
        return False
    return True


def survives_sighup_at(offset_ms: int, bare: bool) -> str:
    """Launch, send SIGHUP `offset_ms` after SIGHUP is ignored, then check it serves and reloads.

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
        if not wait_until_sighup_ignored(node.process.pid):
            return f"{offset_ms} ms (bare={bare}): SIGHUP never showed as ignored"
        time.sleep(offset_ms / 1000)
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
    """SIGHUP 0, 50, ... 1,000 ms after it is ignored never kills the daemon; afterwards it reloads."""
    cases = [(offset, False) for offset in UNIT_OFFSETS_MS]
    cases += [(offset, True) for offset in BARE_OFFSETS_MS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        failures = [failure for failure in pool.map(lambda case: survives_sighup_at(*case), cases)
                    if failure]
    assert not failures, "\n".join(failures)
