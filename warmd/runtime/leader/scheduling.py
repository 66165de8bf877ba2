"""The scheduling centre: on the leader only, run `warmd.scheduler.decide` at an interval.

Each pass first makes the local state linearizable (a ReadIndex read, so a new leader sees
every committed entry before deciding), stamps the leader's clock as `now_ms`, and proposes
the commands in order. A pass never starts while the previous pass's proposals are still
uncommitted (it awaits them all), and the instant this node stops being leader the pass is
abandoned. The loop keeps nothing between passes, so a new leader continues from the
replicated state alone; a repeated command is refused by the state machine's guards.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from warmd.errors import ConfigError
from warmd.logging import get_logger
from warmd.raft.errors import RaftError
from warmd.raft.types import Role
from warmd.runtime.node.driver import Driver, DriverStopped
from warmd.scheduler import SchedulerConfig, decide
from warmd.statemachine.commands import Command
from warmd.statemachine.state import Applied

_log = get_logger("warmd.scheduling")
LEADERSHIP_POLL_S = 0.01


@dataclass(frozen=True, slots=True)
class SchedulingOptions:
    """interval_s: pause between passes; config: the scheduler's policy."""

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
    abandoned_passes: int = 0


class SchedulingLoop:
    """`await run()` on every node; it acts only while this node is the Raft leader."""

    def __init__(self, driver: Driver, options: SchedulingOptions, rng: random.Random) -> None:
        self._driver = driver
        self.options = options
        self._rng = rng
        self.counters = SchedulingCounters()

    def is_leader(self) -> bool:
        return self._driver.node.role == Role.LEADER

    async def run(self) -> None:
        """Pass after pass until cancelled; each is skipped unless this node leads."""
        while True:
            await asyncio.sleep(self.options.interval_s)
            if not self.is_leader():
                continue
            try:
                await self.run_pass()
            except DriverStopped:
                return
            except RaftError as error:
                _log.debug("scheduling_pass_failed", error=str(error))
            except Exception:  # a bug in one pass must not end scheduling for good
                _log.exception("scheduling_pass_crashed")

    async def run_pass(self) -> None:
        """One pass: read point, decide, propose all and wait for them (or leadership loss)."""
        await self._driver.read()
        if not self.is_leader():
            return
        state = self._driver.applier.machine.state
        commands = decide(state, int(time.time() * 1000), self.options.config, self._rng)
        self.counters.passes += 1
        if not commands:
            return
        proposals = [asyncio.ensure_future(self._driver.propose(command)) for command in commands]
        self.counters.proposed += len(proposals)
        pending = set(proposals)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=LEADERSHIP_POLL_S)
            if pending and not self.is_leader():
                for proposal in pending:
                    proposal.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                self.counters.abandoned_passes += 1
                _log.info("scheduling_pass_abandoned", reason="leadership lost",
                          outstanding=len(pending))
                break
        self._count(commands, proposals)

    def _count(self, commands: list[Command], proposals: list[asyncio.Future]) -> None:
        for command, proposal in zip(commands, proposals, strict=True):
            if not proposal.done() or proposal.cancelled() or proposal.exception() is not None:
                continue
            if isinstance(proposal.result(), Applied):
                self.counters.applied += 1
                task_id = getattr(command, "task_id", "")
                task = self._driver.applier.machine.state.tasks.get(task_id)
                _log.info("task_transition", command=type(command).__name__, task_id=task_id,
                          plan_id=task.spec.plan_id if task is not None else "",
                          node_id=getattr(command, "node_id", 0))
            else:
                self.counters.refused += 1
                _log.debug("scheduling_refused", command=type(command).__name__,
                           reason=getattr(proposal.result(), "reason", ""))
