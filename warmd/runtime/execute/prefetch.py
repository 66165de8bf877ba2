"""How many tasks per slot a node holds ahead when `prefetch = "auto"`: as many as cover a refill.

A slot that ends a task starts the next at once only if one is already assigned to the
node. The hold its task freed comes back as a new assignment after the refill latency R:
the Finish's commit, the wait for the leader's next scheduling pass (at most one per
100 ms) and that pass's commit. A slot ends a task every W (its write time), so it needs
R / W tasks queued behind the one it runs. The tuner measures both over the newest SAMPLES
and answers ceil(R / W) within [1, maximum], with R the 90th percentile of the refills (a
refill waits for a pass and two commits, and it is the slow ones that leave a slot idle)
and W the median write: near 1 when writes are slow (a loaded
machine, big tasks), more when a task is written faster than a refill comes (a quiet
machine, 1,000-key tasks: ~30 ms writes against ~100-150 ms refills). More than needed only
lengthens a plan's tail (a node's queue runs on after the others ran dry) and what a dead
node holds until its lease runs out, hence the bound. Times are monotonic seconds passed in.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

SAMPLES = 32  # the newest write times and refills the tuner judges on
REFILL_QUANTILE = 0.9
SAMPLES_MIN = 8  # no change before this many of each
REFILL_MAX_S = 5.0  # a freed hold not refilled this long: no work came, not a refill
CHANGE_INTERVAL_S = 2.0  # a node re-registers its holds at most this often
PREFETCH_AUTO_MAX = 8
FREED_KEPT = 256


@dataclass(slots=True)
class PrefetchTuner:
    """Measures W and R, and says when the node should hold a different number ahead."""

    prefetch: int  # what the node registered last
    maximum: int = PREFETCH_AUTO_MAX
    writes_s: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    refills_s: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    # holds freed, not yet refilled (bounded: a node refilled by no one must not grow it)
    freed_s: deque[float] = field(default_factory=lambda: deque(maxlen=FREED_KEPT))
    changed_s: float = -math.inf

    def wrote(self, now_s: float, write_s: float, work_waiting: bool) -> None:
        """A slot ended a task that took `write_s`; its hold is freed. `work_waiting`: the
        state has tasks waiting for a node, so a refill should follow (else none is due)."""
        self.writes_s.append(write_s)
        if work_waiting:
            self.freed_s.append(now_s)

    def assigned(self, now_s: float, count: int) -> None:
        """`count` new tasks were assigned to the node: each refills the oldest freed hold."""
        while self.freed_s and now_s - self.freed_s[0] > REFILL_MAX_S:
            self.freed_s.popleft()
        for _ in range(min(count, len(self.freed_s))):
            self.refills_s.append(now_s - self.freed_s.popleft())

    def target(self) -> int:
        """ceil(R / W) within [1, maximum]; the current value until both are measured."""
        if len(self.writes_s) < SAMPLES_MIN or len(self.refills_s) < SAMPLES_MIN:
            return self.prefetch
        write_s = max(statistics.median(self.writes_s), 1e-3)
        refill_s = sorted(self.refills_s)[int(REFILL_QUANTILE * (len(self.refills_s) - 1))]
        wanted = math.ceil(refill_s / write_s)
        return max(1, min(self.maximum, wanted))

    def maybe_change(self, now_s: float) -> int | None:
        """The new prefetch to register, or None: unchanged, or changed too recently."""
        target = self.target()
        if target == self.prefetch or now_s - self.changed_s < CHANGE_INTERVAL_S:
            return None
        self.prefetch, self.changed_s = target, now_s
        return target
