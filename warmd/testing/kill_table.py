"""The kill table: how often random seeds alone catch each deliberately broken core.

A simulator's power is measurable: run every mutant of `mutants.py` over the same
seeds and count the seeds whose run ends in a violation. A mutant no seed catches is
a hole in the net (`python -m warmd.raft.sim --kill-table --seeds N`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from warmd.testing.mutants import MUTANTS
from warmd.testing.sim import SimulationOptions, run_seeds

SEEDS_LISTED_MAX = 12  # a row lists at most this many catching seeds


@dataclass(frozen=True, slots=True)
class KillRow:
    """One mutant at one cluster size: which seeds caught it, and how the first one did."""

    mutant: str
    breaks: str  # the paper section the mutant breaks
    node_count: int
    seeds_run: int
    caught_seeds: tuple[int, ...]
    first_violation: str  # the headline of the first catching seed's violation ("" if none)

    @property
    def caught(self) -> bool:
        return bool(self.caught_seeds)

    def render(self) -> str:
        """A markdown table row."""
        listed = ", ".join(str(seed) for seed in self.caught_seeds[:SEEDS_LISTED_MAX])
        if len(self.caught_seeds) > SEEDS_LISTED_MAX:
            listed += ", ..."
        first = self.caught_seeds[0] if self.caught_seeds else "-"
        rule = self.first_violation.split(":", 1)[0] if self.first_violation else "NOT CAUGHT"
        return (f"| {self.mutant} | {self.breaks} | {self.node_count} | "
                f"{len(self.caught_seeds)}/{self.seeds_run} | {first} | {rule} | {listed} |")


HEADER = ("| mutant | breaks | nodes | seeds caught | first | first rule | catching seeds |\n"
          "|---|---|---|---|---|---|---|")


def kill_row(mutant: str, node_count: int, seeds: Sequence[int], steps: int,
             workers: int = 1) -> KillRow:
    """Run one mutant over `seeds` and collect the seeds that caught it."""
    factory = MUTANTS[mutant]
    options = SimulationOptions(node_count=node_count, steps=steps, node_factory=factory)
    caught: list[int] = []
    first_violation = ""
    for result in run_seeds(seeds, options, workers):
        if not result.ok:
            caught.append(result.seed)
            first_violation = first_violation or str(result.violation).splitlines()[0]
    return KillRow(mutant, getattr(factory, "breaks", "?"), node_count, len(seeds),
                   tuple(caught), first_violation)


def kill_table(seeds: Sequence[int], node_counts: Iterable[int], steps: int,
               workers: int = 1, mutants: Iterable[str] | None = None) -> Iterable[KillRow]:
    """Yield a row per (mutant, node count), mutants in MUTANTS order."""
    for mutant in mutants if mutants is not None else MUTANTS:
        for node_count in node_counts:
            yield kill_row(mutant, node_count, seeds, steps, workers)
