"""The executor: on every node (voter or learner), run the tasks the replicated state gives it.

It registers the node, heartbeats through Raft, and watches the locally applied state for
ASSIGNED or RUNNING tasks owned by this node. Each is run under its fence (the log index of
its assignment): Start, then the Runner with progress checkpoints, then Finish or Fail, all
carrying the fence. A slot never waits for a commit: the node takes `prefetch` tasks per slot
ahead of its free slots, the run writes while its Start commits, checkpoints go one at a time
in the background (checkpoints.py), and the slot takes its next task while the Finish
commits (docs/lifecycle.md, "Pipelining"). Its reports share log entries (reports.py), and
with `prefetch = "auto"` it holds as many tasks ahead as cover a refill (prefetch.py).
Whenever the local state shows the fence superseded (the leader released and reassigned the
task after this node went silent), the run is cancelled at once; a report that still reaches the log with the old fence is refused
there and counted. A restarted executor first catches up (a ReadIndex read), then ADOPTS
the tasks the state says it owns: a RUNNING one resumes from its checkpoint without a new
Start, so nothing sticks in RUNNING.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Protocol

from warmd import metrics
from warmd.clock import Clock, SystemClock
from warmd.config import ExecutorConfig
from warmd.errors import ConfigError
from warmd.hooks.task import ProgressCallback, TaskOutcome, WarmResult, WarmTask
from warmd.logging import get_logger
from warmd.raft.errors import RaftError
from warmd.runtime.execute.checkpoints import Checkpoints, FenceLost
from warmd.runtime.execute.key_writer import run_result
from warmd.runtime.execute.prefetch import PrefetchTuner
from warmd.runtime.execute.reports import ReportSender
from warmd.runtime.node.driver import Driver, DriverStopped
from warmd.statemachine.commands import (
    Command,
    Fail,
    Finish,
    Heartbeat,
    RegisterNode,
    ReportProgress,
    Start,
)
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.state import ACTIVE_STATES, Applied, ApplyResult, TaskRecord, refusal_reason
from warmd.statemachine.topics import Topic

_SETTLED_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED})
_log = get_logger("warmd.executor")
# Reconcile at least this often even without a change notice: a safety net, not the path.
RECONCILE_IDLE_S = 1.0
HEARTBEATS_IN_FLIGHT_MAX = 8  # heartbeats awaiting their commit (stalled ones time out)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorOptions:
    """How this node executes. capacity: tasks at once (0: never assigned any);
    lease_ms: silence after which the leader declares the node dead and takes its tasks
    back; heartbeat_interval_s: well under the lease; batch_keys: keys per write and per
    progress checkpoint; keys_per_second: a rate cap per task (0: none); prefetch: tasks
    per slot the node holds assigned beyond those it runs, so a slot that ends a task
    starts the next at once instead of waiting for its Finish, a scheduling pass and an
    Assign to commit (the node registers capacity x (1 + prefetch) as what it holds);
    prefetch_auto: start at `prefetch` and follow what the measured refill latency and
    write time call for (prefetch.py), re-registering when it changes."""

    capacity: int = 4
    lease_ms: int = 3_000
    heartbeat_interval_s: float = 0.5
    retry_pause_s: float = 0.1
    batch_keys: int = 10
    keys_per_second: float = 0.0
    prefetch: int = 1
    prefetch_auto: bool = True

    def __post_init__(self) -> None:
        if self.capacity < 0 or self.lease_ms < 1 or self.batch_keys < 1 or self.prefetch < 0:
            raise ConfigError("executor needs capacity >= 0, lease_ms >= 1, batch_keys >= 1, "
                              "prefetch >= 0")
        if self.heartbeat_interval_s * 1000 >= self.lease_ms:
            raise ConfigError(
                f"executor heartbeat_interval_s ({self.heartbeat_interval_s}) must be shorter "
                f"than the lease ({self.lease_ms} ms)")
        if self.keys_per_second < 0 or self.retry_pause_s <= 0:
            raise ConfigError("executor keys_per_second >= 0 and positive intervals required")

    @classmethod
    def from_config(cls, config: ExecutorConfig) -> ExecutorOptions | None:
        """Options from the `[executor]` config section; None when `enabled = false`, meaning
        "this node runs no executor and no scheduling loop" (a Raft-only member)."""
        if not config.enabled:
            return None
        return cls(
            capacity=config.capacity,
            lease_ms=config.lease_ms,
            heartbeat_interval_s=config.heartbeat_interval_ms / 1000,
            batch_keys=config.batch_keys,
            keys_per_second=float(config.keys_per_second),
            prefetch=1 if config.prefetch == "auto" else int(config.prefetch),
            prefetch_auto=config.prefetch == "auto",
        )

    @property
    def holds(self) -> int:
        """The capacity the node registers first: tasks it may hold assigned, running or
        queued (with prefetch_auto, the executor's `holds` follows its tuner)."""
        return self.capacity * (1 + self.prefetch)


class TaskRunner(Protocol):
    """Runs one replicated task from its checkpoint (warmd/runtime/task_runner.SpecRunner)."""

    async def run(self, task: TaskRecord, progress: ProgressCallback | None = None
                  ) -> WarmResult: ...


def result_text(result: WarmResult) -> str:
    """The result recorded on a finished task: a JSON object of fields (warmctl shows them
    as fields, scripts read them without parsing prose)."""
    fields = {"keys_ok": result.keys_ok, "keys_failed": result.keys_failed,
              "origin_p50_ms": None if result.origin_p50_ms is None
              else round(result.origin_p50_ms, 1),
              "duration_s": round(result.duration_s, 3)}
    return json.dumps(fields, separators=(",", ":"))


class Executor:
    """Runs this node's share of the tasks; `await run()` until cancelled."""

    def __init__(self, driver: Driver, runner: TaskRunner, options: ExecutorOptions,
                 clock: Clock | None = None) -> None:
        self._driver = driver
        self._runner = runner
        self.options = options
        self._clock = clock or SystemClock()
        self.node_id = driver.node_id
        self._running: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(max(1, options.capacity))  # runs writing at once
        self.reports = ReportSender(self._driver.propose, self._clock)  # Start, Finish, ...
        self.prefetch = options.prefetch  # tasks per slot held ahead, as last registered
        self._tuner = PrefetchTuner(options.prefetch) if options.prefetch_auto else None
        self._reregistering: asyncio.Task[None] | None = None
        self.superseded_runs = 0  # runs stopped because the fence moved on

    async def run(self) -> None:
        """Catch up, register, then heartbeat and reconcile until cancelled."""
        heartbeats: asyncio.Task[None] | None = None
        try:
            await self._catch_up()
            await self._register()
            heartbeats = asyncio.create_task(self._heartbeat_forever())
            await self._reconcile_forever()
        finally:
            if heartbeats is not None:
                heartbeats.cancel()
            if self._reregistering is not None:
                self._reregistering.cancel()
            for running in list(self._running.values()):
                running.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)
            await self.reports.close()

    async def _reconcile_forever(self) -> None:
        """Reconcile whenever the tasks change (assignments, releases), not on a poll."""
        changes = self._driver.changes.subscribe({Topic.TASKS})
        try:
            while True:
                try:
                    self._reconcile()
                except Exception:  # never stop watching for our tasks
                    _log.exception("executor_reconcile_crashed")
                await changes.wait(RECONCILE_IDLE_S)
        finally:
            changes.close()

    async def _catch_up(self) -> None:
        """Wait for a ReadIndex read, so adoption sees every assignment made before we started."""
        while True:
            try:
                await self._driver.read()
                return
            except DriverStopped:
                raise
            except RaftError:
                await self._clock.sleep(self.options.retry_pause_s)

    async def _register(self) -> None:
        """Register what the node holds now, again if the tuner changed it meanwhile."""
        options = self.options
        while True:
            holds = self.holds
            result = await self._propose(RegisterNode(
                node_id=self.node_id, capacity=holds, lease_ms=options.lease_ms,
                now_ms=self._clock.wall_ms()))
            if isinstance(result, Applied):
                _log.info("executor_registered", node_id=self.node_id, capacity=options.capacity,
                          prefetch=self.prefetch, lease_ms=options.lease_ms,
                          prefetch_auto=options.prefetch_auto)
                if holds == self.holds:
                    return
                continue
            await self._clock.sleep(options.retry_pause_s)

    @property
    def holds(self) -> int:
        """What the node registers as the tasks it holds: its slots and those queued ahead."""
        return self.options.capacity * (1 + self.prefetch)

    def _tune(self, write_s: float) -> None:
        """Feed the tuner a slot's write time; re-register when it wants another prefetch."""
        if self._tuner is None:
            return
        state, now_ms = self._driver.state, self._clock.wall_ms()
        waiting = bool(state.index.ready) or bool(state.index.opening.up_to(now_ms, 1))
        self._tuner.wrote(self._clock.monotonic(), write_s, waiting)
        prefetch = self._tuner.maybe_change(self._clock.monotonic())
        if prefetch is None:
            return
        _log.info("executor_prefetch_changed", node_id=self.node_id, prefetch=prefetch,
                  was=self.prefetch)
        self.prefetch = prefetch
        if self._reregistering is None or self._reregistering.done():
            self._reregistering = asyncio.create_task(self._register())

    async def _heartbeat_forever(self) -> None:
        """A heartbeat every interval, whether or not the last one committed: one forwarded
        to a leader that just died waits for its proposal timeout (longer than a lease), and
        waiting for it would get this node declared dead by the next leader."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                await self._clock.sleep(self.options.heartbeat_interval_s)
                if len(in_flight) < HEARTBEATS_IN_FLIGHT_MAX:
                    beat = asyncio.create_task(self._heartbeat())
                    in_flight.add(beat)
                    beat.add_done_callback(in_flight.discard)
        finally:
            for beat in list(in_flight):
                beat.cancel()

    async def _heartbeat(self) -> None:
        try:
            await self._propose(Heartbeat(node_id=self.node_id, now_ms=self._clock.wall_ms(),
                                          fsync_p99_us=_fsync_p99_us()))
        except DriverStopped:
            return
        except Exception:  # a silent node loses its tasks: never stop heartbeating
            _log.exception("executor_heartbeat_crashed")

    async def _propose(self, command: Command) -> ApplyResult | None:
        """Propose once; None when Raft could not take it now (no leader, timeout)."""
        try:
            return await self._driver.propose(command)
        except DriverStopped:
            raise
        except RaftError as error:
            _log.debug("executor_propose_failed", command=type(command).__name__, error=str(error))
            return None

    # ------------------------------------------------------------------ reconciling

    def owned(self) -> dict[tuple[str, int], TaskRecord]:
        """The ASSIGNED or RUNNING tasks the local state says this node owns, by (id, fence)."""
        return {(task.task_id, task.fence): task
                for task in self._driver.state.owned_by(self.node_id)}

    def _reconcile(self) -> None:
        """Start runs for newly owned tasks; cancel runs whose fence was superseded."""
        owned = self.owned()
        for key, running in list(self._running.items()):
            if running.done():
                del self._running[key]
            elif key not in owned:
                if not self._settled(*key):
                    self.superseded_runs += 1
                    _log.warning("executor_fence_superseded", task_id=key[0], fence=key[1])
                    running.cancel()
                del self._running[key]
        # Oldest assignment first: runs queue for a slot in the order they were assigned.
        new = sorted((key for key in owned if key not in self._running), key=lambda key: key[1])
        for key in new:
            self._running[key] = asyncio.create_task(self._run_task(*key))
        if self._tuner is not None and new:
            self._tuner.assigned(self._clock.monotonic(), len(new))

    def _settled(self, task_id: str, fence: int) -> bool:
        """The run's own Finish or Fail was applied (the run is logging it), or the task is
        gone: only ended tasks leave the table (a finished plan compacted). Not superseded."""
        task = self._driver.state.tasks.get(task_id)
        return task is None or (task.fence == fence and task.state in _SETTLED_STATES)

    def _holds(self, task_id: str, fence: int) -> TaskRecord | None:
        task = self._driver.state.tasks.get(task_id)
        if task is None or task.owner != self.node_id or task.fence != fence:
            return None
        return task if task.state in ACTIVE_STATES else None

    async def _run_task(self, task_id: str, fence: int) -> None:
        """Run under the fence: wait for a free slot (tasks taken ahead wait here), write
        while the Start commits, and free the slot before the Finish commits."""
        started: asyncio.Task[bool] | None = None
        try:
            async with self._slots:
                task = self._holds(task_id, fence)
                if task is None:
                    return
                started = asyncio.create_task(self._start(task_id, fence))
                result = await self._write(task, started)
                self._tune(result.duration_s)
            if not await started:
                raise FenceLost(task_id)
            await self._settle(task_id, fence, result)
        except FenceLost:
            self.superseded_runs += 1
            _log.warning("executor_fence_lost", task_id=task_id, fence=fence)
        finally:
            if started is not None and not started.done():
                started.cancel()

    async def _write(self, task: TaskRecord, started: asyncio.Task[bool]) -> WarmResult:
        """The runner's run from the checkpoint, its checkpoints proposed in the background
        once `started` says the Start is in the log."""
        checkpoints = Checkpoints(self._progress(task.task_id, task.fence), started)
        waited_ms = self._clock.wall_ms() - max(task.submitted_ms, task.not_before_ms)
        metrics.task_started(waited_ms / 1000)
        try:
            return await self._runner.run(task, checkpoints.report)
        except (FenceLost, DriverStopped):
            raise
        except Exception as error:  # a runner bug fails its task, never the executor
            _log.exception("executor_runner_crashed", task_id=task.task_id, fence=task.fence)
            empty = WarmTask(task_id=task.task_id, requests=(), target="", loader="",
                             checkpoint=task.checkpoint)
            return run_result(empty, TaskOutcome.FAILED, 0, self._clock.monotonic(),
                              task.checkpoint, f"runner crashed: {error!r}")
        finally:
            await checkpoints.close()

    async def _start(self, task_id: str, fence: int) -> bool:
        """Propose Start unless the task is already RUNNING under our fence (adoption)."""
        while (task := self._holds(task_id, fence)) is not None:
            if task.state == TaskState.RUNNING:
                if task.checkpoint:
                    _log.info("executor_resuming", task_id=task_id, fence=fence,
                              checkpoint=task.checkpoint)
                return True
            started = await self.reports.propose(Start(task_id=task_id, node_id=self.node_id,
                                                fence=fence, now_ms=self._clock.wall_ms()))
            if isinstance(started, Applied):
                _log.info("task_transition", command="Start", task_id=task_id,
                          plan_id=self._plan_of(task_id), node_id=self.node_id, fence=fence)
            task = self._holds(task_id, fence)
            if task is not None and task.state != TaskState.RUNNING:
                await self._clock.sleep(self.options.retry_pause_s)
        return False

    def _progress(self, task_id: str, fence: int) -> ProgressCallback:
        """Propose one checkpoint until the log takes it; FenceLost once the task is not ours."""
        async def report(keys_done: int) -> None:
            while True:
                result = await self.reports.propose(ReportProgress(
                    task_id=task_id, node_id=self.node_id, fence=fence, keys_done=keys_done,
                    now_ms=self._clock.wall_ms()))
                task = self._holds(task_id, fence)
                if task is None:
                    raise FenceLost(task_id)
                if result is not None:
                    return  # applied, or refused while we still hold the fence: go on
                await self._clock.sleep(self.options.retry_pause_s)
        return report

    def _plan_of(self, task_id: str) -> str:
        """The task's plan id for log events ("" for a task submitted by hand)."""
        task = self._driver.state.tasks.get(task_id)
        return task.spec.plan_id if task is not None else ""

    async def _settle(self, task_id: str, fence: int, result: WarmResult) -> None:
        """Finish or Fail under the fence, retrying until the log has taken it."""
        while self._holds(task_id, fence) is not None:
            if result.outcome == TaskOutcome.SUCCEEDED:
                command: Finish | Fail = Finish(task_id=task_id, node_id=self.node_id, fence=fence,
                                          now_ms=self._clock.wall_ms(), result=result_text(result))
            else:
                command = Fail(task_id=task_id, node_id=self.node_id, fence=fence,
                               now_ms=self._clock.wall_ms(), error=result.reason[:200] or result.outcome.value)
            outcome = await self.reports.propose(command)
            if outcome is not None:
                _log.info("task_transition", command=type(command).__name__, task_id=task_id,
                          plan_id=self._plan_of(task_id), node_id=self.node_id, fence=fence,
                          outcome=result.outcome.value, keys_ok=result.keys_ok,
                          keys_failed=result.keys_failed, write_s=round(result.duration_s, 4),
                          applied=isinstance(outcome, Applied))
                if not isinstance(outcome, Applied):
                    _log.warning("executor_settle_refused", task_id=task_id, fence=fence,
                                 reason=refusal_reason(outcome))
                return
            await self._clock.sleep(self.options.retry_pause_s)


def _fsync_p99_us() -> int:
    """This node's WAL fsync p99 since it started, for its heartbeat (-1: no fsync yet)."""
    bound_s = metrics.histogram_quantile(metrics.WAL_FSYNC, 0.99)
    return -1 if bound_s is None else round(bound_s * 1_000_000)
