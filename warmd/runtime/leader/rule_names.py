"""What rule files on this node may refer to: its caches, installed plugins and time zones.

Both the leader's planner (compiling the committed set) and the rule commands (checking a
set before it is proposed) must use the same names, so they come from here.
"""

from __future__ import annotations

import functools
import zoneinfo

from warmd.config import Config
from warmd.rules.compile import KnownNames


def known_names(config: Config, plugins: frozenset[str] = frozenset()) -> KnownNames:
    """What rule files on this node may refer to: its configured caches, the plugins it
    loaded (`plugins`; a declared plugin outside them is an error) and the tz database."""
    return KnownNames({cache.name: cache.kind for cache in config.caches}, plugins,
                      _zones(), installed=plugins)


@functools.cache
def _zones() -> frozenset[str] | None:
    """The tz database's zone names (read once: it scans the disk), None when it is absent."""
    zones = frozenset(zoneinfo.available_timezones()) | {"UTC"}
    return zones if len(zones) > 1 else None
