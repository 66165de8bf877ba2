"""The rule language's syntax tree: frozen dataclasses, one per statement shape.

Positions (`Span`) are kept for error carets but excluded from equality, so that
parse -> pretty-print -> parse yields an equal tree. Values stay as written
(`Value.text`); the compiler gives them types and units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class Span:
    """Where a node starts (1-based line and column) and how wide its caret is."""

    line: int = 0
    column: int = 0
    width: int = 1


NO_SPAN = Span()


class ValueKind(StrEnum):
    """The lexical kind of a value, which decides the type the compiler may give it."""

    STRING = "string"
    INTEGER = "integer"
    DURATION = "duration"
    PERCENT = "percent"
    RATE = "rate"
    RANGE = "range"
    WORD = "word"
    LIST = "list"


@dataclass(frozen=True)
class Name:
    """An identifier as written (rule, backend, hook, parameter names ...)."""

    text: str
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Value:
    """A literal. `text` is the decoded content for strings, the source text otherwise."""

    kind: ValueKind
    text: str = ""
    items: tuple[Value, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Arg:
    """A `name=value` argument of a hook, loader, backend, parameter class or node label."""

    name: Name
    value: Value


@dataclass(frozen=True)
class Setting:
    """A statement of one keyword and one value: `ttl`-less ones like `priority 5`.

    Keywords: path, timezone, timeout, poll, rate, concurrency, cron, every, key,
    priority, deadline.
    """

    keyword: str
    value: Value
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Reference:
    """A rule's use of named things: `backend X`, `schedule A, B`, `gate G`, `limits L`, `source S`."""

    keyword: str
    names: tuple[Name, ...]
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class SourceFormat:
    """`format NAME [PATTERN]` in a source block; the pattern is for `format regex`."""

    format: Name
    pattern: Value | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class GateCheck:
    """`check HOOK arg=value ...` in a gate block."""

    hook: Name
    args: tuple[Arg, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class LimitSlo:
    """`slo p99 250ms`: the origin latency objective that throttles warm-up."""

    percentile: Name
    value: Value
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class TriggerOn:
    """`on EVENT [TARGET]`: an event trigger (cache-flush, cache-restart, gate-ready, new-rules)."""

    event: Name
    target: Name | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Match:
    """`match [METHOD] PATH`; the path template keeps its `{name:type}` captures as text."""

    method: Name | None
    path: Name
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Subject:
    """What a where-filter tests: a request field or capture, or `param NAME`."""

    name: Name
    is_param: bool = False


@dataclass(frozen=True)
class Where:
    """`where SUBJECT OP VALUE`, `where SUBJECT [not] in VALUE` or `where SUBJECT exists|missing`."""

    subject: Subject
    operator: str
    value: Value | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Param:
    """`param NAME CLASS arg=value ...`: override the diagnosis of one parameter."""

    name: Name
    kind: Name
    args: tuple[Arg, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Load:
    """`load KIND [TARGET] arg=value ...`: replay, fetch or a plugin loader."""

    kind: Name
    target: Value | None = None
    args: tuple[Arg, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Budget:
    """`budget top N` (mode "top") or `budget P% of capacity` (mode "share")."""

    mode: str
    value: Value
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Ttl:
    """`ttl DURATION [jitter PERCENT|DURATION]`."""

    value: Value
    jitter: Value | None = None
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Nodes:
    """`nodes label=value ...`: only nodes carrying all these labels run the rule's tasks."""

    labels: tuple[Arg, ...]
    span: Span = field(default=NO_SPAN, compare=False)


Statement = (
    Setting | Reference | SourceFormat | GateCheck | LimitSlo | TriggerOn | Match | Where
    | Param | Load | Budget | Ttl | Nodes
)


@dataclass(frozen=True)
class BackendDecl:
    """`backend NAME KIND arg=value ...`: declare a cache the rules may fill."""

    name: Name
    kind: Name
    args: tuple[Arg, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class PluginDecl:
    """`plugin NAME`: declare a hook or loader provided by an installed plugin."""

    name: Name
    span: Span = field(default=NO_SPAN, compare=False)


@dataclass(frozen=True)
class Block:
    """`KIND NAME { ... }` where KIND is source, gate, limits, schedule or rule."""

    kind: str
    name: Name
    statements: tuple[Statement, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False)
    end_line: int = field(default=0, compare=False)


Item = BackendDecl | PluginDecl | Block


@dataclass(frozen=True)
class RuleFile:
    """A whole parsed file, items in source order."""

    items: tuple[Item, ...] = ()

    def blocks(self, kind: str) -> tuple[Block, ...]:
        """The blocks of one kind ("rule", "gate", ...), in source order."""
        return tuple(item for item in self.items if isinstance(item, Block) and item.kind == kind)
