"""A table's query string: filters, sort and page, parsed and checked (pure).

Filters and sort live in the URL so a view can be bookmarked, shared and reloaded; every
value is checked here and a bad one is a QueryError naming the parameter, which the routes
answer with 400, never with a traceback or a silently empty table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

PER_PAGE_DEFAULT = 50
PER_PAGE_MAX = 500
FILTER_CHARS_MAX = 200
_DURATION = re.compile(r"(\d{1,6})(s|m|h|d)")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class QueryError(ValueError):
    """A query parameter that cannot be used; `name` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


@dataclass(frozen=True, slots=True)
class TableSpec:
    """What one table accepts: its filter names, sortable columns and default order."""

    filters: tuple[str, ...]
    sorts: tuple[str, ...]
    default_sort: str


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A checked query: filters given (non-empty only), sort column and direction, page."""

    filters: Mapping[str, str] = field(default_factory=dict)
    sort: str = ""
    descending: bool = False
    page: int = 1
    per_page: int = PER_PAGE_DEFAULT

    def link(self, **changes: str | int | None) -> str:
        """This query with some parameters changed (None drops one), as `?a=b&...`."""
        params: dict[str, str | int] = dict(self.filters)
        params["sort"] = ("-" if self.descending else "") + self.sort
        if self.page != 1:
            params["page"] = self.page
        if self.per_page != PER_PAGE_DEFAULT:
            params["per_page"] = self.per_page
        for name, value in changes.items():
            if value is None or value == "":
                params.pop(name, None)
            else:
                params[name] = value
        return "?" + urlencode(params)

    def sort_link(self, column: str) -> str:
        """The link that sorts by `column` (toggling the direction if it is the sort now)."""
        descending = column == self.sort and not self.descending
        return self.link(sort=("-" if descending else "") + column, page=None)


def parse(params: Mapping[str, str], spec: TableSpec) -> ListQuery:
    """Check `params` against `spec`. Raises: QueryError for an unknown sort, a bad page,
    an over-long filter or an unknown parameter."""
    known = {*spec.filters, "sort", "page", "per_page", "format"}
    for name in params:
        if name not in known:
            raise QueryError(name, f"unknown parameter (known: {', '.join(sorted(known))})")
    filters = {}
    for name in spec.filters:
        value = params.get(name, "").strip()
        if len(value) > FILTER_CHARS_MAX:
            raise QueryError(name, f"at most {FILTER_CHARS_MAX} characters")
        if value:
            filters[name] = value
    sort = params.get("sort") or spec.default_sort
    descending = sort.startswith("-")
    column = sort.removeprefix("-")
    if column not in spec.sorts:
        raise QueryError("sort", f"unknown column {column!r} (one of {', '.join(spec.sorts)})")
    page = _integer(params, "page", 1, 1, 1_000_000)
    per_page = _integer(params, "per_page", PER_PAGE_DEFAULT, 1, PER_PAGE_MAX)
    return ListQuery(filters, column, descending, page, per_page)


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name, "")
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise QueryError(name, f"must be a whole number {low}..{high}, got {text[:20]!r}")
    return int(text)


def duration_ms(name: str, text: str) -> int:
    """`15m` -> 900000: the `since` filter. Raises: QueryError for another form."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise QueryError(name, f"must be a duration like 30s, 15m, 2h or 7d, got {text[:20]!r}")
    return int(match.group(1)) * _SECONDS[match.group(2)] * 1000


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a filtered, sorted table: its rows and the counts to say "N of M"."""

    rows: Sequence[Any]  # the table's records, then its rows
    matched: int  # rows that pass the filters
    total: int  # rows in the table
    page: int
    pages: int


def take_page(rows: Sequence[Any], total: int, query: ListQuery) -> Page:
    """The query's page of already filtered and sorted `rows` (the last page when past it)."""
    pages = max(1, -(-len(rows) // query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    return Page(rows[start:start + query.per_page], len(rows), total, page, pages)
