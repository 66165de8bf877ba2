"""The demo runner as a real process: redis, the shop and three warmd daemons; a headless
run warmed by the cluster's own plan, the interactive mode, and a clean stop on a signal."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

RUNNER = [sys.executable, "-m", "warmd.demo.runner"]
SMALL = ["--days", "2", "--sessions-per-day", "400", "--requests", "300"]
WARMCTL = str(Path(sys.executable).with_name("warmctl"))


def wait_for_children(runner: subprocess.Popen[str], process_tree: tuple, count: int,
                      timeout_s: float) -> set[int]:
    """Every process below the runner once it has `count` direct children (redis, the shop,
    three daemons), with their own children (the daemons' analysis workers)."""
    descendants, _ = process_tree
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s and runner.poll() is None:
        below = descendants(runner.pid)
        direct = [pid for pid in below if _parent(pid) == runner.pid]
        if len(direct) >= count:
            return below
        time.sleep(0.1)
    raise AssertionError(f"the runner never had {count} children (exit {runner.poll()})")


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def test_headless_json_run_is_warmed_by_the_cluster_plan() -> None:
    """A short headless run prints one JSON object; the naive phase warms the last day's
    top targets through the executors, the warm-up comes from a plan the cluster made on the
    flush, both within a budget of a fifth of the window's distinct keys (a cold phase's
    origin queries: each distinct key misses once), and both beat cold."""
    completed = subprocess.run([*RUNNER, "--headless", "--json", *SMALL],
                               capture_output=True, text=True, timeout=150)
    assert completed.returncode == 0, completed.stderr
    table = json.loads(completed.stdout)
    assert set(table) == {"cold", "naive", "warm", "steady"}
    cold, naive, warm, steady = (table[phase] for phase in ("cold", "naive", "warm", "steady"))
    budget = int(re.search(r"warm budget (\d+) requests", completed.stderr)[1])
    assert 0 < budget <= cold["origin_queries"] / 5
    for phase in (naive, warm):
        assert 0 < phase["warm_set"] <= budget and 0 <= phase["waste"] < 1
        assert phase["hit_rate"] > cold["hit_rate"]
        assert phase["origin_queries"] < cold["origin_queries"]
    assert steady["hit_rate"] == 1.0 and steady["origin_queries"] == 0
    assert cold["p95_ms"] > steady["p95_ms"]
    stderr = completed.stderr
    assert re.search(r"leader node \d", stderr)
    assert re.search(r"summaries shipped: node 1 \d+ lines, node 2 \d+ lines, node 3", stderr)
    assert re.search(r"planned after the flush: plan \S+ \(cache-flush:redis\)", stderr)
    assert "warm-up done in" in stderr
    assert re.search(rf"naive warm-up done in .* top {naive['warm_set']} targets", stderr)


def test_bad_arguments_exit_2_with_a_reason() -> None:
    """A non-positive history length is refused before anything starts."""
    completed = subprocess.run([*RUNNER, "--headless", "--days", "0"], capture_output=True,
                               text=True, timeout=30)
    assert completed.returncode == 2 and "--days" in completed.stderr


def test_sigterm_mid_run_stops_every_child(process_tree: tuple) -> None:
    """SIGTERM once the daemons run stops redis, the shop, the daemons and their workers,
    and the runner exits 130."""
    _, is_alive = process_tree
    runner = subprocess.Popen([*RUNNER, "--headless", *SMALL], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        started = wait_for_children(runner, process_tree, 5, timeout_s=60)
        os.kill(runner.pid, signal.SIGTERM)
        assert runner.wait(timeout=30) == 130
        assert "interrupted" in (runner.stderr.read() if runner.stderr else "")
        assert not [pid for pid in started if is_alive(pid)]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def test_interactive_demo_shows_warmctl_and_ctrl_c_stops_all(process_tree: tuple) -> None:
    """Without --headless the demo prints its table and a working warmctl command line,
    stays up, and Ctrl-C stops every child it started."""
    descendants, is_alive = process_tree
    runner = subprocess.Popen([*RUNNER, "--json", *SMALL], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert runner.stdout is not None
        table = json.loads(runner.stdout.readline())
        assert table["warm"]["hit_rate"] > table["cold"]["hit_rate"]
        shown = ""
        while "Press Ctrl-C" not in shown:
            line = runner.stdout.readline()
            assert line, f"the demo ended early: {shown}"
            shown += line
        socket = re.search(r"warmctl --socket (\S+) plans", shown)
        assert socket is not None, shown
        hint = re.search(r"(\S*warmctl --socket \S+ tasks.*)", shown)
        assert hint is not None, shown
        tasks = subprocess.run([WARMCTL, *hint[1].split()[1:]], capture_output=True,
                               text=True, timeout=30)
        assert tasks.returncode == 0, tasks.stderr  # the hint is a command that works
        plans = subprocess.run([WARMCTL, "--socket", socket[1], "plans", "--json"],
                               capture_output=True, text=True, timeout=30)
        assert plans.returncode == 0 and "cache-flush:redis" in plans.stdout, plans.stderr
        console = re.search(r"console \(node 1\): (http://\S+)", shown)
        login = re.search(r"The console: (http://\S+/login/once\?code=\S+)", shown)
        assert console is not None and login is not None, shown
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        browser.open(login[1], timeout=30).close()  # the one-time link: a session cookie
        with browser.open(console[1] + "api/v1/plans", timeout=30) as response:
            assert "cache-flush:redis" in response.read().decode()  # the console shows them
        started = descendants(runner.pid)
        assert len(started) >= 5
        os.kill(runner.pid, signal.SIGINT)
        assert runner.wait(timeout=30) == 130
        assert not [pid for pid in started if is_alive(pid)]
        assert not Path(socket[1]).exists()
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
