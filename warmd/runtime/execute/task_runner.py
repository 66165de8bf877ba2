"""From a replicated task to a warm-up run: the spec's loader, target and limits, wired up.

The executor hands every task it owns to `SpecRunner.run`. The task's spec says how to load
(see TaskSpec.loader): "replay" GETs each request line from the http cache `target`, so the
service's own read-through cache fills; "fetch" GETs `loader_url` and writes the body under
the task's cache keys into `target`; "plugin:NAME" uses a loader plugin; "" writes each key
itself (tests and chaos runs). Everything but "" goes through the WarmRunner, so the origin
limiter, TTL jitter, memory guard and verification apply to the daemon's tasks too.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

from warmd import metrics
from warmd.cache.configured import ConfiguredCaches, warm_up_headers
from warmd.cache.http import HttpClient
from warmd.clock import Clock, SystemClock
from warmd.errors import CacheError, ConfigError
from warmd.hooks.base import WarmRequest
from warmd.hooks.loaders import FetchLoader, ReplayLoader
from warmd.hooks.registry import HookRegistry
from warmd.hooks.task import (
    LimitConfig,
    ProgressCallback,
    TaskOutcome,
    WarmLimits,
    WarmResult,
    WarmTask,
)
from warmd.runtime.execute.key_writer import KeyTask, KeyWriterRunner, run_result
from warmd.runtime.execute.warmer import WarmRunner
from warmd.statemachine.commands import TaskSpec
from warmd.statemachine.state import TaskRecord

DEFAULT_TTL_S = 3600
PROGRESS_BATCH_REQUESTS = 50  # requests per checkpoint through Raft for loader tasks
# ...but a replay batch goes to the HTTP client in one call (runtime/execute/replay.py) and
# ends when its slowest request does: 50 would leave most of 64 connections idle at each
# batch's end and propose a checkpoint every 50 GETs. A reassigned replay task repeats at
# most this many GETs, which are idempotent.
REPLAY_BATCH_REQUESTS = 500


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """Executor-wide defaults: keys per write and checkpoint for "" tasks, a rate cap per
    task (0: none), and the TTL of tasks that name none."""

    batch_keys: int = 10
    keys_per_second: float = 0.0
    default_ttl_s: int = DEFAULT_TTL_S


class SpecRunner:
    """Runs replicated tasks; one WarmRunner (and its shared origin limiters) for all."""

    def __init__(self, caches: ConfiguredCaches, settings: RunnerSettings,
                 registry: HookRegistry | None = None, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self.caches = caches
        self.settings = settings
        self.registry = registry or HookRegistry()
        for name, client in caches.http.items():
            self.registry.add(ReplayLoader(client, name=f"replay:{name}"))
        self.warm_runner = WarmRunner(caches.backends, self.registry, self._clock)
        self.key_writer = KeyWriterRunner(settings.batch_keys, settings.keys_per_second,
                                          self._clock)
        self._fetch_clients: list[HttpClient] = []

    async def run(self, task: TaskRecord, progress: ProgressCallback | None = None
                  ) -> WarmResult:
        """Run `task` from its checkpoint; a task whose spec cannot run here fails clearly."""
        result = await self._run(task, progress)
        metrics.task_finished(task.spec.target, self.caches.kind(task.spec.target) or "",
                              result.outcome.value, result.duration_s, result.keys_ok,
                              result.keys_failed, result.bytes_written)
        return result

    async def _run(self, task: TaskRecord, progress: ProgressCallback | None) -> WarmResult:
        spec = task.spec
        if not spec.loader:
            return await self.key_writer.run(KeyTask(
                task_id=task.task_id, keys=spec.keys, target=spec.target,
                ttl_s=spec.ttl_s or self.settings.default_ttl_s,
                value=spec.value.encode() if spec.value else None, checkpoint=task.checkpoint),
                progress)
        try:
            warm_task = self.warm_task(task)
        except ConfigError as error:
            empty = WarmTask(task_id=task.task_id, requests=(), target="", loader=spec.loader,
                             checkpoint=task.checkpoint)
            return run_result(empty, TaskOutcome.FAILED, 0, self._clock.monotonic(), task.checkpoint,
                              str(error))
        result = await self.warm_runner.run(warm_task, progress)
        if result.outcome == TaskOutcome.SUCCEEDED and result.keys_failed and not result.keys_ok:
            sample = result.failures[0].reason if result.failures else "every request failed"
            return _failed(result, f"all {result.keys_failed} requests failed: {sample}")
        return result

    def warm_task(self, task: TaskRecord) -> WarmTask:
        """The WarmTask for a loader task. Raises: ConfigError (unknown cache or loader)."""
        spec = task.spec
        loader, target = self._loader_and_target(task.task_id, spec)
        keys = spec.cache_keys or ("",) * len(spec.keys)
        requests = tuple(WarmRequest(path=path, key=key)
                         for path, key in zip(spec.keys, keys, strict=True))
        origin = LimitConfig(rate_per_s_max=float(spec.rate_per_s),
                             latency_objective_s=spec.slo_latency_ms / 1000,
                             objective_percentile=spec.slo_permille / 10 or 99.0,
                             **({"concurrency_max": spec.concurrency,
                                 "concurrency_initial": min(8, spec.concurrency)}
                                if spec.concurrency else {}))
        limits = WarmLimits(origin=origin, ttl_s=spec.ttl_s or self.settings.default_ttl_s,
                            ttl_jitter_ratio=spec.ttl_jitter_permille / 1000,
                            batch_keys=REPLAY_BATCH_REQUESTS if spec.loader == "replay"
                            else PROGRESS_BATCH_REQUESTS)
        return WarmTask(task_id=task.task_id, requests=requests, target=target, loader=loader,
                        limits=limits, checkpoint=task.checkpoint)

    def _loader_and_target(self, task_id: str, spec: TaskSpec) -> tuple[str, str]:
        """(registered loader name, backend name or "") for the spec."""
        kind = self.caches.kind(spec.target)
        if spec.loader == "replay":
            if kind != "http":
                raise ConfigError(f"task {task_id}: replay needs an http cache, and "
                                  f"{spec.target!r} is {kind or 'not configured here'}")
            return f"replay:{spec.target}", ""
        if kind is None or kind == "http":
            raise ConfigError(f"task {task_id}: target {spec.target!r} is "
                              f"{'an http cache' if kind else 'not configured here'}; "
                              f"loader {spec.loader!r} writes to a key-value cache")
        if spec.loader == "fetch":
            return self._fetch_loader(spec), spec.target
        if spec.loader.startswith("plugin:"):
            name = spec.loader.removeprefix("plugin:")
            try:
                self.registry.get("loader", name)
            except LookupError as error:  # not installed on this node: the task fails saying so
                raise ConfigError(f"task {task_id}: {error.args[0]}") from None
            return name, spec.target
        raise ConfigError(f"task {task_id}: unknown loader {spec.loader!r}")

    def _fetch_loader(self, spec: TaskSpec) -> str:
        """A fetch loader per URL template. The planner renders each request's URL from the
        rule's `load fetch` template into the task's keys, so the default template is the
        key itself; `loader_url` (with {path}) is for tasks submitted by hand."""
        template = spec.loader_url or "{path}"
        name = f"fetch:{template}"
        if name not in self.registry.plugins["loader"]:
            client = HttpClient(headers=warm_up_headers())
            self._fetch_clients.append(client)
            self.registry.add(FetchLoader(client, template, name=name))
        return name

    async def close(self) -> None:
        """Close the key writer's backends and the fetch clients (the caches' owner closes
        the configured caches)."""
        await self.key_writer.close()
        for client in self._fetch_clients:
            with contextlib.suppress(CacheError, OSError):
                await client.close()


def _failed(result: WarmResult, reason: str) -> WarmResult:
    return replace(result, outcome=TaskOutcome.FAILED, reason=reason)
