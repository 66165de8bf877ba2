"""When a source's summary is worth shipping again: often while it changes, rarely when not.

A summary is cumulative and replaces the node's previous report whole, so every ship costs
its full size on every member's log. Shipping every `ship_interval_ms` whenever a line came
in makes the replicated log grow with hosts x summary size x 360 an hour; a fleet of a
hundred hosts would write gigabytes an hour of summaries that barely differ. So a source
ships at the short interval only while what it has not shipped yet is a real share of what
it has (`ship_change_ratio` of the lines already shipped: a new source, a burst, a shift),
and otherwise at the long interval (`ship_interval_max_ms`), so a quiet source's report
never goes stale for longer than that.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Cadence:
    """The three settings of `[analysis]` that decide it."""

    interval_s: float  # never more often than this
    interval_max_s: float  # never staler than this while lines wait
    change_ratio: float  # unshipped lines / shipped lines that make a ship worth it now


def ship_due(cadence: Cadence, lines_pending: int, lines_shipped: int,
             since_last_ship_s: float | None) -> bool:
    """Whether a source with `lines_pending` unshipped lines should ship now.

    `since_last_ship_s` is None before its first accepted report (ship at once: the leader
    has nothing from it yet).
    """
    if lines_pending <= 0:
        return False
    if since_last_ship_s is None:
        return True
    if since_last_ship_s < cadence.interval_s:
        return False
    if lines_pending >= cadence.change_ratio * lines_shipped:
        return True
    return since_last_ship_s >= cadence.interval_max_s
