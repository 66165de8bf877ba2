"""Field validation and the tagged-map wire form that every command shares.

A command class mixes in `Validated`: construction conforms each field to its type
annotation (turning wire lists into tuples and maps into nested dataclasses) and checks
ranges, so Python callers and decoded bytes pass the same gate. Knows no command by name.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, ClassVar, Union

from warmd.errors import WarmdError

NAME_CHARS_MAX = 256  # task ids, client ids, targets, rule names, label keys
TEXT_CHARS_MAX = 4096  # reasons, errors, results, label values
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what msgpack's int64 carries


class InvalidCommand(WarmdError):
    """A command is malformed: wrong type, out of range, unknown tag or undecodable bytes."""


def fail(where: str, problem: str) -> typing.NoReturn:
    """Raise InvalidCommand naming the field (`where`) and what is wrong with it."""
    raise InvalidCommand(f"{where}: {problem}")


def check_name(where: str, value: str) -> None:
    if not value or len(value) > NAME_CHARS_MAX:
        fail(where, f"must be 1..{NAME_CHARS_MAX} characters, got {len(value)}")


def check_text(where: str, value: str) -> None:
    if len(value) > TEXT_CHARS_MAX:
        fail(where, f"must be at most {TEXT_CHARS_MAX} characters, got {len(value)}")


def check_min(where: str, value: int, least: int) -> None:
    if value < least:
        fail(where, f"must be >= {least}, got {value}")


class Validated:
    """Mixin for frozen dataclasses: conform every field to its annotation, then check ranges."""

    __slots__ = ()
    WIRE_TAGGED: ClassVar[bool] = True  # commands carry {"type": ClassName}; nested specs don't

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            where = f"{type(self).__name__}.{field.name}"
            value = conform(hints[field.name], getattr(self, field.name), where)
            object.__setattr__(self, field.name, value)
        self._check_common()
        self._check_values()

    def _check_values(self) -> None:
        """Checks particular to one class; overridden (slots dataclasses cannot super())."""

    def _check_common(self) -> None:
        """Range checks shared by fields of the same name across commands."""
        for name in ("task_id", "client_id", "target", "rule"):
            value = getattr(self, name, None)
            if isinstance(value, str) and (name != "rule" or value):
                check_name(f"{type(self).__name__}.{name}", value)
        for name in ("now_ms", "keys_done", "not_before_ms"):
            value = getattr(self, name, None)
            if isinstance(value, int):
                check_min(f"{type(self).__name__}.{name}", value, 0)
        for name in ("node_id", "fence"):
            value = getattr(self, name, None)
            if isinstance(value, int):
                check_min(f"{type(self).__name__}.{name}", value, 1)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def conform(hint: Any, value: Any, where: str) -> Any:
    """Check `value` against `hint`, converting wire shapes (lists, maps) to ours.

    Raises: InvalidCommand.
    """
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return _conform_union(typing.get_args(hint), value, where)
    if origin is tuple:
        return _conform_tuple(typing.get_args(hint), value, where)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build(hint, value, where)
    return _conform_scalar(hint, value, where)


def _conform_union(options: tuple[Any, ...], value: Any, where: str) -> Any:
    """`X | None`, or a union of tagged dataclasses (a nested command) picked by its tag."""
    if value is None and type(None) in options:
        return None
    others = [option for option in options if option is not type(None)]
    if len(others) == 1:
        return conform(others[0], value, where)
    if isinstance(value, tuple(others)):
        return value
    return from_map(value, where, {option.__name__: option for option in others})


def _conform_tuple(items: tuple[Any, ...], value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, (list, tuple)):
        fail(where, f"expected a list, got {type(value).__name__}")
    if len(items) == 2 and items[1] is Ellipsis:
        if items[0] is str and all(type(item) is str for item in value):
            return tuple(value)  # fast path: a task's keys can number 100,000
        return tuple(
            conform(items[0], item, f"{where}[{position}]") for position, item in enumerate(value)
        )
    if len(value) != len(items):
        fail(where, f"expected {len(items)} items, got {len(value)}")
    return tuple(conform(hint, item, where) for hint, item in zip(items, value, strict=True))


def _conform_scalar(hint: type, value: Any, where: str) -> Any:
    """ints must not be bools (msgpack and Python both blur them); the rest match exactly."""
    if hint is int and isinstance(value, bool):
        fail(where, "expected an integer, got a boolean")
    if not isinstance(value, hint):
        fail(where, f"expected {hint.__name__}, got {type(value).__name__}")
    if hint is int and not INT_MIN <= value <= INT_MAX:
        fail(where, "integer does not fit in 64 signed bits")
    return value


def build(cls: type, value: Any, where: str) -> Any:
    """Build a dataclass from its wire map (tag removed), refusing unknown or missing fields.

    Raises: InvalidCommand.
    """
    if not isinstance(value, dict):
        fail(where, f"expected a map, got {type(value).__name__}")
    fields = dataclasses.fields(cls)
    unknown = sorted(map(str, set(value) - {field.name for field in fields}))
    if unknown:
        fail(where, f"unknown field(s) {', '.join(unknown)}")
    required = {
        field.name for field in fields
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    }
    missing = sorted(required - set(value))
    if missing:
        fail(where, f"missing field(s) {', '.join(missing)}")
    return cls(**value)


def from_map(value: Any, where: str, registry: typing.Mapping[str, type]) -> Any:
    """Build the class a tagged map names ({"type": name, ...}). Raises: InvalidCommand."""
    if not isinstance(value, dict):
        fail(where, f"a command must be a map, got {type(value).__name__}")
    fields = dict(value)
    tag = fields.pop("type", None)
    if not isinstance(tag, str):
        fail(where, "a command map needs a string 'type' tag")
    cls = registry.get(tag)
    if cls is None:
        fail(where, f"unknown command type {tag!r}")
    return build(cls, fields, tag)


def to_wire(value: Any) -> Any:
    """Plain msgpack-able maps and lists for a Validated dataclass (tagged) and its fields."""
    if isinstance(value, tuple):
        return [to_wire(item) for item in value]
    if dataclasses.is_dataclass(value):
        wire = {"type": type(value).__name__} if value.WIRE_TAGGED else {}
        for field in dataclasses.fields(value):
            wire[field.name] = to_wire(getattr(value, field.name))
        return wire
    return value
