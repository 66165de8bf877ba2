"""The warm-up side of a daemon, started after Raft is up and stopped before it goes down.

Every node: the log pipeline (tail -> analysis worker -> summaries through Raft) when
`[sources]` are configured, and the executor (tasks it is assigned, run through the warm
runner). Every node also runs the cache watcher and the scheduling and planning loops,
which act only while the node leads (so a new leader takes over at once).
A node with `[executor] enabled = false` is a Raft-only member: it analyses its logs but
neither executes, schedules nor plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from warmd.cache.configured import ConfiguredCaches
from warmd.clock import Clock, SystemClock
from warmd.config import Config
from warmd.errors import CacheError
from warmd.runtime.execute.executor import Executor, ExecutorOptions
from warmd.runtime.execute.task_runner import RunnerSettings, SpecRunner
from warmd.runtime.ingest.pipeline import LogPipeline
from warmd.runtime.leader.cache_watch import CacheWatcher, WatchSettings
from warmd.runtime.leader.planning import PlanningLoop, watched_caches
from warmd.runtime.leader.scheduling import SchedulingLoop, SchedulingOptions
from warmd.runtime.node.driver import Driver


class WarmupServices:
    """Builds and owns the pipeline, executor, watcher and loops of one node."""

    def __init__(self, config: Config, driver: Driver,
                 executor_options: ExecutorOptions | None, clock: Clock | None = None) -> None:
        self.config = config
        self.driver = driver
        self.clock = clock or SystemClock()
        self.executor_options = executor_options
        self.caches: ConfiguredCaches | None = None
        self.runner: SpecRunner | None = None
        self.pipeline: LogPipeline | None = None
        self.watcher: CacheWatcher | None = None
        self.executor: Executor | None = None
        self.planning: PlanningLoop | None = None
        self.scheduling: SchedulingLoop | None = None

    def start(self) -> list[asyncio.Task[None]]:
        """Create every service and return their running tasks (the daemon cancels them)."""
        tasks = []
        if self.config.sources:
            self.pipeline = LogPipeline(self.config.node.node_id, self.config.sources,
                                        self.config.analysis, self.driver.propose,
                                        clock=self.clock)
            tasks.append(asyncio.create_task(self.pipeline.run()))
        options = self.executor_options
        if options is None:
            return tasks
        self.caches = ConfiguredCaches(self.config.caches)
        self.runner = SpecRunner(self.caches, RunnerSettings(options.batch_keys,
                                                             options.keys_per_second))
        self.executor = Executor(self.driver, self.runner, options, self.clock)
        self.scheduling = SchedulingLoop(self.driver, SchedulingOptions(), random.Random(),
                                         self.clock)
        tasks += [asyncio.create_task(self.executor.run()),
                  asyncio.create_task(self.scheduling.run())]
        if self.config.planner.enabled:
            tasks += self._start_planning()
        return tasks

    def _start_planning(self) -> list[asyncio.Task[None]]:
        assert self.caches is not None
        tasks = []
        watched = {name: self.caches.backends[name] for name in watched_caches(self.config)
                   if name in self.caches.backends}
        if watched:
            settings = WatchSettings(interval_s=self.config.planner.watch_interval_ms / 1000)
            self.watcher = CacheWatcher(watched, settings)
            tasks.append(asyncio.create_task(self.watcher.run()))
        self.planning = PlanningLoop(self.driver, self.config, self.watcher, self.clock)
        tasks.append(asyncio.create_task(self.planning.run()))
        return tasks

    async def close(self) -> None:
        """Stop the analysis workers and close every connection (tasks already cancelled)."""
        if self.pipeline is not None:
            await asyncio.to_thread(self.pipeline.close)
        if self.runner is not None:
            await self.runner.close()
        if self.caches is not None:
            with contextlib.suppress(CacheError, OSError):
                await self.caches.close()
