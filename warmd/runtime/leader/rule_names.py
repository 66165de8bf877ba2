"""What rule files on this node may refer to: the names of its caches and time zones.

Both the leader's planner (compiling the committed set) and the rule commands (checking a
set before it is proposed) must use the same names, so they come from here.
"""

from __future__ import annotations

import zoneinfo

from warmd.config import Config
from warmd.rules.compile import KnownNames


def known_names(config: Config) -> KnownNames:
    """What rule files on this node may refer to: its configured caches and the tz database."""
    zones = frozenset(zoneinfo.available_timezones()) | {"UTC"}
    return KnownNames({cache.name: cache.kind for cache in config.caches}, frozenset(),
                      zones if len(zones) > 1 else None)
