"""Plans, summaries and the warm-up block of `warmctl status` as JSON-able documents (pure).

Shared by the analysis commands (`plans`, `summaries`) and the cluster `status` handler, so
the two show a plan the same way. Reads the applied state; never changes it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from warmd.statemachine.plans import PlanEffect, PlanRecord
from warmd.statemachine.state import MachineState, TaskRecord
from warmd.statemachine.summaries import SummaryRecord

VERSION_SHORT_CHARS = 12
PRUNED = "pruned"  # a plan task no longer in the task table


def short_version(version: str) -> str:
    """The first characters of a rule-set digest ("" stays "": zero-config)."""
    return version[:VERSION_SHORT_CHARS]


def tasks_by_state(task_ids: Iterable[str], tasks: Mapping[str, TaskRecord]) -> dict[str, int]:
    """How many of the tasks are in each state (PRUNED for tasks already dropped)."""
    counts: Counter[str] = Counter()
    for task_id in task_ids:
        task = tasks.get(task_id)
        counts[task.state.value if task is not None else PRUNED] += 1
    return dict(sorted(counts.items()))


def effect_document(effect: PlanEffect) -> dict[str, Any]:
    """A measured effect: counts and hit rates before the trigger and after the warm-up."""
    return {"cache": effect.cache, "before_hits": effect.before_hits,
            "before_misses": effect.before_misses, "after_hits": effect.after_hits,
            "after_misses": effect.after_misses, "before_hit_rate": effect.before_hit_rate,
            "after_hit_rate": effect.after_hit_rate, "window_ms": effect.window_ms,
            "recorded_ms": effect.recorded_ms}


def effect_status(plan: PlanRecord) -> str:
    """"measured", "measuring" (a watched cache, no effect yet), or "not watched"."""
    if plan.effect is not None:
        return "measured"
    return "measuring" if plan.watch else "not watched"


def plan_document(plan: PlanRecord, tasks: Mapping[str, TaskRecord]) -> dict[str, Any]:
    """One plan with its tasks counted by their current state (a compacted plan: by the
    final state they ended in)."""
    by_state = dict(plan.outcome) if plan.outcome else tasks_by_state(plan.task_ids, tasks)
    return {"plan_id": plan.plan_id, "trigger": plan.trigger,
            "rules_version": plan.rules_version, "rules_version_short": short_version(plan.rules_version),
            "created_ms": plan.created_ms, "index": plan.index, "requests": plan.requests,
            "tasks": sum(by_state.values()), "tasks_by_state": by_state,
            "compacted": bool(plan.outcome),
            "watch": plan.watch, "note": plan.note, "effect_status": effect_status(plan),
            "effect": effect_document(plan.effect) if plan.effect is not None else None}


def summary_document(record: SummaryRecord, now_ms: int, problem: str = "") -> dict[str, Any]:
    """One (node, source) report: its counts, age, size and whether it decodes."""
    return {"node_id": record.node_id, "source": record.source, "sequence": record.sequence,
            "lines": record.lines, "malformed": record.malformed,
            "reported_ms": record.reported_ms,
            "age_s": round(max(0, now_ms - record.reported_ms) / 1000, 1),
            "bytes": len(record.data), "index": record.index, "problem": problem}


def summaries_total(records: Iterable[SummaryRecord], now_ms: int) -> dict[str, Any]:
    """Nodes, sources and lines across all reports, and the age of the newest."""
    records = list(records)
    newest_ms = max((record.reported_ms for record in records), default=None)
    return {"nodes": len({record.node_id for record in records}),
            "sources": len({record.source for record in records}), "reports": len(records),
            "lines": sum(record.lines for record in records),
            "malformed": sum(record.malformed for record in records),
            "newest_age_s": (round(max(0, now_ms - newest_ms) / 1000, 1)
                             if newest_ms is not None else None)}


def warm_up_block(state: MachineState, now_ms: int) -> dict[str, Any]:
    """The warm-up block of `warmctl status`: the last plan and the summaries shipped."""
    last = max(state.plans.values(), key=lambda plan: plan.index, default=None)
    return {"plans": len(state.plans),
            "last_plan": plan_document(last, state.tasks) if last is not None else None,
            "summaries": summaries_total(state.summaries.values(), now_ms)}


def result_fields(result: str) -> dict[str, Any] | str | None:
    """A finished task's result as fields (the executor records a JSON object; a result
    recorded by an older version is prose and stays a string; None when there is none)."""
    if not result:
        return None
    try:
        fields = json.loads(result)
    except ValueError:
        return result
    return fields if isinstance(fields, dict) else result
