"""Warm-up plans as replicas hold them (pure); the commands are SubmitPlan and RecordEffect.

The leader's planner turns the merged summaries and the committed rules into one plan
per trigger (a schedule, a cache flush or restart, a readiness gate, a new rule set). A
plan is submitted as ONE entry holding all its tasks, so it is applied whole or not at
all, and it records the rule-set version it was made with. Its hit-rate effect, measured
on the watched cache after the plan's tasks finish, is recorded on the plan. The state
keeps the last PLANS_KEPT plans; when one is dropped, its finished tasks go with it, so
the task table does not grow forever. A plan that is too big for one entry goes as a
header and parts (plan_parts.py). Finished plans are compacted to their outcome (tasks per
final state) and effect, oldest first, once their tasks hold more than FINISHED_KEYS_KEPT
keys together: the state and its snapshots are bounded by live work, not by history.
"""

from __future__ import annotations

from dataclasses import dataclass

PLANS_KEPT = 100
FINISHED_KEYS_KEPT = 200_000  # keys of finished plans' tasks kept for `warmctl tasks`


@dataclass(slots=True)
class PlanEffect:
    """A plan's measured effect on its watched cache."""

    cache: str
    before_hits: int
    before_misses: int
    after_hits: int
    after_misses: int
    window_ms: int
    recorded_ms: int

    @property
    def before_hit_rate(self) -> float | None:
        total = self.before_hits + self.before_misses
        return self.before_hits / total if total else None

    @property
    def after_hit_rate(self) -> float | None:
        total = self.after_hits + self.after_misses
        return self.after_hits / total if total else None


@dataclass(slots=True)
class PlanRecord:
    """One submitted plan as every replica knows it."""

    plan_id: str
    trigger: str
    rules_version: str
    requests: int
    task_ids: tuple[str, ...]
    created_ms: int
    index: int  # log index of the SubmitPlan
    watch: str = ""
    note: str = ""
    effect: PlanEffect | None = None
    # A compacted plan: its tasks are gone (task_ids is empty) and this keeps how many
    # ended in each final state, sorted by state name.
    outcome: tuple[tuple[str, int], ...] = ()
    finished_ms: int = 0  # a compacted plan: when its last task ended (0 otherwise)
