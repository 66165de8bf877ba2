"""The naive warmer the demo measures warmd against: the last day's most requested targets.

This is what a shell script on the access logs does (`sort | uniq -c | sort -rn | head`): no
templates, no time of day, no new keys. It warms the same budget through the same executors,
so the only difference between the two phases is which keys were chosen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from warmd.analysis.formats import COMBINED, LineParser

DAY_S = 86_400.0


def top_targets(paths: Iterable[Path], end_s: float, count: int,
                window_s: float = DAY_S) -> list[str]:
    """The `count` most requested GET targets of the `window_s` before `end_s` over every
    log in `paths`, most requested first (ties by target, so the set is reproducible)."""
    parser = LineParser(COMBINED)
    counts: Counter[str] = Counter()
    for path in paths:
        with open(path) as log:
            for record in parser.parse_many(log):
                if end_s - window_s <= record.time_s < end_s and record.method == "GET":
                    counts[record.target] += 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [target for target, _ in ranked[:count]]
