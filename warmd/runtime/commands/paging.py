"""Pages of list-like admin replies: at most `limit` items and PAGE_BYTES_MAX bytes of them.

A reply line is limited to 1 MiB (admin/protocol.py), so a list that grows with the
cluster (tasks, plans, a task's keys) is answered a page at a time: the handler orders its
items, skips those up to the request's `cursor`, and `take_page` cuts the page by count and
by encoded size. `next_cursor` (None on the last page) is what the client sends to go on;
warmctl follows it, so an operator never sees the pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from warmd.admin.protocol import ErrorCode
from warmd.errors import AdminError

T = TypeVar("T")
# The documents of one page: a quarter of the line limit, leaving room for the envelope and
# the reply's other fields (counts, totals), whatever the size of each document.
PAGE_BYTES_MAX = 256 * 1024


@dataclass(frozen=True, slots=True)
class PageRequest:
    """`limit` items at most, after the item whose position is `cursor` (None: the first)."""

    limit: int
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Page:
    documents: list[Any]  # JSON-able: objects, or strings such as a task's keys
    next_cursor: str | None  # None: this was the last page


def page_request(args: Mapping[str, Any], default: int, maximum: int,
                 minimum: int = 1) -> PageRequest:
    """Read `limit` (minimum..maximum, default `default`; 0 asks for no items, only the
    reply's totals) and `cursor` (a string) from the args.

    Raises:
        AdminError: (bad_request) either has the wrong type or range.
    """
    limit = args.get("limit", default)
    if not isinstance(limit, int) or isinstance(limit, bool) or not minimum <= limit <= maximum:
        raise AdminError(ErrorCode.BAD_REQUEST,
                         f"limit must be an integer {minimum}..{maximum}, got {limit!r}")
    cursor = args.get("cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise AdminError(ErrorCode.BAD_REQUEST, f"cursor must be a string, got {cursor!r}")
    return PageRequest(limit, cursor)


def take_page(items: Iterable[T], request: PageRequest, position: Callable[[T], str],
              document: Callable[[T], Any],
              bytes_max: int = PAGE_BYTES_MAX) -> Page:
    """The documents of the first items (already ordered and past the cursor) that fit.

    A page always holds one item at least, so paging cannot stall on a big one.
    """
    if request.limit == 0:
        return Page([], None)
    documents: list[Any] = []
    size = 0
    last: T | None = None
    for item in items:
        made = document(item)
        made_bytes = len(json.dumps(made, separators=(",", ":"))) + 1
        if last is not None and (len(documents) == request.limit or size + made_bytes > bytes_max):
            return Page(documents, position(last))
        documents.append(made)
        size += made_bytes
        last = item
    return Page(documents, None)
