"""What the warm-ups bought, per watched cache: hit ratio before each plan and after its
warm-up, drawn over time with the warm-up as a band, and the same table as CSV (pure).

Per key pattern (a rule's `key` template, e.g. `item:{id}`): of each warm-up's sampled
keys, the share read in the window after it, one point per plan over time. That is the
hit ratio the warmed keys of one pattern earned. The access logs' summaries hold request
counts per path template but no cache status (none of the log formats we parse records a
hit or a miss), so the per-pattern figure comes from the keys themselves, probed on the
node that ran each task (this node's tasks on this node's page).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from warmd.cache.effect import TaskEffect
from warmd.statemachine.state import MachineState, TaskRecord
from warmd.web.console.svg import Band
from warmd.web.console.views import PlanRow

CSV_COLUMNS = ("plan_id", "trigger", "cache", "created_ms", "effect_recorded_ms",
               "before_hit_rate", "after_hit_rate", "tasks", "keys", "keys_sampled",
               "keys_read", "waste_ratio")


@dataclass(slots=True)
class CacheSeries:
    """One cache's hit ratio, a segment per plan: before at the plan, after at the
    measurement."""

    segments: list[list[tuple[int, float]]] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    plans: int = 0


def by_cache(rows: Sequence[PlanRow]) -> dict[str, CacheSeries]:
    """The measured plans' effects grouped by watched cache, oldest first."""
    caches: dict[str, CacheSeries] = {}
    for row in sorted(rows, key=lambda row: row.created_ms):
        if row.effect_recorded_ms is None:
            continue
        series = caches.setdefault(row.watch or "(unnamed)", CacheSeries())
        series.plans += 1
        segment = [(at_ms, ratio) for at_ms, ratio in (
            (row.created_ms, row.before_hit_rate), (row.effect_recorded_ms, row.after_hit_rate))
            if ratio is not None]
        if segment:
            series.segments.append(segment)
        series.bands.append(Band(row.created_ms, row.effect_recorded_ms,
                                 f"plan {row.plan_id} ({row.trigger}): {row.tasks} tasks"))
    return dict(sorted(caches.items()))


def csv_text(rows: Sequence[PlanRow]) -> str:
    """Every measured plan as one CSV line (the /effect table, for a spreadsheet)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        if row.effect_recorded_ms is None:
            continue
        writer.writerow((row.plan_id, row.trigger, row.watch, row.created_ms,
                         row.effect_recorded_ms, row.before_hit_rate, row.after_hit_rate,
                         row.tasks, row.keys, row.keys_sampled, row.keys_read, row.waste_ratio))
    return out.getvalue()


PATTERN_CSV_COLUMNS = ("pattern", "plan_id", "started_ms", "ended_ms", "tasks", "keys_sampled",
                       "keys_read", "read_ratio")


@dataclass(frozen=True, slots=True)
class PatternPoint:
    """One plan's warm-up of one key pattern, as measured after it."""

    pattern: str
    plan_id: str  # "" for a task submitted by hand (then one point per task)
    started_ms: int
    ended_ms: int
    tasks: int
    keys_sampled: int
    keys_read: int

    @property
    def read_ratio(self) -> float | None:
        return round(self.keys_read / self.keys_sampled, 4) if self.keys_sampled else None


@dataclass(slots=True)
class PatternSeries:
    points: list[PatternPoint] = field(default_factory=list)

    @property
    def keys_sampled(self) -> int:
        return sum(point.keys_sampled for point in self.points)

    @property
    def keys_read(self) -> int:
        return sum(point.keys_read for point in self.points)

    @property
    def segments(self) -> list[list[tuple[int, float]]]:
        """A dot per measured plan: no line between plans (nothing was measured there)."""
        return [[(point.ended_ms, ratio)] for point in self.points
                if (ratio := point.read_ratio) is not None]

    @property
    def bands(self) -> list[Band]:
        return [Band(point.started_ms, point.ended_ms,
                     f"{point.plan_id or 'by hand'}: {point.tasks} tasks, "
                     f"{point.keys_read} of {point.keys_sampled} sampled keys read")
                for point in self.points]


def pattern_of(task: TaskRecord, key_patterns: Mapping[str, str]) -> str:
    """A task's key pattern: its rule's key template, else the rule, else its target."""
    rule = task.spec.rule
    if rule:
        return key_patterns.get(rule) or f"rule {rule}"
    return f"{task.spec.target} (no rule)"


def by_pattern(state: MachineState, effects: Mapping[str, TaskEffect],
               key_patterns: Mapping[str, str]) -> dict[str, PatternSeries]:
    """The measured tasks grouped by key pattern, then by plan, oldest first."""
    groups: dict[tuple[str, str], list[tuple[TaskRecord, TaskEffect]]] = {}
    for task_id, effect in effects.items():
        task = state.tasks.get(task_id)
        if task is None or not effect.sampled_keys:
            continue
        plan = task.spec.plan_id or task_id
        groups.setdefault((pattern_of(task, key_patterns), plan), []).append((task, effect))
    series: dict[str, PatternSeries] = {}
    for (pattern, _), measured in groups.items():
        tasks = [task for task, _ in measured]
        series.setdefault(pattern, PatternSeries()).points.append(PatternPoint(
            pattern, tasks[0].spec.plan_id,
            min(_started_ms(task) for task in tasks), max(task.updated_ms for task in tasks),
            len(tasks), sum(effect.sampled_keys for _, effect in measured),
            sum(effect.keys_read_in_window for _, effect in measured)))
    for found in series.values():
        found.points.sort(key=lambda point: (point.ended_ms, point.plan_id))
    return dict(sorted(series.items()))


def _started_ms(task: TaskRecord) -> int:
    started = [attempt.started_ms for attempt in task.attempts if attempt.started_ms]
    return min(started) if started else task.submitted_ms


def pattern_csv_text(series: Mapping[str, PatternSeries]) -> str:
    """Every per-pattern point as one CSV line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PATTERN_CSV_COLUMNS)
    for found in series.values():
        for point in found.points:
            writer.writerow((point.pattern, point.plan_id, point.started_ms, point.ended_ms,
                             point.tasks, point.keys_sampled, point.keys_read, point.read_ratio))
    return out.getvalue()
