"""Proof that the simulator can fail: RaftNode subclasses that break one safety rule each.

A checker that never fires proves nothing. Each broken node below is run through the
same seeded simulator as the real core, and the simulator must report a violation for
some seed within a small range (and name the rule it caught).
"""

from __future__ import annotations

from warmd.raft.core import RaftNode
from warmd.testing.mutants import VotesForAnyLog, VotesTwicePerTerm
from warmd.testing.sim import SimulationOptions, run_seeds


def _violations(node_factory: type[RaftNode], node_count: int, seeds: range) -> list[str]:
    options = SimulationOptions(node_count=node_count, node_factory=node_factory)
    return [f"seed {result.seed}: {result.violation}"
            for result in run_seeds(seeds, options) if not result.ok]


def test_voting_for_a_stale_log_is_caught_as_lost_committed_entries() -> None:
    """A leader elected without the committed entries is reported (leader completeness)."""
    violations = _violations(VotesForAnyLog, 3, range(1, 31))
    assert violations, "the simulator missed a leader elected with a stale log"
    assert any("leader completeness" in violation or "committed" in violation
               for violation in violations), violations


def test_voting_twice_in_a_term_is_caught() -> None:
    """A node that grants two votes in one term is reported within a few seeds."""
    violations = _violations(VotesTwicePerTerm, 5, range(1, 11))
    assert violations, "the simulator missed a double vote"
    assert any("double vote" in violation or "election safety" in violation
               for violation in violations), violations


def test_the_real_core_passes_the_same_seeds() -> None:
    """The unbroken core passes exactly the seeds its broken subclasses fail."""
    assert _violations(RaftNode, 3, range(1, 31)) == []
