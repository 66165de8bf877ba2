"""The cost-model simulator: reproducible from its seed, and its costs move its results.

Short runs (0.2 s simulated after a 0.1 s warm-up) of small clusters: each test checks
that one part of the model does what it says, in the direction it must.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from warmd.testing.cost_sim import CostCluster, CostModel, CostResult, CostRun

MODEL = CostModel(
    ready_us=300.0, message_handled_us=40.0, message_sent_us=20.0, byte_coded_us=0.01,
    entry_appended_us=10.0, entry_applied_us=20.0, proposal_us=70.0, tick_us=300.0,
    fsync_us=1000.0, fsync_cpu_us=200.0, network_message_us=200.0, network_byte_us=0.008,
)
SHORT = CostRun(warmup_us=100_000.0, measure_us=200_000.0)


def _measure(model: CostModel = MODEL, **run: object) -> CostResult:
    return CostCluster(model, replace(SHORT, **run)).measure()  # type: ignore[arg-type]


def test_one_seed_gives_the_same_run() -> None:
    """Two runs of one seed agree on every figure; the seed decides the whole run."""
    first, again = _measure(seed=7, learners=2), _measure(seed=7, learners=2)
    assert first == again, "seed=7 gave two different runs"
    assert first.commits > 100 and first.elections == 0, f"seed=7: {first}"


def test_learners_cost_the_leader_per_commit_but_not_a_follower() -> None:
    """Each learner adds messages and CPU to the leader's commit; a follower's stays put."""
    alone, with_learners = _measure(seed=3), _measure(seed=3, learners=8)
    assert with_learners.learner is not None and alone.learner is None
    assert with_learners.leader.messages > alone.leader.messages * 1.5, (alone, with_learners)
    assert with_learners.leader.cpu_us > alone.leader.cpu_us * 1.1, (alone, with_learners)
    assert alone.follower is not None and with_learners.follower is not None
    assert with_learners.follower.cpu_us < alone.follower.cpu_us * 1.3, (alone, with_learners)


def test_a_slower_disk_slows_a_lone_write_by_one_fsync() -> None:
    """With one write in flight each commit waits for an fsync; the leader sends before its
    own fsync, so its fsync and the followers' overlap: 4 ms more per fsync is ~4 ms more
    per commit, not 8."""
    quick = _measure(seed=2, in_flight=1)
    slow = _measure(replace(MODEL, fsync_us=5000.0), seed=2, in_flight=1)
    assert slow.commits_per_s < quick.commits_per_s * 0.5, (quick, slow)
    assert 3.6 < slow.p50_ms - quick.p50_ms < 6.0, (quick.p50_ms, slow.p50_ms)


def test_group_commit_amortises_per_ready_costs() -> None:
    """With 64 writes in flight one fsync covers many entries, so CPU per commit falls."""
    lone, batched = _measure(seed=4, in_flight=1), _measure(seed=4, in_flight=64)
    assert batched.leader.fsyncs < 0.2 * lone.leader.fsyncs, (lone, batched)
    assert batched.leader.cpu_us < 0.5 * lone.leader.cpu_us, (lone, batched)
    assert batched.commits_per_s > 5 * lone.commits_per_s, (lone, batched)


def test_hosts_sharing_one_core_are_slower_than_hosts_with_their_own() -> None:
    """All members on one shared core: their CPU adds up, so commits/s drops."""
    own, shared = _measure(seed=5, learners=3), _measure(seed=5, learners=3, shared_cores=1)
    assert shared.commits_per_s < own.commits_per_s * 0.8, (own, shared)


def test_the_safety_checker_sees_every_commit_of_a_cost_run() -> None:
    """CostCluster hands SimCluster's checker each persisted and applied entry: it holds
    every committed write the clients saw, and all members applied the same log."""
    cluster = CostCluster(MODEL, replace(SHORT, seed=6, learners=2))
    result = cluster.measure()
    assert len(cluster.checker.committed) >= result.commits > 0
    applied = {node_id: cluster.applied_index(node_id) for node_id in cluster.nodes}
    assert min(applied.values()) > 0.9 * max(applied.values()), applied


def test_bad_costs_and_shapes_are_refused() -> None:
    """Negative costs, a jitter of 100 % and an empty cluster get a ValueError naming them."""
    with pytest.raises(ValueError, match="fsync_us"):
        replace(MODEL, fsync_us=-1.0)
    with pytest.raises(ValueError, match="network_jitter"):
        replace(MODEL, network_jitter=1.0)
    with pytest.raises(ValueError, match="voters"):
        CostRun(voters=0)
    with pytest.raises(ValueError, match="shared_cores"):
        CostRun(shared_cores=0)
