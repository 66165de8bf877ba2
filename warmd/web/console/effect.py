"""What the warm-ups bought, per watched cache: hit ratio before each plan and after its
warm-up, drawn over time with the warm-up as a band, and the same table as CSV (pure)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

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
