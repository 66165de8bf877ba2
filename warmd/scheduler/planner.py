"""The leader's warm-up plan (pure): merged summary + committed rules -> ONE SubmitPlan.

The leader's clock comes in as `now_ms` and the plan id from the caller, so the same
inputs always give an equal plan; the runtime proposes it as a single Raft entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from warmd.analysis.summary import Summary
from warmd.errors import ConfigError
from warmd.rules.compiled import CompiledRule, CompiledRuleSet, render_template, template_variables
from warmd.rules.engine import predict
from warmd.rules.ruletest import request_from_target
from warmd.scheduler.plan_rules import (
    RuledPrediction,
    event_rules,
    latest_cron_ms,
    triggers_due,
)
from warmd.scheduler.plan_sources import BySource, predict_by_source
from warmd.statemachine.commands import (
    KEY_BYTES_MAX,
    KEYS_PER_TASK_MAX,
    TASKS_PER_PLAN_MAX,
    Labels,
    PlannedTask,
    SubmitPlan,
    TaskSpec,
)
from warmd.statemachine.schema import NAME_CHARS_MAX

__all__ = ["PlanInputs", "PlannerSettings", "event_rules", "latest_cron_ms", "plan_warm_up",
           "triggers_due"]

ZERO_CONFIG_LOADERS = ("", "replay")  # "fetch" needs a URL only a rule can give
PLAN_ID_CHARS_MAX = NAME_CHARS_MAX - 8  # room for the task number in "<plan_id>-<n>"


@dataclass(frozen=True, slots=True)
class PlannerSettings:
    """The planner's policy; zero-config plans use all of it, rules override per rule.

    budget: predicted requests per plan (rules cap per rule within it); batch_requests:
    requests per task (a task is the unit of assignment and checkpoint); horizon_s: the
    window predicted; task_deadline_s: a task's useful window from the plan (a rule's
    `deadline` wins); default_target: the cache zero-config plans warm (an http cache:
    replay); default_loader: "replay", "" (write the key itself) or "plugin:NAME".

    Raises:
        ConfigError: a field out of range, named in the message.
    """

    budget: int = 1000
    batch_requests: int = 100
    horizon_s: float = 6 * 3600.0
    task_deadline_s: float = 3600.0
    default_target: str = ""
    default_loader: str = "replay"
    priority: int = 50

    def __post_init__(self) -> None:
        if not isinstance(self.budget, int) or self.budget < 0:
            raise ConfigError(f"planner budget must be an integer >= 0, got {self.budget!r}")
        if not isinstance(self.batch_requests, int) or \
                not 1 <= self.batch_requests <= KEYS_PER_TASK_MAX:
            raise ConfigError(f"planner batch_requests must be 1..{KEYS_PER_TASK_MAX}, "
                              f"got {self.batch_requests!r}")
        if math.ceil(self.budget / self.batch_requests) > TASKS_PER_PLAN_MAX // 2:
            raise ConfigError(f"planner budget / batch_requests makes more than "
                              f"{TASKS_PER_PLAN_MAX // 2} tasks a plan: raise batch_requests")
        for name in ("horizon_s", "task_deadline_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ConfigError(f"planner {name} must be a positive number, got {value!r}")
        if not isinstance(self.priority, int) or not 0 <= self.priority <= 100:
            raise ConfigError(f"planner priority must be 0..100, got {self.priority!r}")
        loader = self.default_loader
        if loader not in ZERO_CONFIG_LOADERS and not (
                loader.startswith("plugin:") and len(loader) > len("plugin:")):
            raise ConfigError(f"planner default_loader must be 'replay', '' or 'plugin:NAME', "
                              f"got {loader!r}")


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What one plan is made from; `only_rules` restricts it (a rule's own cron/every).

    Raises:
        ValueError: no plan id or trigger, an over-long one, a negative clock, bad rule names.
    """

    summary: Summary | None
    ruleset: CompiledRuleSet | None  # None: zero-config
    rules_version: str  # "" zero-config
    trigger: str  # see SubmitPlan's docstring
    plan_id: str  # e.g. "p-<now_ms>-<trigger-slug>"; task ids are "<plan_id>-<n>"
    now_ms: int
    watch: str = ""
    only_rules: tuple[str, ...] = ()
    # Rules with `source` plan from these sources' merged summary (plan_sources.source_sets).
    by_source: BySource = field(default_factory=dict)
    # Rules an operator switched off: they still match first (their requests are not handed
    # to a later rule), but their selections are left out of the plan.
    disabled_rules: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.plan_id or not self.trigger:
            raise ValueError("a plan needs a plan_id and a trigger")
        if len(self.plan_id) > PLAN_ID_CHARS_MAX or len(self.trigger) > NAME_CHARS_MAX:
            raise ValueError(f"plan_id must be at most {PLAN_ID_CHARS_MAX} characters and "
                             f"trigger at most {NAME_CHARS_MAX}")
        if not isinstance(self.now_ms, int) or self.now_ms < 0:
            raise ValueError(f"now_ms must be an integer >= 0, got {self.now_ms!r}")
        if not isinstance(self.only_rules, tuple) or \
                not all(isinstance(name, str) and name for name in self.only_rules):
            raise ValueError(f"only_rules must be a tuple of rule names, got {self.only_rules!r}")


@dataclass(frozen=True, slots=True)
class TaskPolicy:
    """Everything a task spec holds except its keys; tasks of one policy share a rule."""

    target: str
    rule: str
    loader: str
    priority: int
    deadline_ms: int
    loader_url: str = ""
    ttl_s: int = 0
    ttl_jitter_permille: int = 100
    required_labels: Labels = ()
    gate: str = ""
    gate_timeout_ms: int = 600_000
    rate_per_s: int = 0
    concurrency: int = 0
    slo_latency_ms: int = 0
    slo_permille: int = 0


@dataclass(frozen=True, slots=True)
class KeyGroup:
    """The requests (best first) of one policy, with a cache key each when the rule maps one."""

    policy: TaskPolicy
    keys: tuple[str, ...]
    cache_keys: tuple[str, ...] = ()


def plan_warm_up(inputs: PlanInputs, settings: PlannerSettings) -> SubmitPlan:
    """The plan for `inputs`: predicted requests cut into tasks, or an empty plan with a note.

    Zero-config (no rule set, or one without rules) warms the best `budget` predictions
    into `default_target`; with rules only what a rule selects is warmed, each rule's
    tasks carrying its backend, loader, key mapping, TTL, limits, labels and gate.
    """
    groups: list[KeyGroup] = []
    notes: list[str] = []
    if inputs.summary is None:
        notes.append("no summary yet: no access log has been analysed")
    elif settings.budget == 0:
        notes.append("the planner budget is 0")
    elif inputs.ruleset is None or not inputs.ruleset.rules:
        groups = _zero_config_groups(inputs, inputs.summary, settings, notes)
    else:
        groups = _rule_groups(inputs, inputs.summary, inputs.ruleset, settings, notes)
    tasks = _tasks(groups, inputs, settings, notes)
    return SubmitPlan(plan_id=inputs.plan_id, trigger=inputs.trigger,
                      rules_version=inputs.rules_version,
                      requests=sum(len(task.spec.keys) for task in tasks), tasks=tasks,
                      now_ms=inputs.now_ms, watch=inputs.watch, note="; ".join(notes))


def _zero_config_groups(inputs: PlanInputs, summary: Summary, settings: PlannerSettings,
                        notes: list[str]) -> list[KeyGroup]:
    if not settings.default_target:
        notes.append("zero-config needs a default target cache (planner default_target)")
        return []
    predictions = predict(summary, inputs.now_ms / 1000, settings.horizon_s, settings.budget)
    keys = _fitting([p.target for p in predictions], notes)
    if not keys:
        notes.append("the summary predicts no request for the next window")
        return []
    policy = TaskPolicy(target=settings.default_target, rule="", loader=settings.default_loader,
                        priority=settings.priority,
                        deadline_ms=_deadline_ms(inputs.now_ms, settings.task_deadline_s))
    return [KeyGroup(policy, tuple(keys))]


def _rule_groups(inputs: PlanInputs, summary: Summary, ruleset: CompiledRuleSet,
                 settings: PlannerSettings, notes: list[str]) -> list[KeyGroup]:
    """One group per rule, rules ordered by their best request; no group mixes rules."""
    unknown = [name for name in inputs.only_rules if ruleset.rule(name) is None]
    if unknown:
        notes.append(f"rules not in the rule set: {', '.join(unknown)}")
    ruled = predict_by_source(summary, inputs.by_source, ruleset, inputs.only_rules,
                              inputs.now_ms / 1000, settings.horizon_s, settings.budget, notes)
    by_rule: dict[str, list[RuledPrediction]] = {}
    for item in ruled:
        by_rule.setdefault(item.selection.rule, []).append(item)
    groups = []
    for name, items in by_rule.items():
        if name in inputs.disabled_rules:
            notes.append(f"rule {name} is disabled: {len(items)} requests left out")
            continue
        rule = ruleset.rule(name)
        if rule is None:
            continue
        target = rule.backend or settings.default_target
        if not target:
            notes.append(f"rule {name}: no backend and no default target; "
                         f"{len(items)} requests left out")
            continue
        groups.append(_rule_group(rule, ruleset, target, items, inputs.now_ms, settings, notes))
    if not ruled:
        scope = f"rules {', '.join(inputs.only_rules)}" if inputs.only_rules else "the rules"
        notes.append(f"{scope} select no predicted request for the next window")
    return [group for group in groups if group.keys]


def _rule_group(rule: CompiledRule, ruleset: CompiledRuleSet, target: str,
                items: list[RuledPrediction], now_ms: int, settings: PlannerSettings,
                notes: list[str]) -> KeyGroup:
    policy = rule_policy(rule, ruleset, target, now_ms, settings)
    requests = [_load_url(rule, item) for item in items]
    if rule.key_template is None:
        return KeyGroup(policy, tuple(_fitting(requests, notes)))
    pairs = [(request, item.selection.key or "") for request, item in zip(requests, items,
                                                                           strict=True)]
    fitting = [(key, cache_key) for key, cache_key in pairs
               if 0 < len(key) <= KEY_BYTES_MAX and 0 < len(cache_key) <= KEY_BYTES_MAX]
    if len(fitting) < len(pairs):
        notes.append(f"rule {rule.name}: {len(pairs) - len(fitting)} requests left out "
                     f"(empty or longer than {KEY_BYTES_MAX} characters)")
    return KeyGroup(policy, tuple(k for k, _ in fitting), tuple(c for _, c in fitting))


def _load_url(rule: CompiledRule, item: RuledPrediction) -> str:
    """What the executor requests: the rule's `load` URL template filled with this request's
    captures, parameters and parts (an absolute URL), or the request target itself."""
    template = rule.loader.url_template
    if not template:
        return item.prediction.target
    request = request_from_target("GET", item.prediction.target, 200, "", "")
    selection = item.selection
    return render_template(template, template_variables(request, selection.captures,
                                                        selection.params))


def rule_policy(rule: CompiledRule, ruleset: CompiledRuleSet, target: str, now_ms: int,
                settings: PlannerSettings) -> TaskPolicy:
    """The task policy a rule sets; what it leaves unset comes from the settings."""
    loader = rule.loader.kind
    if loader == "plugin":
        loader = f"plugin:{rule.loader.plugin}"
    gate = rule.gates[0] if rule.gates else ""
    gate_block = next((g for g in ruleset.gates if g.name == gate), None)
    rate = rule.limits.rate_per_s
    return TaskPolicy(
        target=target, rule=rule.name, loader=loader, priority=rule.priority,
        deadline_ms=_deadline_ms(now_ms, rule.deadline_s or settings.task_deadline_s),
        ttl_s=round(rule.ttl_s) if rule.ttl_s else 0,
        ttl_jitter_permille=_jitter_permille(rule),
        required_labels=tuple(rule.node_labels), gate=gate,
        gate_timeout_ms=max(1, round(gate_block.timeout_s * 1000)) if gate_block else 600_000,
        # A rate below 1/s cannot be written as an int: 1/s is the closest safe cap.
        rate_per_s=max(1, int(rate)) if rate > 0 else 0,
        concurrency=rule.limits.concurrency,
        slo_latency_ms=round(rule.limits.slo_latency_s * 1000),
        slo_permille=round(rule.limits.slo_percentile * 10))


def _jitter_permille(rule: CompiledRule) -> int:
    """The rule's `ttl ... jitter` as thousandths of the TTL (a share or a duration); the
    executor's default (10 %) when the rule sets none."""
    share = rule.ttl_jitter_fraction
    if not share and rule.ttl_jitter_s and rule.ttl_s:
        share = rule.ttl_jitter_s / rule.ttl_s
    return min(999, round(share * 1000)) if share else 100


def _deadline_ms(now_ms: int, window_s: float) -> int:
    return now_ms + max(1, math.ceil(window_s * 1000))


def _fitting(keys: list[str], notes: list[str]) -> list[str]:
    """Keys a task may hold; the rest are counted in the note (a plan must not be refused)."""
    kept = [key for key in keys if 0 < len(key) <= KEY_BYTES_MAX]
    if len(kept) < len(keys):
        notes.append(f"{len(keys) - len(kept)} requests longer than {KEY_BYTES_MAX} "
                     f"characters left out")
    return kept


def _tasks(groups: list[KeyGroup], inputs: PlanInputs, settings: PlannerSettings,
           notes: list[str]) -> tuple[PlannedTask, ...]:
    """Cut each group into tasks of `batch_requests` keys, numbered "<plan_id>-<n>" from 1."""
    tasks: list[PlannedTask] = []
    size = settings.batch_requests
    for group in groups:
        for start in range(0, len(group.keys), size):
            if len(tasks) == TASKS_PER_PLAN_MAX:
                notes.append(f"plan cut at {TASKS_PER_PLAN_MAX} tasks")
                return tuple(tasks)
            spec = _spec(group, start, start + size, inputs)
            tasks.append(PlannedTask(task_id=f"{inputs.plan_id}-{len(tasks) + 1}", spec=spec))
    return tuple(tasks)


def _spec(group: KeyGroup, start: int, stop: int, inputs: PlanInputs) -> TaskSpec:
    policy = group.policy
    return TaskSpec(
        keys=group.keys[start:stop], cache_keys=group.cache_keys[start:stop],
        target=policy.target, rule=policy.rule, priority=policy.priority,
        not_before_ms=inputs.now_ms, deadline_ms=policy.deadline_ms,
        required_labels=policy.required_labels, gate=policy.gate,
        gate_timeout_ms=policy.gate_timeout_ms, loader=policy.loader,
        loader_url=policy.loader_url, ttl_s=policy.ttl_s,
        ttl_jitter_permille=policy.ttl_jitter_permille, rate_per_s=policy.rate_per_s,
        concurrency=policy.concurrency, slo_latency_ms=policy.slo_latency_ms,
        slo_permille=policy.slo_permille, plan_id=inputs.plan_id,
        rules_version=inputs.rules_version)
