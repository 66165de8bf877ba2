"""CI's small kill table: the command's contract, and each mutant's recorded first catch.

The full table (docs/testing.md) runs every mutant over 100 random seeds per cluster
size; here each caught mutant replays the first seed that caught it, so a change that
blunts the simulator (or a checker) shows up as a failure.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from warmd.testing.kill_table import kill_row
from warmd.testing.mutants import MUTANTS
from warmd.testing.sim import DEFAULT_STEPS

LAST_LINE = re.compile(r"mutants=(\d+) caught=(\d+)")
# (mutant, nodes, first seed that caught it) from the kill table in docs/testing.md.
RECORDED_FIRST_CATCHES = [
    ("votes-for-any-log", 3, 2),
    ("votes-for-any-log", 5, 1),
    ("votes-twice-per-term", 3, 1),
    ("votes-twice-per-term", 5, 1),
    ("forgets-its-vote", 3, 5),
    ("forgets-its-vote", 5, 5),
    ("commits-old-term-by-counting", 3, 15),
    ("commits-old-term-by-counting", 5, 55),
    ("serves-reads-without-quorum", 3, 3),
    ("serves-reads-without-quorum", 5, 1),
    ("applies-uncommitted-entries", 3, 2),
    ("applies-uncommitted-entries", 5, 1),
    ("truncates-acknowledged-suffix", 3, 1),
    ("truncates-acknowledged-suffix", 5, 1),
    ("accepts-stale-leader-appends", 3, 5),
    ("accepts-stale-leader-appends", 5, 15),
    ("counts-learner-votes", 3, 36),
    ("counts-learner-votes", 5, 36),
    ("promotes-lagging-learners", 3, 30),
    ("promotes-lagging-learners", 5, 165),
    ("pre-vote-bumps-term", 3, 1),
    ("pre-vote-bumps-term", 5, 1),
    ("lease-reads-without-check-quorum", 3, 6),
    ("lease-reads-without-check-quorum", 5, 28),
    ("snapshot-over-newer-log", 3, 13),
    ("snapshot-over-newer-log", 5, 65),
    ("concurrent-membership-changes", 3, 6),
    ("concurrent-membership-changes", 5, 6),
    ("acks-before-durable", 3, 1),
    ("acks-before-durable", 5, 1),
    ("applies-before-durable", 3, 1),
    ("applies-before-durable", 5, 1),
    ("never-tells-waiting-members", 3, 1),
    ("never-tells-waiting-members", 5, 1),
    ("silent-on-rejection", 3, 1),
    ("silent-on-rejection", 5, 1),
]


def test_kill_table_command_prints_a_row_per_mutant_and_the_tally() -> None:
    """`--kill-table` prints a markdown row per mutant, then `mutants=<M> caught=<C>` last."""
    done = subprocess.run(
        [sys.executable, "-m", "warmd.raft.sim", "--kill-table", "--seeds", "2", "--nodes", "3"],
        capture_output=True, text=True, timeout=120, check=False)
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("| mutant | breaks |"), done.stdout + done.stderr
    rows = [line for line in lines[2:] if line.startswith("| ")]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == list(MUTANTS)
    match = LAST_LINE.fullmatch(lines[-1])
    assert match is not None, lines[-1]
    mutants, caught = map(int, match.groups())
    assert mutants == len(MUTANTS) and caught == sum("NOT CAUGHT" not in row for row in rows)
    assert done.returncode == (0 if caught == mutants else 1)


@pytest.mark.parametrize(("mutant", "node_count", "seed"), RECORDED_FIRST_CATCHES)
def test_recorded_first_catch_still_catches(mutant: str, node_count: int, seed: int) -> None:
    """The seed that first caught a mutant in the recorded kill table still catches it."""
    row = kill_row(mutant, node_count, [seed], DEFAULT_STEPS)
    assert row.caught, f"{mutant} on {node_count} nodes escaped seed {seed}"
