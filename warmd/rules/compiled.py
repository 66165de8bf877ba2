"""The compiled rule set: typed, checked, ready for the planner and the engine (pure).

`CompiledRuleSet.select(request)` says which rule owns a request, the captures and
parameters it sees, the cache key it maps to, and which parameters it drops or
refuses to warm. Predicting new requests is the engine's job (rules/engine.py).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from warmd.rules.cron import CronSpec


class OverrideKind(StrEnum):
    """What a `param` statement forces: a diagnosis class, or drop / never-warm."""

    CONSTANT = "CONSTANT"
    ENUM = "ENUM"
    DATE_RELATIVE = "DATE_RELATIVE"
    SEQUENCE = "SEQUENCE"
    PAGE = "PAGE"
    HOT_ID = "HOT_ID"
    NONCE = "NONCE"
    USER_SCOPED = "USER_SCOPED"
    SECRET = "SECRET"
    DROP = "DROP"
    NEVER_WARM = "NEVER_WARM"


# Classes whose parameter never appears in a cache key (the request is still warmed).
DROPPED_KINDS = frozenset({OverrideKind.NONCE, OverrideKind.DROP})
# Classes that forbid warming any request carrying the parameter.
NEVER_WARM_KINDS = frozenset({
    OverrideKind.USER_SCOPED, OverrideKind.SECRET, OverrideKind.NEVER_WARM,
})


@dataclass(frozen=True)
class ParamOverride:
    """A forced diagnosis for one parameter (query parameter or path capture)."""

    name: str
    kind: OverrideKind
    offset_s: float = 0.0
    date_format: str = "%Y-%m-%d"
    value: str = ""
    values: tuple[str, ...] = ()
    page_max: int = 0
    top: int = 0
    step: int = 1
    ahead: int = 1


@dataclass(frozen=True)
class Capture:
    """A typed `{name:type}` segment of a path template."""

    name: str
    type: str
    pattern: str


@dataclass(frozen=True)
class PathTemplate:
    """`/api/report/{date:date}` compiled to an anchored regular expression."""

    text: str
    captures: tuple[Capture, ...]
    regex: str
    # Compiled once: with many rules, re's own small cache would thrash.
    compiled: re.Pattern[str] = field(init=False, compare=False, repr=False)
    prefix: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.regex))
        object.__setattr__(self, "prefix", self.text.split("{", 1)[0])

    def match(self, path: str) -> dict[str, str] | None:
        """The captured values when `path` fits the template, else None."""
        if not path.startswith(self.prefix):
            return None
        found = self.compiled.fullmatch(path)
        return found.groupdict() if found else None


@dataclass(frozen=True)
class Filter:
    """A where-filter: `subject` is status, agent, client, method, path, a capture or a param."""

    subject: str
    is_param: bool
    operator: str
    operands: tuple[str, ...] = ()
    low: int = 0
    high: int = 0
    pattern: re.Pattern[str] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        regex = self.operands[0] if self.operator in ("~", "!~") and self.operands else None
        object.__setattr__(self, "pattern", re.compile(regex) if regex is not None else None)


@dataclass(frozen=True)
class Loader:
    """How warm-up fetches an answer: HTTP replay, origin fetch + direct write, or a plugin."""

    kind: str  # "replay" | "fetch" | "plugin"
    url_template: str = ""
    plugin: str = ""
    args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Trigger:
    """When to warm: `cron`, `every`, or an event (cache-flush, cache-restart, gate-ready, new-rules)."""

    kind: str
    cron: CronSpec | None = None
    interval_s: float = 0.0
    target: str = ""


@dataclass(frozen=True)
class Limits:
    """Origin protection: hard rate, concurrency cap, latency objective (0 = unset)."""

    rate_per_s: float = 0.0
    concurrency: int = 0
    slo_percentile: float = 0.0
    slo_latency_s: float = 0.0


@dataclass(frozen=True)
class GateCheck:
    """One readiness hook call with its checked arguments."""

    hook: str
    args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Gate:
    """A readiness gate: all checks must pass; polled every `poll_s`, given up after `timeout_s`."""

    name: str
    checks: tuple[GateCheck, ...]
    timeout_s: float = 600.0
    poll_s: float = 5.0


@dataclass(frozen=True)
class Source:
    """A log source: path globs, format, and the timezone of timestamps without one."""

    name: str
    paths: tuple[str, ...]
    format: str = "combined"
    pattern: str = ""
    timezone: str = "UTC"


@dataclass(frozen=True)
class Backend:
    """A named cache; `kind` is "" when only the name is known (from --backends)."""

    name: str
    kind: str = ""
    args: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Request:
    """The facts about one logged request that rules can test."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    status: int | None = None
    user_agent: str = ""
    client: str = ""


@dataclass(frozen=True)
class Selection:
    """What the rules alone decide about a request."""

    rule: str
    captures: Mapping[str, str]
    params: Mapping[str, str]
    key: str | None
    dropped: tuple[str, ...]
    never_warm: tuple[str, ...]


@dataclass(frozen=True)
class CompiledRule:
    """One checked rule; every field typed, units in the names."""

    name: str
    method: str | None
    path: PathTemplate
    filters: tuple[Filter, ...] = ()
    overrides: tuple[ParamOverride, ...] = ()
    declared_params: tuple[str, ...] = ()
    key_template: str | None = None
    loader: Loader = field(default_factory=lambda: Loader("replay"))
    backend: str | None = None
    budget_top: int = 0
    budget_share: float = 0.0
    ttl_s: float | None = None
    ttl_jitter_s: float = 0.0
    ttl_jitter_fraction: float = 0.0
    priority: int = 50
    deadline_s: float | None = None
    node_labels: tuple[tuple[str, str], ...] = ()
    triggers: tuple[Trigger, ...] = ()
    gates: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    sources: tuple[str, ...] = ()

    def override(self, name: str) -> ParamOverride | None:
        """The override for parameter `name`, if the rule has one."""
        return next((o for o in self.overrides if o.name == name), None)

    def select(self, request: Request) -> Selection | None:
        """The selection when this rule's match and filters accept `request`, else None."""
        if self.method is not None and request.method.upper() != self.method:
            return None
        captures = self.path.match(request.path)
        if captures is None:
            return None
        params = dict(request.query)
        if not all(_passes(f, request, captures, params) for f in self.filters):
            return None
        dropped = tuple(sorted(o.name for o in self.overrides
                               if o.kind in DROPPED_KINDS and o.name in params))
        never = tuple(sorted(o.name for o in self.overrides
                             if o.kind in NEVER_WARM_KINDS and (o.name in params or o.name in captures)))
        key = None
        if self.key_template is not None and not never:
            key = render_template(self.key_template, template_variables(request, captures, params))
        return Selection(self.name, captures, params, key, dropped, never)


@dataclass(frozen=True)
class CompiledRuleSet:
    """Everything a rule file declares, checked; rules keep file order (first match wins)."""

    rules: tuple[CompiledRule, ...] = ()
    backends: tuple[Backend, ...] = ()
    plugins: tuple[str, ...] = ()
    sources: tuple[Source, ...] = ()
    gates: tuple[Gate, ...] = ()
    limits: Mapping[str, Limits] = field(default_factory=dict)
    schedules: Mapping[str, tuple[Trigger, ...]] = field(default_factory=dict)

    def rule(self, name: str) -> CompiledRule | None:
        """The rule called `name`, or None."""
        return next((rule for rule in self.rules if rule.name == name), None)

    def select(self, request: Request) -> Selection | None:
        """The first rule that accepts `request` decides; None when no rule does."""
        for rule in self.rules:
            selection = rule.select(request)
            if selection is not None:
                return selection
        return None


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """Fill `{name}` placeholders; `{{` and `}}` are literal braces; unknown names stay empty."""
    out, position = [], 0
    while position < len(template):
        pair = template[position:position + 2]
        if pair in ("{{", "}}"):
            out.append(pair[0])
            position += 2
            continue
        if template[position] == "{":
            end = template.index("}", position)
            out.append(variables.get(template[position + 1:end], ""))
            position = end + 1
            continue
        out.append(template[position])
        position += 1
    return "".join(out)


def template_variables(request: Request, captures: Mapping[str, str],
                       params: Mapping[str, str]) -> dict[str, str]:
    """What `key` and `load` templates may use: params, captures and the request's parts."""
    query = "&".join(f"{name}={value}" for name, value in request.query)
    target = request.path + (f"?{query}" if query else "")
    return {**params, **captures, "method": request.method.upper(), "path": request.path,
            "query": query, "target": target}


def _passes(check: Filter, request: Request, captures: Mapping[str, str],
            params: Mapping[str, str]) -> bool:
    """Whether one where-filter accepts the request."""
    value = _subject_value(check, request, captures, params)
    operator = check.operator
    if operator in ("exists", "missing"):
        return (value is not None) == (operator == "exists")
    if value is None:
        return operator in ("!=", "!~", "not in")
    if check.subject == "client" and not check.is_param and operator in ("in", "not in"):
        inside = _in_networks(value, check.operands)
        return inside == (operator == "in")
    if check.high or check.low:
        inside = value.isdigit() and check.low <= int(value) <= check.high
        return inside == (operator == "in")
    return _compare(operator, value, check.operands, check.pattern)


def _compare(operator: str, value: str, operands: tuple[str, ...],
             pattern: re.Pattern[str] | None) -> bool:
    if operator in ("in", "not in"):
        return (value in operands) == (operator == "in")
    if pattern is not None:
        return (pattern.search(value) is not None) == (operator == "~")
    if operator in ("=", "!="):
        return (value == operands[0]) == (operator == "=")
    try:
        left, right = float(value), float(operands[0])
    except ValueError:
        return False
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[operator]


def _subject_value(check: Filter, request: Request, captures: Mapping[str, str],
                   params: Mapping[str, str]) -> str | None:
    if check.is_param:
        return params.get(check.subject)
    if check.subject in captures:
        return captures[check.subject]
    fields = {
        "status": None if request.status is None else str(request.status),
        "agent": request.user_agent, "client": request.client or None,
        "method": request.method.upper(), "path": request.path,
    }
    return fields.get(check.subject)


def _in_networks(address: str, networks: tuple[str, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in ipaddress.ip_network(network, strict=False) for network in networks)
