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
from collections.abc import Sequence

from warmd.cache.configured import ConfiguredCaches, warm_up_user_agents
from warmd.cache.effect import EffectRecorder
from warmd.clock import Clock, SystemClock
from warmd.config import Config
from warmd.errors import CacheError
from warmd.hooks.registry import HookRegistry
from warmd.runtime.execute.executor import Executor, ExecutorOptions
from warmd.runtime.execute.task_runner import RunnerSettings, SpecRunner
from warmd.runtime.ingest.pipeline import LogPipeline, own_traffic_excluded
from warmd.runtime.leader.cache_watch import CacheWatcher, WatchSettings
from warmd.runtime.leader.planning import PlanningLoop, watched_caches
from warmd.runtime.leader.scheduling import SchedulingLoop, SchedulingOptions
from warmd.runtime.node.driver import Driver


class WarmupServices:
    """Builds and owns the pipeline, executor, watcher and loops of one node."""

    def __init__(self, config: Config, driver: Driver,
                 executor_options: ExecutorOptions | None,
                 plugins: HookRegistry | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.driver = driver
        self.clock = clock or SystemClock()
        self.executor_options = executor_options
        self.plugins = plugins or HookRegistry()
        self.caches: ConfiguredCaches | None = None
        self.runner: SpecRunner | None = None
        self.pipeline: LogPipeline | None = None
        self.watcher: CacheWatcher | None = None
        self.executor: Executor | None = None
        self.planning: PlanningLoop | None = None
        self.scheduling: SchedulingLoop | None = None
        self.effects: EffectRecorder | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, adopted: Sequence[asyncio.Task[None]] = ()) -> None:
        """Build every service, then start their tasks; `close()` cancels them (and the
        `adopted` tasks of the caller). Everything is built before anything runs, so a
        service that cannot be built leaves nothing running.

        Raises:
            ConfigError: a cache or source the daemon cannot use.
        """
        self._tasks.extend(adopted)
        if self.config.sources:
            summary_config = own_traffic_excluded(warm_up_user_agents(self.config.caches))
            self.pipeline = LogPipeline(self.config.node.node_id, self.config.sources,
                                        self.config.analysis, self.driver.propose,
                                        clock=self.clock, summary_config=summary_config)
        if self.executor_options is not None:
            self._build_executor(self.executor_options)
        services = (self.pipeline, self.executor, self.scheduling, self.watcher, self.planning)
        self._tasks.extend(asyncio.create_task(service.run())
                           for service in services if service is not None)

    def _build_executor(self, options: ExecutorOptions) -> None:
        self.caches = ConfiguredCaches(self.config.caches)
        # Each task this node runs into a key-value cache is measured after it ends: how many
        # of its keys were read (its effect) and how many never were (its waste).
        self.effects = EffectRecorder(self.caches.backends,
                                      window_s=self.config.planner.effect_window_ms / 1000)
        self.plugins.add(self.effects, "listener")
        self.runner = SpecRunner(self.caches, RunnerSettings(options.batch_keys,
                                                             options.keys_per_second),
                                 self.plugins, self.clock)
        self.executor = Executor(self.driver, self.runner, options, self.clock)
        self.scheduling = SchedulingLoop(self.driver, SchedulingOptions(), random.Random(),
                                         self.clock)
        if not self.config.planner.enabled:
            return
        watched = {name: self.caches.backends[name] for name in watched_caches(self.config)
                   if name in self.caches.backends}
        if watched:
            settings = WatchSettings(interval_s=self.config.planner.watch_interval_ms / 1000)
            self.watcher = CacheWatcher(watched, settings)
        self.planning = PlanningLoop(self.driver, self.config, self.watcher, self.plugins,
                                     self.clock)

    async def close(self) -> None:
        """Cancel every task, stop the analysis workers and close every connection; safe
        whatever `start()` got to."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.pipeline is not None:
            await asyncio.to_thread(self.pipeline.close)
        if self.effects is not None:
            await self.effects.close()
        if self.runner is not None:
            await self.runner.close()
        if self.caches is not None:
            with contextlib.suppress(CacheError, OSError):
                await self.caches.close()
