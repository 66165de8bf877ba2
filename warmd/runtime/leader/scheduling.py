"""The scheduling centre: on the leader only, run `warmd.scheduler.decide` when it may act.

A pass runs when the tasks, nodes or leadership changed (the change feed), or when the
earliest timer in the state is due (`next_due_ms`: a lease, a deadline, a backoff), and
at least every IDLE_PASS_S while leading (heartbeats alone do not wake it, so without this
a pass that failed, e.g. on a read point lost to a term change, would leave READY tasks
unplaced until something else changed; a failed pass is retried after FAILED_PASS_RETRY_S);
never more often than `interval_s`.

Each pass first makes the local state linearizable (a ReadIndex read, so a new leader sees
every committed entry before deciding), stamps the leader's clock as `now_ms`, and proposes
the commands in order, up to PASS_BATCH_COMMANDS to an entry (a `Batch`: each command is
applied as if alone, but the pass costs the log one entry, not one per task). A pass never starts while the previous pass's proposals are still
uncommitted (it awaits them all), and the instant this node stops being leader the pass is
abandoned. The loop keeps nothing between passes, so a new leader continues from the
replicated state alone; a repeated command is refused by the state machine's guards.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from warmd.clock import Clock, SystemClock
from warmd.errors import ConfigError
from warmd.logging import get_logger
from warmd.raft.errors import RaftError
from warmd.runtime.leader.liveness import HeardTracker
from warmd.runtime.node.changes import Subscription
from warmd.runtime.node.driver import Driver, DriverStopped
from warmd.scheduler import SchedulerConfig, decide
from warmd.scheduler.plan import next_due_ms
from warmd.statemachine.commands import Batch, BatchedCommand, Command
from warmd.statemachine.state import Applied, ApplyResult, batch_results, refusal_reason
from warmd.statemachine.topics import Topic

_log = get_logger("warmd.scheduling")
IDLE_PASS_S = 5.0  # a pass at least this often while leading, whatever the feed says
FAILED_PASS_RETRY_S = 0.5  # a pass that failed (no read point, a bug) is retried this soon
# Commands of a pass per log entry: ~80 bytes each, so an entry stays near 80 KB.
PASS_BATCH_COMMANDS = 1_000
WAKING_TOPICS = frozenset({Topic.TASKS, Topic.NODES, Topic.PLANS, Topic.LEADERSHIP})
# Heartbeats only update the leader's view of who is silent; they do not start a pass.
WATCHED_TOPICS = WAKING_TOPICS | {Topic.HEARTBEATS}


@dataclass(frozen=True, slots=True)
class SchedulingOptions:
    """interval_s: the least time between two passes; config: the scheduler's policy."""

    interval_s: float = 0.1
    config: SchedulerConfig = field(default_factory=SchedulerConfig)

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ConfigError(f"scheduling interval_s must be positive, got {self.interval_s}")


@dataclass(slots=True)
class SchedulingCounters:
    """What the loop did, for status and tests."""

    passes: int = 0
    proposed: int = 0
    applied: int = 0
    refused: int = 0
    entries: int = 0  # log entries the commands went in (Batches of a pass)
    abandoned_passes: int = 0


class SchedulingLoop:
    """`await run()` on every node; it acts only while this node is the Raft leader."""

    def __init__(self, driver: Driver, options: SchedulingOptions, rng: random.Random,
                 clock: Clock | None = None) -> None:
        self._driver = driver
        self.options = options
        self._rng = rng
        self._clock = clock or SystemClock()
        self.heard = HeardTracker(self._clock)
        self.counters = SchedulingCounters()
        self._forced_s = float("-inf")  # monotonic time of the next pass whatever the feed says

    def is_leader(self) -> bool:
        return self._driver.is_leader()

    async def run(self) -> None:
        """Pass after pass until cancelled; each is skipped unless this node leads."""
        changes = self._driver.changes.subscribe(WATCHED_TOPICS)
        try:
            await self._run(changes)
        finally:
            changes.close()

    async def _run(self, changes: Subscription) -> None:
        last_pass_s = float("-inf")
        while True:
            changed = await changes.wait(self._idle_s())
            if not self.is_leader():
                self.heard.forget()
                continue
            self.heard.observe(self._driver.state)
            if changed == {Topic.HEARTBEATS} and self._clock.monotonic() < self._forced_s:
                continue
            spacing_s = self.options.interval_s - (self._clock.monotonic() - last_pass_s)
            if spacing_s > 0:
                await self._clock.sleep(spacing_s)
            if not self.is_leader():
                continue
            last_pass_s = self._clock.monotonic()
            self._forced_s = last_pass_s + IDLE_PASS_S
            try:
                await self.run_pass()
            except DriverStopped:
                return
            except RaftError as error:
                # Nothing may change to wake us (heartbeats do not): try again soon.
                self._forced_s = self._clock.monotonic() + FAILED_PASS_RETRY_S
                _log.info("scheduling_pass_failed", error=str(error))
            except Exception:  # a bug in one pass must not end scheduling for good
                self._forced_s = self._clock.monotonic() + FAILED_PASS_RETRY_S
                _log.exception("scheduling_pass_crashed")

    def _idle_s(self) -> float | None:
        """How long to sleep when nothing changes: until the state's next timer is due, or
        the next pass that runs whatever the feed says (IDLE_PASS_S, or a failed pass's
        retry)."""
        if not self.is_leader():
            return None  # the leadership topic wakes us
        state = self._driver.state
        forced_s = max(0.0, self._forced_s - self._clock.monotonic())
        due_ms = next_due_ms(state, self._clock.wall_ms(), self.heard.silence_ms(state))
        if due_ms is None:
            return forced_s
        return min(forced_s, max(0.0, (due_ms - self._clock.wall_ms()) / 1000))

    async def run_pass(self) -> None:
        """One pass: read point, decide, propose all and wait for them (or leadership loss)."""
        await self._driver.read()
        if not self.is_leader():
            return
        state = self._driver.state
        commands = decide(state, self._clock.wall_ms(), self.options.config, self._rng,
                          self.heard.silence_ms(state))
        self.counters.passes += 1
        if not commands:
            return
        entries = pass_entries(commands)
        proposals = [asyncio.ensure_future(self._driver.propose(entry)) for entry in entries]
        self.counters.proposed += len(commands)
        self.counters.entries += len(entries)
        pending = await self._await_unless_deposed(proposals)
        if pending:
            for proposal in pending:
                proposal.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self.counters.abandoned_passes += 1
            _log.info("scheduling_pass_abandoned", reason="leadership lost",
                      outstanding=len(pending))
        for entry, proposal in zip(entries, proposals, strict=True):
            if proposal.done() and not proposal.cancelled() and proposal.exception() is None:
                self._count(entry, proposal.result())

    async def _await_unless_deposed(self, proposals: Sequence[asyncio.Future[ApplyResult]]
                                    ) -> set[asyncio.Future[Any]]:
        """Wait for every proposal, or until this node stops leading; returns the ones
        still pending (none unless leadership was lost)."""
        pending: set[asyncio.Future[Any]] = set(proposals)
        leadership = self._driver.changes.subscribe({Topic.LEADERSHIP})
        try:
            while pending and self.is_leader():
                deposed = asyncio.ensure_future(leadership.wait())
                _, pending = await asyncio.wait(pending | {deposed},
                                                return_when=asyncio.FIRST_COMPLETED)
                deposed.cancel()
                pending.discard(deposed)
        finally:
            leadership.close()
        return pending

    def _count(self, entry: Command, result: ApplyResult) -> None:
        """Count and log each command of an applied (or refused) entry."""
        commands = entry.commands if isinstance(entry, Batch) else (entry,)
        results = batch_results(result, len(commands)) if isinstance(entry, Batch) else [result]
        for command, each in zip(commands, results, strict=True):
            if isinstance(each, Applied):
                self.counters.applied += 1
                task_id = getattr(command, "task_id", "")
                task = self._driver.state.tasks.get(task_id)
                _log.info("task_transition", command=type(command).__name__, task_id=task_id,
                          plan_id=task.spec.plan_id if task is not None else "",
                          node_id=getattr(command, "node_id", 0))
            else:
                self.counters.refused += 1
                _log.debug("scheduling_refused", command=type(command).__name__,
                           reason=refusal_reason(each))


def pass_entries(commands: Sequence[BatchedCommand]) -> list[Command]:
    """A pass's commands as log entries, in order: up to PASS_BATCH_COMMANDS in one Batch
    (one entry instead of one per MarkReady, Assign, Release...); a lone command as itself."""
    entries: list[Command] = []
    for start in range(0, len(commands), PASS_BATCH_COMMANDS):
        chunk = tuple(commands[start:start + PASS_BATCH_COMMANDS])
        entries.append(chunk[0] if len(chunk) == 1 else Batch(commands=chunk))
    return entries
