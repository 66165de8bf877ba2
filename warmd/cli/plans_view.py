"""Human forms of `warmctl explain`, `plans`, `summaries` and the warm-up block of `status`.

Pure functions from the daemon's JSON replies to text, so `--json` and the tables show the
same facts and tests can check the text without a daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def local_time(epoch_ms: int) -> str:
    """`2026-12-06 16:20:01` in this machine's time zone."""
    return datetime.fromtimestamp(epoch_ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def age(epoch_ms: int, now_ms: int) -> str:
    """`3m12s ago`, `2h05m ago`, `in 40s` (a time in the future)."""
    seconds = round((now_ms - epoch_ms) / 1000)
    suffix = "ago" if seconds >= 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        text = f"{seconds}s"
    elif seconds < 3600:
        text = f"{seconds // 60}m{seconds % 60:02d}s"
    elif seconds < 86_400:
        text = f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    else:
        text = f"{seconds // 86_400}d{seconds % 86_400 // 3600:02d}h"
    return f"{text} {suffix}" if suffix else f"in {text}"


def when(epoch_ms: int | None, now_ms: int) -> str:
    """Local time and age: `2026-12-06 16:20:01 (3m12s ago)`; `-` for none."""
    if not epoch_ms:
        return "-"
    return f"{local_time(epoch_ms)} ({age(epoch_ms, now_ms)})"


def count(value: float) -> str:
    """A count for people: `8,060`, `12.5` (never `8.06e+03`)."""
    return f"{value:,.0f}" if value >= 100 or float(value).is_integer() else f"{value:,.1f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


def states_text(counts: Mapping[str, int]) -> str:
    """`SUCCEEDED 8, RUNNING 2` (or `none`)."""
    return ", ".join(f"{state} {count}" for state, count in counts.items() if count) or "none"


def effect_text(plan: Mapping[str, Any]) -> str:
    """`62.0% -> 91.3% (60 s, redis)`, or the plan's effect status."""
    effect = plan.get("effect")
    if effect is None:
        return str(plan["effect_status"])
    return (f"{_rate(effect['before_hit_rate'])} -> {_rate(effect['after_hit_rate'])} "
            f"({effect['window_ms'] / 1000:g} s, {effect['cache']})")


def format_plans(reply: Mapping[str, Any]) -> str:
    """The newest plans as a table, newest first."""
    plans = reply["plans"]
    if not plans:
        return "no plans yet"
    id_width = max(4, *(len(plan["plan_id"]) for plan in plans))
    trigger_width = max(7, *(len(plan["trigger"]) for plan in plans))
    lines = [f"{'PLAN':<{id_width}} {'TRIGGER':<{trigger_width}} {'RULES':<12} "
             f"{'CREATED (local)':<19} {'REQUESTS':>8}  TASKS / EFFECT"]
    for plan in plans:
        lines.append(f"{plan['plan_id']:<{id_width}} {plan['trigger']:<{trigger_width}} "
                     f"{plan['rules_version_short'] or 'zero-config':<12} "
                     f"{local_time(plan['created_ms']):<19} {plan['requests']:>8}  "
                     f"{plan['tasks']} ({states_text(plan['tasks_by_state'])}); "
                     f"effect {effect_text(plan)}")
        if plan.get("note"):
            lines.append(f"{'':<{id_width}} note: {plan['note']}")
    lines.append(f"{len(plans)} of the {reply['total']} plans kept shown")
    return "\n".join(lines)


def local_lines(sources: list[Mapping[str, Any]]) -> list[str]:
    """This node's own sources: files tailed, lines read, the last error, a malformed sample."""
    lines = []
    for source in sources:
        state = f"error: {source['last_error']}" if source["last_error"] else (
            "shipped" if source["last_shipped_ms"] is not None else "not shipped yet")
        lines.append(f"this node: {source['source']}: {len(source['files'])} files, "
                     f"{source['lines_read']:,} lines read, {source['malformed']:,} malformed; "
                     f"{state}")
        lines += [f"  malformed: {sample}" for sample in source["malformed_samples"][:1]]
    return lines


def format_summaries(reply: Mapping[str, Any]) -> str:
    """One line per (node, source) report, a total, and this node's own sources."""
    rows = reply["summaries"]
    local = local_lines(reply.get("local", []))
    if not rows:
        return "\n".join(["no summaries shipped yet (is [sources] configured on any node?)",
                          *local])
    lines = [f"{'NODE':>4} {'SOURCE':<16} {'LINES':>12} {'MALFORMED':>9} {'AGE':>9} "
             f"{'SIZE':>10}  PROBLEM"]
    for row in rows:
        lines.append(f"{row['node_id']:>4} {row['source']:<16} {row['lines']:>12,} "
                     f"{row['malformed']:>9,} {row['age_s']:>7.1f} s {_bytes(row['bytes']):>10}  "
                     f"{row['problem'] or '-'}")
    lines.append(summaries_line(reply["total"]))
    return "\n".join(lines + local)


def summaries_line(total: Mapping[str, Any]) -> str:
    """`3 nodes, 4 sources, 1,204,332 lines (12 malformed), newest 3.2 s old`."""
    if not total["reports"]:
        return "no summaries shipped yet"
    return (f"{total['nodes']} nodes, {total['sources']} sources, {total['lines']:,} lines "
            f"({total['malformed']:,} malformed), newest {total['newest_age_s']} s old")


def _slot_lines(slot: Mapping[str, Any]) -> list[str]:
    marks = [name for name, on in (("set by a rule", slot["overridden"]),
                                   ("dropped from the key", slot["drop_from_key"]),
                                   ("never warm", slot["never_warm"])) if on]
    head = f"    {slot['slot']:<14} {slot['class']}" + (f"  [{', '.join(marks)}]" if marks else "")
    evidence = [f"      {'=>' if item == slot['decisive'] else '  '} {item}"
                for item in slot["evidence"]]
    if slot["overridden"]:
        evidence.append(f"      => {slot['decisive']}")
    return [head, *evidence]


def format_explanation(reply: Mapping[str, Any]) -> str:
    """The verdict first, then template, rule, expected hits, and each slot's evidence."""
    verdict = ("WARMED" if reply["would_warm"]
               else "NOT warmed: " + "; ".join(reply["why_not"]))
    rules = (f"rules {reply['rules_version']}" if reply.get("rules_version")
             else "zero-config: no rules committed")
    lines = [reply["request"], f"  verdict   {verdict}"]
    seen = (f" (seen {reply['template_count']:,} times; this request {reply['request_count']:,})"
            if reply["known_template"] else " (never seen)")
    lines.append(f"  template  {reply['template']}{seen}")
    if reply.get("key_form"):
        lines.append("            (the request is this template's warm-up key: its dropped "
                     "slots are left out)")
    if reply.get("canonical") and reply["canonical"] != reply["request"].split(" ", 1)[1]:
        lines.append(f"  as key    {reply['canonical']}  (canonical: sorted, dropped slots removed)")
    owner = reply["rule"] or ("-" if reply["zero_config"] else "no rule selects this template")
    lines.append(f"  rule      {owner}  ({rules})")
    if reply.get("planned_on"):
        lines.append(f"  planned   only on {', '.join(reply['planned_on'])} (not by other "
                     "triggers' plans)")
    if reply["expected_hits"] is not None:
        rank = f"rank {reply['rank']} of budget {reply['budget']}" if reply["rank"] else "unranked"
        lines.append(f"  expected  {count(reply['expected_hits'])} hits in the next "
                     f"{reply['horizon_s'] / 3600:g} h; {rank}; from {reply['source']}")
    if reply["slots"]:
        lines.append("  slots")
        for slot in reply["slots"]:
            lines += _slot_lines(slot)
    lines += _shares_lines(reply)
    for problem in reply.get("problems", []):
        lines.append(f"  skipped summary: {problem}")
    return "\n".join(lines)


def _shares_lines(reply: Mapping[str, Any]) -> list[str]:
    """The self-backtest's choice for this template, then its table (zero-config plans)."""
    rows = reply.get("self_backtest") or []
    if not rows:
        return []
    # Imported here: the ranking pulls in the analysis, which `warmctl status` never needs.
    from warmd.cli.shares_view import render_shares
    from warmd.rules.ranking import TemplateShare

    own = reply.get("template_share")
    budget = max(1, reply.get("budget_in_shares") or 0)
    if own is None:
        head = "no share: the self-backtest gave this template no key of the budget"
    else:
        measured = "replayed" if own["measured"] else "expected (no replay possible)"
        head = (f"winner {own['winner']}: {own['keys']:,} keys ({own['keys'] / budget:.1%} of "
                f"the budget), {own['hits_per_key']:.3f} hits per key {measured}")
    table = render_shares([TemplateShare(**row) for row in _without(rows, "hits_per_key")])
    more = reply.get("self_backtest_more", 0)
    tail = [f"    ... {more:,} more templates with smaller shares"] if more else []
    return [f"  backtest  {head}", *("    " + line for line in table.splitlines()), *tail]


def _without(rows: list[Mapping[str, Any]], name: str) -> list[dict[str, Any]]:
    return [{key: value for key, value in row.items() if key != name} for row in rows]


def format_warm_up(block: Mapping[str, Any], now_ms: int) -> list[str]:
    """The warm-up lines of `warmctl status`: last plan and shipped summaries."""
    plan = block["last_plan"]
    if plan is None:
        head = "warm-up: no plan yet"
    else:
        age_s = max(0, now_ms - plan["created_ms"]) / 1000
        head = (f"warm-up: last plan {plan['plan_id']} ({plan['trigger']}) {age_s:.0f} s ago: "
                f"{plan['requests']} requests, {plan['tasks']} tasks "
                f"({states_text(plan['tasks_by_state'])}), effect {effect_text(plan)}")
    return [head, "summaries: " + summaries_line(block["summaries"])]
