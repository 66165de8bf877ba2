"""Request targets into templates and typed slots, and back into canonical targets.

A target `/api/item/42?b=2&a=x` becomes the template `/api/item/{int}?a={}&b={}` with slots
`path[3]`, `a`, `b`. Query strings are canonicalised (sorted, so order does not matter), and
OPeNDAP-style constraint expressions (`?var[3920:1:3920][0:1:9],lat`) are split into numeric
slots too. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from urllib.parse import unquote

_INT = re.compile(r"-?\d{1,18}\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_HEX = re.compile(r"[0-9a-fA-F]{8,}\Z")
_DATE = re.compile(r"(\d{4})(-?)(\d{2})\2(\d{2})\Z")
_EMAIL = re.compile(r"[^@\s/]+(?:@|%40)[^@\s/]+\.[A-Za-z]{2,}\Z")
_TOKEN = re.compile(r"[A-Za-z0-9_\-.~%+=]{16,}\Z")
_WORD = re.compile(r"[A-Za-z][A-Za-z_\-.]*\Z")
_CE_PROJECTION = re.compile(r"([A-Za-z_][\w.\-/%]*)((?:\[[-\d:]+\])*)\Z")
_CE_RANGE = re.compile(r"\[([-\d:]+)\]")
_CE_QUERY = re.compile(r"[\w.\-/%\[\]:,]+\Z")
_SLOT_TYPES_IN_PATH = ("int", "uuid", "hex", "date")
_EMBEDDED_DATE = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2}|\d{8})(?!\d)")
_TWO_DIGITS = re.compile(r"[0-9][^0-9]*[0-9]")
VALUE_TYPE_CACHE = 1 << 16
_NUMBERED_NAME = re.compile(r"[A-Za-z][A-Za-z]*[_\-](\d{1,12})(?:\.[A-Za-z0-9]{1,8})?\Z")


@lru_cache(maxsize=VALUE_TYPE_CACHE)
def value_type(value: str) -> str:
    """The type of a slot value: int, date, uuid, hex, email, token, word, empty or other.

    Memoised (bounded): path segments and slot values recur across targets, and typing one
    tries up to eight patterns."""
    if not value:
        return "empty"
    if _INT.match(value):
        return "date" if len(value) == 8 and _valid_date(value) else "int"
    if _DATE.match(value) and _valid_date(value):
        return "date"
    if _UUID.match(value):
        return "uuid"
    if _HEX.match(value) and not value.isalpha() and not value.isdigit():  # digits and letters
        return "hex"
    if _EMAIL.match(value):
        return "email"
    if _WORD.match(value):
        return "word"
    if _TOKEN.match(value) and _TWO_DIGITS.search(value):
        return "token"
    return "other"


def _valid_date(value: str) -> bool:
    match = _DATE.match(value)
    if match is None:
        return False
    year, month, day = int(match.group(1)), int(match.group(3)), int(match.group(4))
    return 1900 <= year <= 2200 and 1 <= month <= 12 and 1 <= day <= 31


@dataclass(frozen=True)
class Template:
    """An endpoint template: literal pieces around named slots (len(pieces) == slots + 1)."""

    pieces: tuple[str, ...]
    slot_names: tuple[str, ...]
    slot_kinds: tuple[str, ...]

    @cached_property
    def pattern(self) -> str:
        """Human form, e.g. `/api/item/{int}?page={}` (computed once per template object)."""
        out = [self.pieces[0]]
        for kind, piece in zip(self.slot_kinds, self.pieces[1:], strict=True):
            out.append("{" + kind + "}" if kind else "{}")
            out.append(piece)
        return "".join(out)

    def compose(self, values: tuple[str, ...]) -> str:
        """The canonical target with `values` in the slots."""
        out = [self.pieces[0]]
        for value, piece in zip(values, self.pieces[1:], strict=True):
            out.append(value)
            out.append(piece)
        return "".join(out)


@dataclass(frozen=True)
class Decomposed:
    """A target split into its template and the slot values."""

    template: Template
    values: tuple[str, ...]


PathMemo = dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...], str]]
PATH_MEMO_SIZE = 20_000  # memoised path splits (a few hundred bytes each)


def decompose(target: str, generalised: frozenset[tuple[int, int, str]] = frozenset(),
              memo: PathMemo | None = None) -> Decomposed:
    """Split `target` into template and slot values.

    `generalised` holds path positions that per-position statistics turned into `{slug}`
    slots, as (segment count, position, sibling signature) triples (see PathGeneraliser).
    `memo` keeps the split of each path (valid for this `generalised` only: the caller clears
    it when that changes), so targets that differ only in their query (cache-busters,
    advancing indexes) split their path once.
    """
    path, _, query = target.partition("?")
    path = path.split("#", 1)[0]
    head = None if memo is None else memo.get(path)
    if head is None:
        pieces: list[str] = []
        names: list[str] = []
        kinds: list[str] = []
        values: list[str] = []
        literal = _split_path(path, generalised, pieces, names, kinds, values)
        head = (tuple(pieces), tuple(names), tuple(kinds), tuple(values), literal)
        if memo is not None:
            if len(memo) >= PATH_MEMO_SIZE:
                memo.clear()
            memo[path] = head
    if not query:
        return Decomposed(_template(head[0] + (head[4],), head[1], head[2]), head[3])
    q_pieces, q_names, q_kinds, q_values, q_literal = _query_split(query)
    if q_pieces:  # the path's trailing literal starts the query's first piece
        all_pieces = (*head[0], head[4] + q_pieces[0], *q_pieces[1:], q_literal)
    else:
        all_pieces = (*head[0], head[4] + q_literal)
    return Decomposed(_template(all_pieces, head[1] + q_names, head[2] + q_kinds),
                      head[3] + q_values)


QUERY_MEMO_SIZE = 1 << 14
TEMPLATE_MEMO_SIZE = 1 << 12
SEGMENT_MEMO_SIZE = 1 << 14


@lru_cache(maxsize=QUERY_MEMO_SIZE)
def _query_split(query: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...],
                                      tuple[str, ...], str]:
    """The pieces, slot names, kinds and values a query adds after its path, and the literal
    left after them (memoised: the queries of an API's paths repeat far more than its
    paths). The path's trailing literal only prefixes the first piece, so it is left out."""
    pieces: list[str] = []
    names: list[str] = []
    kinds: list[str] = []
    values: list[str] = []
    literal = _split_query(query, "", pieces, names, kinds, values)
    return tuple(pieces), tuple(names), tuple(kinds), tuple(values), literal


@lru_cache(maxsize=TEMPLATE_MEMO_SIZE)
def _template(pieces: tuple[str, ...], names: tuple[str, ...],
              kinds: tuple[str, ...]) -> Template:
    """One Template object per template (memoised), so its pattern is composed once."""
    return Template(pieces, names, kinds)


def _split_path(path: str, generalised: frozenset[tuple[int, int, str]], pieces: list[str],
                names: list[str], kinds: list[str], values: list[str]) -> str:
    segments = path.split("/")
    count = len(segments)
    slug_positions = _slug_positions(generalised)
    literal = ""
    start = 0  # where the segment starts in `path`
    for position, segment in enumerate(segments):
        if position:
            literal += "/"
        end = start + len(segment)
        kind = value_type(segment) if segment else "empty"
        if kind not in _SLOT_TYPES_IN_PATH and (count, position) in slug_positions and (
                (count, position, path[:start] + "*" + path[end:]) in generalised):
            kind = "slug"
        start = end + 1
        if kind in _SLOT_TYPES_IN_PATH or kind == "slug":
            pieces.append(literal)
            names.append(f"path[{position}]")
            kinds.append(kind)
            values.append(segment)
            literal = ""
        else:
            literal = _split_embedded(segment, position, literal, pieces, names, kinds, values)
    return literal


def _split_embedded(segment: str, position: int, literal: str, pieces: list[str],
                    names: list[str], kinds: list[str], values: list[str]) -> str:
    """A date or a numbered name inside a segment (`report-2024-05-18.pdf`, `page-12.html`)
    becomes a typed slot `path[i].date` / `path[i].int`; the rest stays literal."""
    slot = _embedded_slot(segment)
    if slot is None:
        return literal + segment
    start, end, kind = slot
    pieces.append(literal + segment[:start])
    names.append(f"path[{position}].{kind}")
    kinds.append(kind)
    values.append(segment[start:end])
    return segment[end:]


@lru_cache(maxsize=SEGMENT_MEMO_SIZE)
def _embedded_slot(segment: str) -> tuple[int, int, str] | None:
    """Where the embedded date or number of a literal segment is, and its kind, or None
    (memoised: the literal segments of a site's paths repeat)."""
    match = _EMBEDDED_DATE.search(segment)
    kind = "date"
    if match is None or not _valid_date(match.group(1)):
        match, kind = _NUMBERED_NAME.match(segment), "int"
    if match is None:
        return None
    return match.start(1), match.end(1), kind


@lru_cache(maxsize=8)
def _slug_positions(generalised: frozenset[tuple[int, int, str]]) -> frozenset[tuple[int, int]]:
    """The (segment count, position) pairs that have a slug for some sibling signature: a
    path position outside them needs no signature built (memoised per slug set)."""
    return frozenset((count, position) for count, position, _ in generalised)


def _split_query(query: str, literal: str, pieces: list[str], names: list[str],
                 kinds: list[str], values: list[str]) -> str:
    if "=" not in query and "%" in query:
        query = unquote(query)  # constraint expressions often arrive as %5b...%5d
    if "=" not in query and _CE_QUERY.match(query) and ("[" in query or "," in query):
        projections = sorted(query.split(","))
        if all(_CE_PROJECTION.match(p) for p in projections):
            return _split_constraint(projections, literal + "?", pieces, names, kinds, values)
    pairs = sorted(part.partition("=") for part in query.split("&") if part)
    seen: dict[str, int] = {}
    separator = "?"
    for name, equals, value in pairs:
        if not equals:
            literal += separator + name
        else:
            count = seen[name] = seen.get(name, 0) + 1
            pieces.append(literal + separator + name + "=")
            names.append(name if count == 1 else f"{name}#{count}")
            kinds.append("")
            values.append(value)
            literal = ""
        separator = "&"
    return literal


def _split_constraint(projections: list[str], literal: str, pieces: list[str],
                      names: list[str], kinds: list[str], values: list[str]) -> str:
    """OPeNDAP `var[a:b:c][d]` projections: each number is an int slot `var[i].start` etc."""
    for number, projection in enumerate(projections):
        if number:
            literal += ","
        match = _CE_PROJECTION.match(projection)
        assert match is not None  # checked by the caller
        name, ranges = match.group(1), match.group(2)
        literal += name
        for dimension, bounds in enumerate(_CE_RANGE.findall(ranges)):
            parts = bounds.split(":")
            roles = ("start", "stop") if len(parts) == 2 else ("start", "stride", "stop")
            literal += "["
            for part_number, part in enumerate(parts):
                if part_number:
                    literal += ":"
                role = roles[part_number] if len(parts) <= 3 else str(part_number)
                pieces.append(literal)
                names.append(f"{name}[{dimension}].{role}")
                kinds.append("int")
                values.append(part)
                literal = ""
            literal += "]"
    return literal


def canonical(target: str) -> str:
    """The order-insensitive form of `target` (query parameters sorted)."""
    parts = decompose(target)
    return parts.template.compose(parts.values)


class PathGeneraliser:
    """Per-position statistics over path segments: a literal position that takes many
    distinct values among otherwise identical paths becomes a `{slug}` slot.

    Paths are siblings at a position when they are equal with that position blanked: the
    sibling signature `path[:start] + "*" + path[end:]` (the segment's offsets in the path),
    keyed with the segment count and the position.

    Memory is bounded by `max_signatures`; the threshold is `min_distinct` values.
    """

    def __init__(self, min_distinct: int = 12, max_signatures: int = 5_000) -> None:
        self.min_distinct = min_distinct
        self.max_signatures = max_signatures
        self._distinct: dict[tuple[int, int, str], set[str]] = {}
        self._seen: set[str] = set()
        self.generalised: set[tuple[int, int, str]] = set()

    def observe(self, path: str) -> bool:
        """Count the literal segments of `path`; True when a new slug position appeared."""
        path = path.split("?", 1)[0]
        if path in self._seen:
            return False
        if len(self._seen) > 4 * self.max_signatures:
            self._seen.clear()
        self._seen.add(path)
        segments = path.split("/")
        count = len(segments)
        changed = False
        end = -1
        for position, segment in enumerate(segments):
            start, end = end + 1, end + 1 + len(segment)  # the segment's offsets in `path`
            if not segment or value_type(segment) in _SLOT_TYPES_IN_PATH:
                continue
            key = (count, position, path[:start] + "*" + path[end:])
            if key in self.generalised:
                continue
            seen = self._distinct.get(key)
            if seen is None:
                if len(self._distinct) >= self.max_signatures and not self._prune():
                    continue
                seen = self._distinct[key] = set()
            seen.add(segment)
            if len(seen) >= self.min_distinct:
                self.generalised.add(key)
                del self._distinct[key]
                changed = True
        return changed

    def _prune(self) -> bool:
        """Forget signatures seen with a single value (most are one-off paths); True when
        that made room."""
        self._distinct = {key: seen for key, seen in self._distinct.items() if len(seen) > 1}
        return len(self._distinct) < self.max_signatures
