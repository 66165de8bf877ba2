"""The seeded simulator over fixed seeds: every safety, liveness and linearizability check.

CI runs SEEDS_PER_SIZE seeds for 3-node and for 5-node clusters (>= 500 in all).
`WARMD_SEED=<n> pytest tests/sim/test_simulation.py` replays one seed for both sizes;
a failure names each failing seed with the command that replays it.
"""

from __future__ import annotations

import os

import pytest

from warmd.testing.sim import SimulationOptions, replay_command, run_seed, run_seeds

SEEDS_PER_SIZE = 300
BATCH_SEEDS = 50
WORKERS = 2  # CI has two cores; the seeds are independent


def _seed_batches() -> list[range]:
    replay = os.environ.get("WARMD_SEED")
    if replay:
        return [range(int(replay), int(replay) + 1)]
    return [range(start, start + BATCH_SEEDS) for start in range(1, SEEDS_PER_SIZE + 1, BATCH_SEEDS)]


@pytest.mark.parametrize("node_count", [3, 5])
@pytest.mark.parametrize("seeds", _seed_batches(), ids=lambda seeds: f"seeds{seeds.start}")
def test_seeded_runs_keep_every_invariant(node_count: int, seeds: range) -> None:
    """Every seed passes the safety checkers, heals to a live cluster and is linearizable."""
    options = SimulationOptions(node_count=node_count)
    failures = []
    operations = 0
    for result in run_seeds(seeds, options, WORKERS):
        operations += result.operations
        if not result.ok:
            headline = str(result.violation).splitlines()[0]
            failures.append(f"WARMD_SEED={result.seed}: {headline}\n  replay: "
                            f"{replay_command(result.seed, options)}")
    assert not failures, "\n".join(failures)
    assert operations > 5 * len(seeds), "the clients barely ran: the runs prove little"


def test_a_seed_replays_exactly() -> None:
    """The same seed gives the same run, tick for tick and operation for operation."""
    options = SimulationOptions(node_count=5, steps=300)
    first, second = run_seed(17, options), run_seed(17, options)
    assert first == second
    assert run_seed(18, options) != first
