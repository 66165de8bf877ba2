"""Stop before evicting: watch a backend's memory and evictions between warm batches.

When used memory nears `maxmemory` the warm slows (a pause per batch, longer as it gets
closer); when the next batch would cross the stop line, or evictions rise, it stops and
says why. The projection adds the growth seen over the last batch and the next batch's
own size (its pipeline buffer is charged against maxmemory while it runs).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from warmd.cache.base import BackendStats, CacheBackend


@dataclass(frozen=True, slots=True)
class GuardConfig:
    memory_fill_slow: float = 0.85
    memory_fill_stop: float = 0.95
    slow_pause_s: float = 0.2
    stop_on_evictions: bool = True


class MemoryGuard:
    """Per-task watcher; `check()` sleeps when slowing and returns a stop reason or ''."""

    def __init__(self, backend: CacheBackend, config: GuardConfig, first: BackendStats) -> None:
        self.backend, self.config = backend, config
        self._evictions_start = first.evictions
        self._previous = {n.node: n.memory_bytes for n in first.nodes}
        self.pauses = 0

    @classmethod
    async def start(cls, backend: CacheBackend, limits: object) -> MemoryGuard:
        config = GuardConfig(
            memory_fill_slow=getattr(limits, "memory_fill_slow", 0.85),
            memory_fill_stop=getattr(limits, "memory_fill_stop", 0.95),
            slow_pause_s=getattr(limits, "slow_pause_s", 0.2),
            stop_on_evictions=getattr(limits, "stop_on_evictions", True))
        return cls(backend, config, await backend.stats())

    async def check(self, next_batch_bytes: int = 0) -> str:
        """Pause if memory is in the slow zone; return why to stop ('' to go on).

        `next_batch_bytes` (keys + values about to be sent) is counted as growth too:
        Redis charges a pipeline's query buffer against maxmemory while it executes.
        """
        stats = await self.backend.stats()
        evicted = stats.evictions - self._evictions_start
        if self.config.stop_on_evictions and evicted > 0:
            return f"stopped: the cache evicted {evicted} keys during the warm"
        worst_fill, worst_node = 0.0, ""
        for node in stats.nodes:
            if not node.maxmemory_bytes:
                continue
            growth = max(0, node.memory_bytes - self._previous.get(node.node, node.memory_bytes))
            projected = (node.memory_bytes + growth + next_batch_bytes) / node.maxmemory_bytes
            if projected >= self.config.memory_fill_stop:
                fill = node.memory_bytes / node.maxmemory_bytes
                return (f"stopped before evicting: {node.node} at {fill:.0%} of maxmemory, "
                        f"next batch would pass {self.config.memory_fill_stop:.0%}")
            if projected > worst_fill:
                worst_fill, worst_node = projected, node.node
        self._previous = {n.node: n.memory_bytes for n in stats.nodes}
        if worst_node and worst_fill >= self.config.memory_fill_slow:
            span = max(1e-9, self.config.memory_fill_stop - self.config.memory_fill_slow)
            closeness = (worst_fill - self.config.memory_fill_slow) / span
            self.pauses += 1
            await asyncio.sleep(self.config.slow_pause_s * (1.0 + 4.0 * closeness))
        return ""
