"""Requests per endpoint template and cache result, counted from the log lines themselves.

The analysis worker calls `CacheRequestTally.add` with every parsed batch; the counts travel
back with each summary snapshot and become `warmd_cache_requests_total`. The result is the
cache status the line carries (nginx `$upstream_cache_status` as a trailing field, or a
`cache_status` JSON field), else its upstream time (`urt=`/`upstream_response_time=` as a
trailing field or a JSON field: `-` means no upstream was asked, a hit; a time, a miss);
`unknown` when the log says neither. Memory is
bounded: past `patterns_max` templates the rest are counted as `other`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from warmd.metrics import OTHER

HIT, MISS, UNKNOWN = "hit", "miss", "unknown"
PATTERNS_MAX = 2_000  # per source: as many templates as a summary keeps
# nginx's $upstream_cache_status values (and Varnish/CDN spellings of the same two facts).
RESULTS = {"HIT": HIT, "STALE": HIT, "UPDATING": HIT, "REVALIDATED": HIT, "TCP_HIT": HIT,
           "MISS": MISS, "EXPIRED": MISS, "BYPASS": MISS, "TCP_MISS": MISS}
_ANY_STATUS = re.compile(r"\b(?:HIT|MISS|EXPIRED|STALE|UPDATING|REVALIDATED|BYPASS|urt|"
                         r"upstream_response_time|upstream_time)\b", re.IGNORECASE)
# The upstream's response time: "-" when nginx answered without asking it (from its cache).
_UPSTREAM_TIME = re.compile(
    r'"?\b(?:urt|upstream_response_time|upstream_time)"?\s*[=:]\s*"?(-|[0-9][0-9.]*)')
_JSON_STATUS = re.compile(r'"(?:upstream_)?cache(?:_status)?"\s*:\s*"([A-Za-z_]+)"')

Row = tuple[str, str, int]  # (pattern, result, requests)


def cache_result(line: str) -> str:
    """hit, miss or unknown, from the line's cache-status field if it has one, else from
    its upstream time."""
    if line.lstrip().startswith("{"):
        match = _JSON_STATUS.search(line)
        if match:
            return RESULTS.get(match.group(1).upper(), UNKNOWN)
        return _from_upstream_time(line)
    for token in line[line.rfind('"') + 1:].split():  # the fields after the user agent
        result = RESULTS.get(token.rpartition("=")[2].upper())
        if result is not None:
            return result
    quoted = line.split('"', 6)  # request, referer and user agent are the first three quoted
    return _from_upstream_time(quoted[6]) if len(quoted) == 7 else UNKNOWN


def _from_upstream_time(text: str) -> str:
    match = _UPSTREAM_TIME.search(text)
    if match is None:
        return UNKNOWN
    return HIT if match.group(1) == "-" else MISS


class CacheRequestTally:
    """Cumulative (pattern, result) counts of one source; see the module docstring."""

    def __init__(self, patterns_max: int = PATTERNS_MAX) -> None:
        self.patterns_max = patterns_max
        self.counts: Counter[tuple[str, str]] = Counter()
        self._patterns: set[str] = set()

    def add(self, lines: Sequence[str], targets: Sequence[str],
            pattern_of: Callable[[str], str]) -> None:
        """Count `targets`, parsed from `lines` in order. When some lines were malformed
        the two no longer pair up, and the batch's requests are counted as `unknown`."""
        lines = [line for line in lines if line.strip()]
        if len(lines) == len(targets) and _ANY_STATUS.search("\n".join(lines)):
            pairs = Counter(zip(targets, map(cache_result, lines), strict=True))
        else:
            pairs = Counter((target, UNKNOWN) for target in targets)
        for (target, result), count in pairs.items():
            self.counts[(self._bounded(pattern_of(target)), result)] += count

    def _bounded(self, pattern: str) -> str:
        if pattern in self._patterns:
            return pattern
        if len(self._patterns) >= self.patterns_max:
            return OTHER
        self._patterns.add(pattern)
        return pattern

    def rows(self) -> tuple[Row, ...]:
        """Every (pattern, result, requests) counted so far."""
        return tuple((pattern, result, count) for (pattern, result), count in self.counts.items())
