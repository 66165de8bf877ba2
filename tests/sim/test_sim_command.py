"""`python -m warmd.raft.sim`: its output contract, exit status and replay, as a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def run_sim(*arguments: str, seed: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "WARMD_SEED"}
    if seed is not None:
        environment["WARMD_SEED"] = seed
    return subprocess.run(
        [sys.executable, "-m", "warmd.raft.sim", *arguments],
        capture_output=True, text=True, timeout=120, env=environment, check=False,
    )


def test_clean_run_ends_with_the_summary_line_and_exit_zero() -> None:
    """A clean batch exits 0 and its last line is exactly `seeds=<N> violations=0`."""
    done = run_sim("--nodes", "3", "--seeds", "4", "--steps", "200")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "seeds=4 violations=0"


def test_failing_seeds_print_their_replay_command_and_replay_exactly() -> None:
    """A broken core gives one line per failing seed whose command reproduces that line."""
    done = run_sim("--nodes", "3", "--seeds", "12", "--mutant", "votes-for-any-log")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    summary = re.fullmatch(r"seeds=12 violations=(\d+)", lines[-1])
    assert summary and int(summary.group(1)) > 0
    failing = [line for line in lines if line.startswith("seed=")]
    assert len(failing) == int(summary.group(1))
    seed = re.match(r"seed=(\d+) ", failing[0]).group(1)  # type: ignore[union-attr]
    assert f"WARMD_SEED={seed} python -m warmd.raft.sim --nodes 3 --seeds 1" in failing[0]
    replay = run_sim("--nodes", "3", "--mutant", "votes-for-any-log", seed=seed)
    assert replay.returncode == 1
    assert replay.stdout.splitlines()[0] == failing[0]
    assert replay.stdout.splitlines()[-1] == "seeds=1 violations=1"


def test_workers_give_the_same_results_as_one_process() -> None:
    """Fanning seeds out over processes changes nothing in what is reported."""
    arguments = ("--nodes", "3", "--seeds", "12", "--mutant", "votes-for-any-log")
    single = run_sim(*arguments)
    fanned = run_sim(*arguments, "--workers", "2")
    def failures(output: str) -> list[str]:
        return [line for line in output.splitlines() if line.startswith("seed")]
    assert failures(fanned.stdout) == failures(single.stdout)


def test_bad_arguments_are_refused_with_status_2() -> None:
    """Nonsense counts and a non-numeric WARMD_SEED get a clear error, not a traceback."""
    for done in (run_sim("--nodes", "0"), run_sim("--nodes", "3", seed="abc")):
        assert done.returncode == 2
        assert "error" in done.stderr and "Traceback" not in done.stderr
