"""The planner in the daemon: on the leader, turn triggers into committed warm-up plans.

Triggers: the schedule (`[planner] interval_ms`), a rule's own `every`/`cron`, a flush or
restart of a watched cache (the CacheWatcher), a readiness gate turning true, and a new
committed rule version. For each, the leader reads a linearizable point, merges every
node's latest summary from the replicated state, compiles the committed rules (cached by
version), asks the pure planner for a plan, and proposes it: one SubmitPlan entry, or a
header and bounded parts when it is big (warmd/runtime/node/plan_entries.py).
Afterwards it measures the plan's effect on the watched cache's hit rate and records it.
Nothing is kept between passes that a new leader would need: the schedule's last run is
the newest plan in the state, and the rule version of the newest plan says whether the
committed rules were planned with yet.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from warmd.analysis.summary import Summary
from warmd.cache.configured import HTTP_KIND
from warmd.clock import Clock, SystemClock
from warmd.config import Config
from warmd.hooks.registry import HookRegistry
from warmd.logging import get_logger
from warmd.raft.errors import RaftError
from warmd.rules.compile import check_files
from warmd.rules.compiled import CompiledRuleSet
from warmd.runtime.leader.cache_watch import CacheWatcher
from warmd.runtime.leader.gates import GatePoller
from warmd.runtime.leader.rule_names import known_names
from warmd.runtime.node.driver import Driver, DriverStopped
from warmd.runtime.node.plan_entries import propose_entries
from warmd.scheduler.merge import Signature, merged_summary, signature, source_summaries
from warmd.scheduler.plan_sources import BySource, source_sets
from warmd.scheduler.planner import (
    PlanInputs,
    PlannerSettings,
    event_rules,
    plan_warm_up,
    triggers_due,
)
from warmd.statemachine.commands import (
    InvalidCommand,
    MarkReady,
    MarkWaiting,
    RecordEffect,
    SubmitPlan,
)
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.plan_parts import split_plan
from warmd.statemachine.plans import PlanRecord
from warmd.statemachine.state import Applied, ApplyResult, MachineState, Rejected, refusal_reason
from warmd.statemachine.topics import Topic

_log = get_logger("warmd.planning")
IDLE_CHECK_S = 1.0  # clock triggers (schedule, every/cron, gates, effects) are seen this soon
MIN_SPACING_S = 0.2  # a burst of changes costs one look, not one per change
WAKING_TOPICS = frozenset({Topic.RULES, Topic.PLANS, Topic.TASKS, Topic.SUMMARIES,
                           Topic.LEADERSHIP})
REASON_CHARS = 400  # a task's reason is shown in lists: a line of evidence is enough


def planner_settings(config: Config) -> PlannerSettings:
    """The pure planner's settings from `[planner]`; the zero-config target defaults to the
    only http cache (replaying requests through the service fills its own cache)."""
    planner = config.planner
    target = planner.target
    if not target:
        http = [cache.name for cache in config.caches if cache.kind == HTTP_KIND]
        target = http[0] if len(http) == 1 else ""
    return PlannerSettings(
        budget=planner.budget, batch_requests=planner.batch_requests,
        horizon_s=planner.horizon_ms / 1000, task_deadline_s=planner.task_deadline_ms / 1000,
        default_target=target)


def plan_watch(trigger: str, plan: SubmitPlan, watched: tuple[str, ...]) -> str:
    """The cache whose hit rate shows `plan`'s effect: the watched cache whose flush or
    restart triggered it, else the watched cache most of its tasks write into, else the
    only watched cache ("" when that leaves a choice: better no effect than a wrong one)."""
    kind, _, cache = trigger.partition(":")
    if kind in ("cache-flush", "cache-restart") and cache in watched:
        return cache
    targets = Counter(task.spec.target for task in plan.tasks if task.spec.target in watched)
    if targets:
        return targets.most_common(1)[0][0]
    return watched[0] if len(watched) == 1 else ""


def watched_caches(config: Config) -> tuple[str, ...]:
    """`[planner] watch`, or every key-value cache when it is empty."""
    if config.planner.watch:
        return tuple(config.planner.watch)
    return tuple(cache.name for cache in config.caches if cache.kind != HTTP_KIND)


@dataclass(slots=True)
class PlanningCounters:
    """What the loop did, for status and tests."""

    plans: int = 0
    empty_plans: int = 0
    refused: int = 0
    events: int = 0
    events_suppressed: int = 0
    effects: int = 0
    last_error: str = ""


@dataclass(slots=True)
class _Caches:
    summary_key: Signature = ()
    summary: Summary | None = None
    problems: tuple[str, ...] = ()
    rules_version: str = ""
    plugin_names: frozenset[str] = frozenset()  # compiled against these (SIGHUP may add some)
    ruleset: CompiledRuleSet | None = None
    last_event_ms: dict[str, int] = field(default_factory=dict)
    by_source_key: tuple[Signature, tuple[tuple[str, ...], ...]] = ((), ())
    by_source: BySource = field(default_factory=dict)


class PlanningLoop:
    """`await run()` on every node; it plans only while this node is the Raft leader."""

    def __init__(self, driver: Driver, config: Config, watcher: CacheWatcher | None,
                 plugins: HookRegistry | None = None, clock: Clock | None = None) -> None:
        self._driver = driver
        self._clock = clock or SystemClock()
        self._config = config
        self._settings = planner_settings(config)
        self._watch = watched_caches(config)
        self._watcher = watcher
        self._plugins = plugins or HookRegistry()
        self._cached = _Caches()
        self._unmeasurable: set[str] = set()  # plans whose windows this node did not watch
        self.gates = GatePoller(self._plugins, clock=self._clock)
        self.counters = PlanningCounters()

    def is_leader(self) -> bool:
        return self._driver.is_leader()

    @property
    def state(self) -> MachineState:
        return self._driver.state

    async def run(self) -> None:
        """Check the triggers whenever the state or a watched cache changed, and at least
        every IDLE_CHECK_S (clock triggers: schedule, every/cron, gates, effect windows),
        never more often than every MIN_SPACING_S; until cancelled."""
        changes = self._driver.changes.subscribe(WAKING_TOPICS)
        if self._watcher is not None:
            self._watcher.on_events = changes.poke
        try:
            while True:
                await changes.wait(IDLE_CHECK_S)
                await self._clock.sleep(MIN_SPACING_S)
                if not await self._check_triggers():
                    return
        finally:
            changes.close()

    async def _check_triggers(self) -> bool:
        """One look at every trigger (on the leader); False once the driver has stopped."""
        events = self._drain_events()
        if not self.is_leader():
            return True
        try:
            for trigger, rules in self._due(events) + await self._gate_triggers():
                await self.plan_now(trigger, rules)
            await self._open_gated_tasks()
            await self._explain_closed_gates()
            await self._record_effects()
        except DriverStopped:
            return False
        except RaftError as error:
            self.counters.last_error = str(error)
            _log.debug("planning_pass_failed", error=str(error))
        except Exception as error:  # a bug in one pass must not end planning for good
            self.counters.last_error = repr(error)
            _log.exception("planning_pass_crashed")
        return True

    # ------------------------------------------------------------------ triggers

    def _drain_events(self) -> list[tuple[str, str]]:
        """(kind, cache) of every cache event since the last poll, watched caches only."""
        if self._watcher is None:
            return []
        events = []
        while not self._watcher.events.empty():
            event = self._watcher.events.get_nowait()
            if event.cache in self._watch:
                events.append((event.kind, event.cache))
        return events

    def _due(self, events: list[tuple[str, str]]) -> list[tuple[str, tuple[str, ...]]]:
        """Every trigger that fires now, with the rules it restricts the plan to."""
        now = self._clock.wall_ms()
        ruleset = self._ruleset()
        due: list[tuple[str, tuple[str, ...]]] = []
        for kind, cache in dict.fromkeys(events):
            self.counters.events += 1
            trigger = f"{kind}:{cache}"
            if now - self._cached.last_event_ms.get(trigger, 0) < self._config.planner.min_interval_ms:
                self.counters.events_suppressed += 1
                continue
            self._cached.last_event_ms[trigger] = now
            _add(due, trigger, event_rules(ruleset, kind, cache))
        if self._rules_unplanned():
            _add(due, "new-rules", event_rules(ruleset, "new-rules", ""))
        interval_ms = self._config.planner.interval_ms
        if interval_ms and self.state.summaries:
            last = self.state.last_plan_ms("schedule")
            if last is None or now - last >= interval_ms:
                due.append(("schedule", ()))
        if ruleset is not None:
            last_by_trigger = {plan.trigger: plan.created_ms for plan in self.state.plans.values()}
            due.extend(triggers_due(ruleset, last_by_trigger, now))
        disabled = self.state.disabled_rules  # their own triggers (every:, cron:) stay quiet
        return [(trigger, rules) for trigger, rules in due
                if not rules or not all(name in disabled for name in rules)]

    def _rules_unplanned(self) -> bool:
        """A committed rule set that no plan has used yet (and there is data to plan on)."""
        rules = self.state.rules
        if rules is None or not self.state.summaries:
            return False
        return not any(plan.rules_version == rules.version for plan in self.state.plans.values())

    async def _gate_triggers(self) -> list[tuple[str, tuple[str, ...]]]:
        """Poll the committed rules' gates; a "gate-ready" trigger for each that opened."""
        ruleset = self._ruleset()
        gates = {gate.name: gate for gate in ruleset.gates} if ruleset is not None else {}
        due: list[tuple[str, tuple[str, ...]]] = []
        for name in await self.gates.poll(gates):
            _add(due, f"gate-ready:{name}", event_rules(ruleset, "gate-ready", name))
        return due

    async def _open_gated_tasks(self) -> None:
        """MarkReady every WAITING task whose gate is open now, with what its checks said."""
        for task in self.state.in_state(TaskState.WAITING):
            if task.spec.gate and self.gates.is_open(task.spec.gate):
                detail = self.gates.states[task.spec.gate].detail[:REASON_CHARS]
                await self._driver.propose(MarkReady(task_id=task.task_id, now_ms=self._clock.wall_ms(),
                                                     gate_detail=detail))

    async def _explain_closed_gates(self) -> None:
        """Write a closed gate's last evidence (e.g. its plugin's exception) on its WAITING
        tasks, so `warmctl tasks` shows why they wait and a skip says why it gave up."""
        for task in self.state.in_state(TaskState.WAITING):
            detail = self.gates.closed_detail(task.spec.gate) if task.spec.gate else None
            reason = f"gate {task.spec.gate} closed: {detail}"[:REASON_CHARS] if detail else None
            if reason is not None and task.reason != reason:
                await self._driver.propose(MarkWaiting(task_id=task.task_id, now_ms=self._clock.wall_ms(),
                                                       reason=reason))

    # ------------------------------------------------------------------ planning

    async def plan_now(self, trigger: str, only_rules: tuple[str, ...] = ()) -> SubmitPlan | None:
        """Make one plan for `trigger` from the current state and propose it.

        Returns the plan when it was committed, None when the state machine refused it.
        """
        await self._driver.read()
        if not self.is_leader():
            return None
        now = self._clock.wall_ms()
        summary = await self._summary()
        ruleset = self._ruleset()
        rules = self.state.rules
        plan_id = f"p{now}-{_slug(trigger)}"
        inputs = PlanInputs(summary=summary, ruleset=ruleset,
                            rules_version=rules.version if rules else "", trigger=trigger,
                            plan_id=plan_id, now_ms=now, watch="", only_rules=only_rules,
                            by_source=await self._by_source(ruleset),
                            disabled_rules=frozenset(self.state.disabled_rules))
        if rules is not None and ruleset is None:
            # Never fall back to zero-config on a rule set the leader cannot compile: that
            # would warm everything the operator's rules leave out.
            plan = SubmitPlan(plan_id=plan_id, trigger=trigger, rules_version=rules.version,
                              requests=0, tasks=(), now_ms=now, watch=inputs.watch,
                              note="the committed rules do not compile on the leader; "
                                   "see `warmctl rules show` and the leader's log")
        else:
            plan = await asyncio.to_thread(plan_warm_up, inputs, self._settings)
        plan = replace(plan, watch=plan_watch(trigger, plan, self._watch))
        result: ApplyResult
        try:  # encoding a big plan's tasks to split it takes seconds: not on the loop
            entries = await asyncio.to_thread(split_plan, plan)
        except InvalidCommand as error:  # a task too big for a part: fewer batch_requests
            result = Rejected(str(error))
        else:
            result = await propose_entries(self._driver, entries)
        if not isinstance(result, Applied):
            self.counters.refused += 1
            _log.warning("plan_refused", plan_id=plan_id, reason=refusal_reason(result))
            return None
        self.counters.plans += 1
        if not plan.tasks:
            self.counters.empty_plans += 1
        _log.info("plan_committed", plan_id=plan_id, trigger=trigger, tasks=len(plan.tasks),
                  requests=plan.requests, rules_version=plan.rules_version[:12], note=plan.note)
        return plan

    async def _summary(self) -> Summary | None:
        """The merged summary of every node's latest report, re-merged (in a thread: decoding
        takes up to a second for big summaries) only when a report changed. This loop keeps
        its own merge, apart from `warmctl explain`'s: a Summary memoises as it is queried
        and must not be used by two threads at once."""
        records = dict(self.state.summaries)
        key = signature(records)
        if key != self._cached.summary_key:
            summary, problems = await asyncio.to_thread(
                merged_summary, [records[name] for name in sorted(records)])
            for problem in problems:
                _log.warning("summary_unusable", problem=problem)
            self._cached.summary_key, self._cached.summary = key, summary
            self._cached.problems = problems
        return self._cached.summary

    async def _by_source(self, ruleset: CompiledRuleSet | None) -> BySource:
        """The merged summary of each source set the rules restrict themselves to (remade
        only when a report or the sets changed; none when no rule names a source)."""
        records = dict(self.state.summaries)
        key = (signature(records), source_sets(ruleset))
        if key != self._cached.by_source_key:
            self._cached.by_source = await asyncio.to_thread(
                source_summaries, [records[name] for name in sorted(records)], key[1])
            self._cached.by_source_key = key
        return self._cached.by_source

    def _ruleset(self) -> CompiledRuleSet | None:
        """The committed rule set compiled (once per version); None without one."""
        rules = self.state.rules
        if rules is None:
            return None
        plugins = self._plugins.names()
        if (rules.version, plugins) != (self._cached.rules_version, self._cached.plugin_names):
            result = check_files(rules.files, known_names(self._config, plugins))
            if result.ruleset is None:
                _log.error("committed_rules_invalid_here", version=rules.version[:12])
            self._cached.rules_version, self._cached.ruleset = rules.version, result.ruleset
            self._cached.plugin_names = plugins
        return self._cached.ruleset

    # ------------------------------------------------------------------ effects

    async def _record_effects(self) -> None:
        """Record the effect of every finished, watched plan whose window after it has passed:
        hits and misses in the window before it was made and in the window after its last task
        ended. Derived from the replicated state, so a new leader measures the plans of the old
        one too (its own watcher has been sampling all along)."""
        watcher = self._watcher
        if watcher is None:
            return
        window_ms = self._config.planner.effect_window_ms
        now_ms = self._clock.wall_ms()
        for plan in list(self.state.plans.values()):
            if plan.effect is not None or not plan.watch or plan.plan_id in self._unmeasurable:
                continue
            finished_ms = self.state.plan_finished_ms(plan)
            if finished_ms is not None and now_ms - finished_ms >= window_ms:
                await self._record_effect(watcher, plan, finished_ms, window_ms)

    async def _record_effect(self, watcher: CacheWatcher, plan: PlanRecord, finished_ms: int,
                             window_ms: int) -> None:
        # The watcher's history is on the monotonic clock, plans on the wall clock.
        to_monotonic_s = self._clock.monotonic() - self._clock.wall_ms() / 1000
        created_s = plan.created_ms / 1000 + to_monotonic_s
        finished_s = finished_ms / 1000 + to_monotonic_s
        window_s = window_ms / 1000
        before = watcher.hits_between(plan.watch, created_s - window_s, created_s)
        after = watcher.hits_between(plan.watch, finished_s, finished_s + window_s)
        if after is None:
            self._unmeasurable.add(plan.plan_id)
            _log.info("plan_effect_unknown", plan_id=plan.plan_id, cache=plan.watch,
                      reason="this node's watcher did not sample the window after the plan")
            return
        before = before or (0, 0)
        command = RecordEffect(plan_id=plan.plan_id, cache=plan.watch,
                               before_hits=before[0], before_misses=before[1],
                               after_hits=after[0], after_misses=after[1],
                               window_ms=window_ms, now_ms=self._clock.wall_ms())
        if isinstance(await self._driver.propose(command), Applied):
            self.counters.effects += 1


def _add(due: list[tuple[str, tuple[str, ...]]], trigger: str,
         rules: tuple[str, ...] | None) -> None:
    """Add a trigger unless the rules say it plans nothing (event_rules returned None)."""
    if rules is not None:
        due.append((trigger, rules))


def _slug(trigger: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", trigger).strip("-")[:60] or "plan"


def status(loop: PlanningLoop) -> Mapping[str, object]:
    """The loop's counters for `warmctl status`."""
    counters = loop.counters
    return {"plans": counters.plans, "empty_plans": counters.empty_plans,
            "refused": counters.refused, "events": counters.events,
            "events_suppressed": counters.events_suppressed, "effects": counters.effects,
            "last_error": counters.last_error}
