"""The daemon's warm-up commands on the admin socket: `explain`, `plans`, `plan-run` and
`summaries`.

Every replica holds every node's latest summary and the committed rules, so any node can
explain a request without asking the leader: `explain` answers from this node's applied
state. `plans` and `summaries` first take a ReadIndex read point, like `task-list`, so what
they show is linearizable. Decoding and merging summaries and compiling rules are cached by
what they were made from (report sequences, rule-set version) and run off the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.analysis.summary import Summary
from warmd.analysis.wire import SummaryDecodeError, decode_summary
from warmd.config import Config
from warmd.errors import AdminError
from warmd.hooks.registry import HookRegistry
from warmd.rules.compile import KnownNames, check_files
from warmd.rules.compiled import CompiledRuleSet
from warmd.runtime.commands.errors import raft_errors
from warmd.runtime.commands.paging import page_request, take_page
from warmd.runtime.ingest.pipeline import SourceStatus
from warmd.runtime.leader.planning import planner_settings
from warmd.runtime.leader.rule_names import known_names
from warmd.runtime.node.driver import Driver
from warmd.scheduler.explain import (
    ExplainSettings,
    RequestLine,
    explain_request,
    parse_request_line,
)
from warmd.scheduler.merge import Signature, merged_summary, signature, source_summaries
from warmd.scheduler.plan_sources import BySource, Sources, source_sets
from warmd.statemachine.commands import SubmitPlan
from warmd.statemachine.documents import (
    plan_document,
    short_version,
    summaries_total,
    summary_document,
)
from warmd.statemachine.plans import PlanRecord
from warmd.statemachine.ruleset import RuleSetRecord
from warmd.statemachine.summaries import SummaryRecord

PLANS_LIMIT_DEFAULT = 20
PLANS_LIMIT_MAX = 1000
NO_SUMMARY = "no node has shipped a summary yet; is [sources] configured?"

def decode_problem(record: SummaryRecord) -> str:
    """"" when the report decodes, else why not (never raises)."""
    try:
        decode_summary(record.data)
    except SummaryDecodeError as error:
        return str(error)
    return ""


def compile_committed(rules: RuleSetRecord, known: KnownNames) -> CompiledRuleSet:
    """The committed files compiled as one set.

    Raises:
        AdminError: (failed) the set does not compile here, e.g. it names a cache this
            node's config lacks.
    """
    result = check_files(rules.files, known)
    if result.ruleset is None:
        problems = [f"{name}:{item.line}:{item.column}: {item.message}"
                    for name, items in result.diagnostics.items() for item in items]
        raise AdminError(ErrorCode.FAILED, "the committed rule set "
                         f"{short_version(rules.version)} does not compile on this node: "
                         + "; ".join(problems[:5]))
    return result.ruleset


@dataclass(frozen=True, slots=True)
class MergedSummary:
    """A merged summary and the decode problems of the reports it skipped."""

    summary: Summary | None
    problems: tuple[str, ...]


def _plan_cursor(cursor: str | None) -> float:
    """The log index below which the page starts (a plan cursor is its SubmitPlan index)."""
    if cursor is None:
        return float("inf")
    if not cursor.isdigit():
        raise AdminError(ErrorCode.BAD_REQUEST, f"cursor {cursor!r} is not one this daemon gave")
    return int(cursor)


MANUAL_TRIGGER = "manual"
PlanNow = Callable[[str], Awaitable[SubmitPlan | None]]


class AnalysisCommands:
    """Handlers bound to one driver and config; `register(server)` adds them."""

    def __init__(self, driver: Driver, config: Config,
                 wall_s: Callable[[], float] = time.time,
                 plugins: HookRegistry | None = None) -> None:
        self._driver = driver
        self._wall_s = wall_s  # injected so tests can explain at the moment they planned at
        self._config = config
        self._plugins = plugins or HookRegistry()
        planner = planner_settings(config)  # the leader's own reading of [planner]
        self._settings = ExplainSettings(planner.budget, planner.horizon_s, planner.default_target)
        self._merged: tuple[Signature, MergedSummary] | None = None
        self._by_source: tuple[tuple[Signature, tuple[Sources, ...]], BySource] | None = None
        self._rules: tuple[str, CompiledRuleSet] | None = None
        self._problems: dict[tuple[str, int], str] = {}
        self._lock = asyncio.Lock()  # one explain at a time: a Summary memoises as it splits
        self._local_sources: Callable[[], Sequence[SourceStatus]] | None = None
        self._cache_is_down: Callable[[str], bool] = lambda cache: False
        self._plan_now: PlanNow | None = None

    def attach_pipeline(self, status: Callable[[], Sequence[SourceStatus]] | None) -> None:
        """Show this node's own sources too (LogPipeline.status): what it tails and why a
        source has not shipped (the daemon starts the pipeline after the admin server)."""
        self._local_sources = status

    def attach_cache_status(self, is_down: Callable[[str], bool]) -> None:
        """Say "unreachable" on a plan whose watched cache this node cannot read
        (CacheWatcher.is_down): its effect cannot be measured until the cache answers."""
        self._cache_is_down = is_down

    def _plan_document(self, plan: PlanRecord) -> dict[str, Any]:
        document = plan_document(plan, self._state.tasks)
        if plan.effect is None and plan.watch and self._cache_is_down(plan.watch):
            document["effect_status"] = f"cache {plan.watch} unreachable"
        return document

    def _local(self) -> list[dict[str, Any]]:
        if self._local_sources is None:
            return []
        return [{"source": item.name, "files": list(item.files), "lines_read": item.lines_read,
                 "lines": item.lines, "malformed": item.malformed,
                 "malformed_samples": list(item.malformed_samples),
                 "last_shipped_ms": item.last_shipped_ms, "last_error": item.last_error}
                for item in self._local_sources()]

    def attach_planner(self, plan_now: PlanNow | None) -> None:
        """Let `plan-run` plan through this node's planner (PlanningLoop.plan_now), which
        plans only while the node leads; None when the planner is off here."""
        self._plan_now = plan_now

    async def run_plan(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Make a plan now (trigger "manual"), on the leader; elsewhere not_leader names it."""
        status = self._driver.status()
        if status.role != "leader":
            raise AdminError(ErrorCode.NOT_LEADER, "plans are made by the leader; run this on "
                             f"node {status.leader_id or '(no leader yet)'}")
        if self._plan_now is None:
            raise AdminError(ErrorCode.FAILED, "the planner is off on this node ([planner] "
                             "enabled = false or [executor] disabled)")
        async with raft_errors():
            plan = await self._plan_now(MANUAL_TRIGGER)
        if plan is None:
            raise AdminError(ErrorCode.FAILED, "the plan was refused (leadership moved, or "
                             "the state machine refused it; see the leader's log)")
        return {"plan_id": plan.plan_id, "tasks": len(plan.tasks), "requests": plan.requests,
                "note": plan.note}

    def register(self, server: AdminServer) -> None:
        server.register("plan-run", self.run_plan,
                        summary="make a warm-up plan now (on the leader; trigger manual)")
        server.register("explain", self.explain,
                        summary="why a request would or would not be warmed")
        server.register("plans", self.plans, summary="the newest warm-up plans and their effect")
        server.register("summaries", self.summaries,
                        summary="the analysis summary each node shipped, per log source")

    def _now_ms(self) -> int:
        return int(self._wall_s() * 1000)

    @property
    def _state(self) -> Any:
        return self._driver.state

    async def _read_point(self) -> int:
        async with raft_errors():
            return await self._driver.read()

    async def explain(self, args: Mapping[str, Any]) -> dict[str, Any]:
        try:
            line = parse_request_line(args.get("request"))
        except ValueError as error:
            raise AdminError(ErrorCode.BAD_REQUEST, str(error)) from None
        async with self._lock:
            merged = await self._merged_summary()
            if merged.summary is None:
                details = list(merged.problems) + [
                    f"this node's source {item['source']}: {item['last_error']}"
                    for item in self._local() if item["last_error"]]
                detail = f" ({'; '.join(details)})" if details else ""
                raise AdminError(ErrorCode.FAILED, NO_SUMMARY + detail)
            ruleset, version = await self._ruleset()
            by_source = await self._source_summaries(ruleset)
            document = await asyncio.to_thread(self._explain, merged.summary, ruleset, line,
                                               by_source)
        document.update(rules_version=short_version(version), problems=list(merged.problems),
                        applied_index=self._driver.applier.applied_index,
                        summaries=summaries_total(self._state.summaries.values(), self._now_ms()))
        return document

    def _explain(self, summary: Summary, ruleset: CompiledRuleSet | None,
                 line: RequestLine, by_source: BySource) -> dict[str, Any]:
        return explain_request(summary, ruleset, line, self._settings, self._wall_s(),
                               by_source)

    async def _source_summaries(self, ruleset: CompiledRuleSet | None) -> BySource:
        """The merge of each source set the rules name (as the planner plans them), remade
        only when a report or the sets changed."""
        records = dict(self._state.summaries)
        wanted = (signature(records), source_sets(ruleset))
        if self._by_source is None or self._by_source[0] != wanted:
            made = await asyncio.to_thread(
                source_summaries, [records[key] for key in sorted(records)], wanted[1])
            self._by_source = (wanted, made)
        return self._by_source[1]

    async def _merged_summary(self) -> MergedSummary:
        """The merge of every report, remade only when a report changed."""
        records = dict(self._state.summaries)
        wanted = signature(records)
        if self._merged is None or self._merged[0] != wanted:
            ordered = [records[key] for key in sorted(records)]
            summary, problems = await asyncio.to_thread(merged_summary, ordered)
            self._merged = (wanted, MergedSummary(summary, tuple(problems)))
        return self._merged[1]

    async def _ruleset(self) -> tuple[CompiledRuleSet | None, str]:
        """The committed rules compiled (None and "" before any set: zero-config)."""
        rules: RuleSetRecord | None = self._state.rules
        if rules is None:
            return None, ""
        if self._rules is None or self._rules[0] != rules.version:
            known = known_names(self._config, self._plugins.names())
            compiled = await asyncio.to_thread(compile_committed, rules, known)
            self._rules = (rules.version, compiled)
        return self._rules[1], rules.version

    async def plans(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The plans newest first, a page at a time (`limit`, `cursor` -> `next_cursor`)."""
        request = page_request(args, PLANS_LIMIT_DEFAULT, PLANS_LIMIT_MAX)
        before = _plan_cursor(request.cursor)
        read_index = await self._read_point()
        state = self._state
        plans = sorted((plan for plan in state.plans.values() if plan.index < before),
                       key=lambda plan: plan.index, reverse=True)
        page = take_page(plans, request, lambda plan: str(plan.index), self._plan_document)
        return {"read_index": read_index, "total": len(state.plans), "plans": page.documents,
                "next_cursor": page.next_cursor}

    async def summaries(self, args: Mapping[str, Any]) -> dict[str, Any]:
        read_index = await self._read_point()
        records = dict(self._state.summaries)
        now_ms = self._now_ms()
        documents = []
        problems: dict[tuple[str, int], str] = {}
        for record in sorted(records.values(), key=lambda record: (record.node_id, record.source)):
            made_from = (record.key, record.sequence)
            problem = self._problems.get(made_from)
            if problem is None:
                problem = await asyncio.to_thread(decode_problem, record)
            problems[made_from] = problem
            documents.append(summary_document(record, now_ms, problem))
        self._problems = problems
        return {"read_index": read_index, "summaries": documents,
                "total": summaries_total(records.values(), now_ms), "local": self._local()}
