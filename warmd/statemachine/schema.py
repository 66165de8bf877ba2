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

T = typing.TypeVar("T")

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
    # Fields left off the wire while they hold their default: a field added to a command
    # that must keep its size (a bench's 100-byte Heartbeat) costs nothing until it is set.
    WIRE_OMITTED_AT_DEFAULT: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        plan = _PLANS.get(type(self)) or _plan(type(self))
        for name, where, convert in plan.fields:
            value = getattr(self, name)
            converted = convert(value, where)
            if converted is not value:
                _set_attribute(self, name, converted)
        self._check_common()
        self._check_values()

    def _check_values(self) -> None:
        """Checks particular to one class; overridden (slots dataclasses cannot super())."""

    def _check_common(self) -> None:
        """Range checks shared by fields of the same name across commands (see _COMMON_*)."""
        plan = _PLANS.get(type(self)) or _plan(type(self))
        for name, where in plan.named:
            value = getattr(self, name, None)
            if isinstance(value, str) and (name != "rule" or value):
                check_name(where, value)
        for name, where, least in plan.bounded:
            value = getattr(self, name, None)
            if isinstance(value, int):
                check_min(where, value, least)


_COMMON_NAMES = ("task_id", "client_id", "target", "rule")
_COMMON_MINIMUMS = (("now_ms", 0), ("keys_done", 0), ("not_before_ms", 0), ("node_id", 1),
                    ("fence", 1))
_set_attribute = object.__setattr__
_MISSING: Any = dataclasses.MISSING
Converter = typing.Callable[[Any, str], Any]  # (wire or Python value, where) -> conformed value
Setter = typing.Callable[[Any, Any], None]  # a slot's __set__: (instance, value)


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """One class's validation, worked out once so building an instance does no reflection.

    Decoding is on the leader's and every follower's hot path (profiled: ~24% of a loaded
    leader's CPU went to `dataclasses.fields` and `typing.get_origin` per field per call).
    """

    fields: tuple[tuple[str, str, Converter], ...]  # (name, "Class.name", converter), in order
    names: frozenset[str]  # every field, for refusing unknown wire fields
    required: frozenset[str]  # fields without a default, for refusing missing ones
    named: tuple[tuple[str, str], ...]  # _COMMON_NAMES the class has, with their `where`
    bounded: tuple[tuple[str, str, int], ...]  # _COMMON_MINIMUMS the class has
    # For decoding without __init__: (name, where, converter, default or _MISSING, setter)
    # per field, in order.
    slots: tuple[tuple[str, str, Converter, Any, Setter], ...]


_PLANS: dict[type, _Plan] = {}


def _plan(cls: type) -> _Plan:
    """Work out (once, at first use: annotations may name classes defined later) `cls`'s plan."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    plan = _Plan(
        fields=tuple(
            (field.name, f"{cls.__name__}.{field.name}", _converter(hints[field.name]))
            for field in fields
        ),
        names=frozenset(field.name for field in fields),
        required=frozenset(
            field.name for field in fields
            if field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        ),
        named=tuple((name, f"{cls.__name__}.{name}") for name in _COMMON_NAMES
                    if hasattr(cls, name)),
        bounded=tuple((name, f"{cls.__name__}.{name}", least)
                      for name, least in _COMMON_MINIMUMS if hasattr(cls, name)),
        slots=_slot_plan(cls, fields, hints),
    )
    _PLANS[cls] = plan
    return plan


def _slot_plan(cls: type, fields: tuple[dataclasses.Field[Any], ...], hints: dict[str, Any]
               ) -> tuple[tuple[str, str, Converter, Any, Setter], ...]:
    """Each field's converter, default and slot setter, for `build`.

    Raises: TypeError (a programming error) for a class `build` cannot fill slot by slot:
        a field without a slot (not `slots=True`), with a default factory, or not in
        __init__, or a __post_init__ of its own (`build` runs only Validated's checks).
    """
    if getattr(cls, "__post_init__", None) is not Validated.__post_init__:
        raise TypeError(f"{cls.__name__}: checks belong in _check_values, not __post_init__")
    plan = []
    for field in fields:
        descriptor = next((vars(klass)[field.name] for klass in cls.__mro__
                           if field.name in vars(klass)), None)
        if (not isinstance(descriptor, types.MemberDescriptorType) or not field.init
                or field.default_factory is not dataclasses.MISSING):
            raise TypeError(f"{cls.__name__}.{field.name}: a Validated field needs a slot "
                            "(slots=True), no default factory, and a place in __init__")
        plan.append((field.name, f"{cls.__name__}.{field.name}",
                     _checked_converter(field.name, hints[field.name]), field.default,
                     descriptor.__set__))
    return tuple(plan)


def _checked_converter(name: str, hint: Any) -> Converter:
    """The field's converter with `_check_common`'s check of its name folded in, so that
    `build` checks each value as it converts it instead of reading every field back."""
    convert = _converter(hint)
    least = dict(_COMMON_MINIMUMS).get(name)
    if least is not None:
        return functools.partial(_conform_at_least, convert, least, hint is int)
    if name in _COMMON_NAMES:
        return functools.partial(_conform_name, convert, name == "rule", hint is str)
    return convert


def _conform_at_least(convert: Converter, least: int, plain: bool, value: Any, where: str
                      ) -> Any:
    if plain and type(value) is int and least <= value <= INT_MAX:
        return value  # the common case of an `int` field: one test, no call to `convert`
    value = convert(value, where)
    if isinstance(value, int) and value < least:
        check_min(where, value, least)
    return value


def _conform_name(convert: Converter, empty_allowed: bool, plain: bool, value: Any, where: str
                  ) -> Any:
    if plain and type(value) is str and 0 < len(value) <= NAME_CHARS_MAX:
        return value  # the common case of a `str` field: one test, no call to `convert`
    value = convert(value, where)
    if isinstance(value, str) and (value or not empty_allowed):
        check_name(where, value)
    return value


def conform(hint: Any, value: Any, where: str) -> Any:
    """Check `value` against `hint`, converting wire shapes (lists, maps) to ours.

    Raises: InvalidCommand.
    """
    return _converter(hint)(value, where)


@functools.cache
def _converter(hint: Any) -> Converter:
    """The function that conforms values to `hint`, built once per annotation."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return _union_converter(typing.get_args(hint))
    if origin is tuple:
        return _tuple_converter(typing.get_args(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return functools.partial(_conform_dataclass, hint)
    if hint is int:
        return _conform_int
    if hint is str:
        return _conform_str
    return functools.partial(_conform_instance, hint)


def _union_converter(options: tuple[Any, ...]) -> Converter:
    """`X | None`, or a union of tagged dataclasses (a nested command) picked by its tag."""
    optional = type(None) in options
    others = tuple(option for option in options if option is not type(None))
    if len(others) == 1:
        inner = _converter(others[0])

        def conform_optional(value: Any, where: str) -> Any:
            return None if value is None and optional else inner(value, where)
        return conform_optional
    registry = {option.__name__: option for option in others}

    def conform_tagged(value: Any, where: str) -> Any:
        if type(value) is dict:  # decoding: checked first, isinstance over 40 classes is not free
            return from_map(value, where, registry)
        if value is None and optional:
            return None
        if isinstance(value, others):
            return value
        return from_map(value, where, registry)
    return conform_tagged


def _tuple_converter(items: tuple[Any, ...]) -> Converter:
    if len(items) == 2 and items[1] is Ellipsis:
        return functools.partial(_conform_variadic, items[0] is str, _converter(items[0]))
    return functools.partial(_conform_fixed, tuple(_converter(item) for item in items))


def _conform_variadic(strings: bool, convert: Converter, value: Any, where: str) -> Any:
    if not isinstance(value, (list, tuple)):
        fail(where, f"expected a list, got {type(value).__name__}")
    if strings and set(map(type, value)) <= _JUST_STR:
        return tuple(value)  # fast path: a task's keys can number 100,000
    return tuple(convert(item, f"{where}[{position}]") for position, item in enumerate(value))


_JUST_STR = frozenset({str})


def _conform_fixed(converters: tuple[Converter, ...], value: Any, where: str) -> Any:
    if not isinstance(value, (list, tuple)):
        fail(where, f"expected a list, got {type(value).__name__}")
    if len(value) != len(converters):
        fail(where, f"expected {len(converters)} items, got {len(value)}")
    return tuple(convert(item, where) for convert, item in zip(converters, value, strict=True))


def _conform_dataclass(cls: type, value: Any, where: str) -> Any:
    return value if isinstance(value, cls) else build(cls, value, where)


def _conform_int(value: Any, where: str) -> Any:
    if type(value) is int and INT_MIN <= value <= INT_MAX:
        return value  # the common case, without the checks below
    return _conform_scalar(int, value, where)


def _conform_str(value: Any, where: str) -> Any:
    return value if type(value) is str else _conform_scalar(str, value, where)


def _conform_instance(hint: type, value: Any, where: str) -> Any:
    return value if isinstance(value, hint) else _conform_scalar(hint, value, where)


def _conform_scalar(hint: type, value: Any, where: str) -> Any:
    """ints must not be bools (msgpack and Python both blur them); the rest match exactly."""
    if hint is int and isinstance(value, bool):
        fail(where, "expected an integer, got a boolean")
    if not isinstance(value, hint):
        fail(where, f"expected {hint.__name__}, got {type(value).__name__}")
    if hint is int and isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        fail(where, "integer does not fit in 64 signed bits")
    return value


def build(cls: type[T], value: Any, where: str, tagged: bool = False) -> T:
    """Build a Validated dataclass from its wire map, refusing unknown or missing fields;
    `tagged`: the map also holds the "type" tag (from_map read it), which is not a field.

    The same checks as constructing the class (conversion and the common checks per
    field, then the class's own), but the fields are set straight into their slots: no
    keyword arguments, no __init__, no second pass reading them back (decoding every
    applied entry on every member made this the state machine's largest cost). With
    several faults, the first in field order is the one reported.

    Raises: InvalidCommand.
    """
    if not isinstance(value, dict):
        fail(where, f"expected a map, got {type(value).__name__}")
    plan = _PLANS.get(cls) or _plan(cls)
    instance = cls.__new__(cls)
    found = 0
    for name, field_where, convert, default, set_slot in plan.slots:
        raw = value.get(name, _MISSING)
        if raw is _MISSING:
            if default is _MISSING:
                _refuse_fields(plan, value, where, tagged)
            set_slot(instance, default)  # a declared default: valid for its field
        else:
            found += 1
            set_slot(instance, convert(raw, field_where))
    if found + tagged != len(value):
        _refuse_fields(plan, value, where, tagged)
    instance._check_values()  # type: ignore[attr-defined]
    return instance


def _refuse_fields(plan: _Plan, value: dict[Any, Any], where: str, tagged: bool
                   ) -> typing.NoReturn:
    """Fail naming the unknown fields of a wire map, or else its missing ones."""
    unknown = value.keys() - plan.names - ({"type"} if tagged else set())
    if unknown:
        fail(where, f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    fail(where, f"missing field(s) {', '.join(sorted(plan.required - value.keys()))}")


def from_map(value: Any, where: str, registry: typing.Mapping[str, type[T]]) -> T:
    """Build the class a tagged map names ({"type": name, ...}). Raises: InvalidCommand."""
    if not isinstance(value, dict):
        fail(where, f"a command must be a map, got {type(value).__name__}")
    tag = value.get("type")
    if not isinstance(tag, str):
        fail(where, "a command map needs a string 'type' tag")
    cls = registry.get(tag)
    if cls is None:
        fail(where, f"unknown command type {tag!r}")
    return build(cls, value, tag, tagged=True)


def to_wire(value: Any) -> Any:
    """Plain msgpack-able maps and lists for a Validated dataclass (tagged) and its fields."""
    if isinstance(value, tuple):
        return [to_wire(item) for item in value]
    kind: type = type(value)
    names = _field_names(kind)
    if names is not None:
        wire = {"type": type(value).__name__} if value.WIRE_TAGGED else {}
        omitted = value.WIRE_OMITTED_AT_DEFAULT
        for name in names:
            field_value = getattr(value, name)
            if omitted and name in omitted and field_value == _default_of(kind, name):
                continue
            wire[name] = to_wire(field_value)
        return wire
    return value


@functools.cache
def _default_of(cls: type, name: str) -> Any:
    """The declared default of one field of a dataclass."""
    return next(field.default for field in dataclasses.fields(cls) if field.name == name)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    """A dataclass's field names in order (None for other types), looked up once per type."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(field.name for field in dataclasses.fields(cls))
