"""Three real drivers, executors and scheduling loops on virtual time (ManualClock) over the
in-memory disk and network twins: pick-up is driven by the change feed, an idle leader
does not poll, and a silent executor loses its lease after exactly its lease of virtual
time. No sockets, no fsync, no wall-clock waits: a minute of cluster time runs in seconds.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from warmd.clock import ManualClock
from warmd.config_table import Address
from warmd.hooks.task import ProgressCallback, TaskOutcome, WarmResult
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.errors import ProposalDropped
from warmd.raft.types import ConfState
from warmd.runtime.execute.executor import Executor, ExecutorOptions
from warmd.runtime.leader import scheduling as scheduling_module
from warmd.runtime.leader.scheduling import (
    FAILED_PASS_RETRY_S,
    IDLE_PASS_S,
    SchedulingLoop,
    SchedulingOptions,
)
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.driver import Driver, DriverOptions
from warmd.statemachine.commands import Assign, Command, SubmitTask, TaskSpec
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import Applied, MachineState, TaskRecord
from warmd.testing.fakes import MemoryDisk, MemoryNetwork, SkewedClock

NODES = (1, 2, 3)
LEASE_MS = 3_000
STEP_S = 0.01


class InstantRunner:
    """Finishes every task at once (the cache write is not what these tests are about)."""

    def __init__(self) -> None:
        self.runs: list[str] = []

    async def run(self, task: TaskRecord, progress: ProgressCallback | None = None
                  ) -> WarmResult:
        self.runs.append(task.task_id)
        return WarmResult(task_id=task.task_id, outcome=TaskOutcome.SUCCEEDED,
                          keys_ok=len(task.spec.keys), keys_failed=0, keys_skipped=0,
                          bytes_written=0, origin_p50_ms=None, origin_p99_ms=None,
                          duration_s=0.0, checkpoint=len(task.spec.keys))


@dataclass
class VirtualCluster:
    clock: ManualClock
    network: MemoryNetwork
    drivers: dict[int, Driver] = field(default_factory=dict)
    loops: dict[int, SchedulingLoop] = field(default_factory=dict)
    runners: dict[int, InstantRunner] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    clocks: dict[int, SkewedClock] = field(default_factory=dict)  # nodes off the true time

    async def run_for(self, seconds: float) -> None:
        """Advance virtual time in small steps, letting the loop run between them."""
        for _ in range(round(seconds / STEP_S)):
            self.clock.advance(STEP_S)
            for _ in range(3):
                await asyncio.sleep(0)
            await asyncio.sleep(0.0002)  # lets the drivers' disk thread hand back its writes

    async def run_until(self, condition: Callable[[], object], limit_s: float,
                        what: str) -> float:
        """Virtual seconds until `condition()` holds; fails past `limit_s`."""
        started = self.clock.monotonic()
        while not condition():
            if self.clock.monotonic() - started > limit_s:
                raise AssertionError(f"{what} not within {limit_s} s of virtual time")
            await self.run_for(STEP_S)
        return self.clock.monotonic() - started

    def leader(self) -> int | None:
        leaders = [node_id for node_id, driver in self.drivers.items() if driver.is_leader()]
        return leaders[0] if len(leaders) == 1 else None


async def _start_node(cluster: VirtualCluster, node_id: int) -> None:
    clock = cluster.clocks.get(node_id, cluster.clock)
    disk = MemoryDisk(ConfState(voters=NODES))
    node = RaftNode(RaftConfig(node_id=node_id, election_timeout_ticks=10, heartbeat_ticks=2),
                    disk, random.Random(node_id))
    applier = Applier(StateMachine(), {peer: Address("127.0.0.1", 1) for peer in NODES}, clock)
    options = DriverOptions(tick_interval_s=0.05, proposal_timeout_s=2.0,
                            snapshot_interval_entries=100_000, client_id=f"node-{node_id}")
    driver = Driver(node, disk, cluster.network.attach(node_id), applier, options, clock)
    await driver.start()
    runner = InstantRunner()
    executor = Executor(driver, runner, ExecutorOptions(lease_ms=LEASE_MS), clock)
    loop = SchedulingLoop(driver, SchedulingOptions(), random.Random(node_id), clock)
    cluster.drivers[node_id], cluster.loops[node_id], cluster.runners[node_id] = \
        driver, loop, runner
    cluster.tasks += [asyncio.create_task(executor.run()), asyncio.create_task(loop.run())]


@pytest.fixture
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[VirtualCluster]:
    cluster = VirtualCluster(ManualClock(), MemoryNetwork())
    for node_id, offset_ms in getattr(request, "param", {}).items():
        cluster.clocks[node_id] = SkewedClock(cluster.clock, offset_ms)
    for node_id in NODES:
        await _start_node(cluster, node_id)
    try:
        await cluster.run_until(cluster.leader, 5.0, "a leader")
        leader = cluster.drivers[cluster.leader() or 0]
        await cluster.run_until(lambda: len(leader.state.nodes) == len(NODES), 5.0,
                                "every executor registered")
        yield cluster
    finally:
        for task in cluster.tasks:
            task.cancel()
        await asyncio.gather(*cluster.tasks, return_exceptions=True)
        for driver in cluster.drivers.values():
            await driver.stop()


async def _submit(cluster: VirtualCluster, via: int, task_id: str) -> None:
    spec = TaskSpec(keys=(task_id,), target="redis://127.0.0.1:1")
    driver = cluster.drivers[via]
    result = await driver.propose(SubmitTask(task_id=task_id, spec=spec,
                                             now_ms=cluster.clock.wall_ms()))
    assert isinstance(result, Applied), result


async def test_a_task_submitted_on_a_follower_runs_within_one_scheduling_interval(
        cluster: VirtualCluster) -> None:
    follower = next(node_id for node_id in NODES if node_id != cluster.leader())
    leader = cluster.drivers[cluster.leader() or 0]
    submitting = asyncio.create_task(_submit(cluster, follower, "t-1"))
    await cluster.run_until(submitting.done, 2.0, "the submission to commit")
    await submitting
    took_s = await cluster.run_until(
        lambda: (task := leader.state.tasks.get("t-1")) and task.state == TaskState.SUCCEEDED,
        2.0, "the task to succeed")
    # The loops wake on the change itself: a pass at most one spacing after the commit,
    # then Assign -> Start -> Finish, each applied without waiting for a poll.
    assert took_s <= SchedulingOptions().interval_s + 0.1
    assert sum(len(runner.runs) for runner in cluster.runners.values()) == 1


async def test_an_idle_leader_does_not_poll(cluster: VirtualCluster) -> None:
    """A minute of idle virtual time, executors heartbeating twice a second: the scheduling
    loop passes only when a lease could run out (every ~3 s), not ten times a second."""
    leader_id = cluster.leader() or 0
    before = cluster.loops[leader_id].counters.passes
    await cluster.run_for(60.0)
    passes = cluster.loops[leader_id].counters.passes - before
    assert passes <= 60.0 / (LEASE_MS / 1000) + 60.0 / IDLE_PASS_S
    assert cluster.leader() == leader_id


async def test_a_failed_pass_is_retried_though_only_heartbeats_arrive(
        cluster: VirtualCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A READY task (no timer of its own) and the pass that would place it fails (its read
    point lost to a term change, say); nothing but heartbeats changes afterwards, and still
    the task is placed and runs, soon."""
    failures: list[str] = []
    real_decide = scheduling_module.decide

    def decide(state: MachineState, *args: object, **kwargs: object) -> list[Command]:
        task = state.tasks.get("t-retry")
        commands = real_decide(state, *args, **kwargs)  # type: ignore[arg-type]
        if task is not None and task.state == TaskState.PENDING:
            return [command for command in commands if not isinstance(command, Assign)]
        if task is not None and task.state == TaskState.READY and not failures:
            failures.append("failed")
            raise ProposalDropped(ProposalDropped.NO_LEADER)
        return commands

    monkeypatch.setattr(scheduling_module, "decide", decide)
    leader = cluster.drivers[cluster.leader() or 0]
    submitting = asyncio.create_task(_submit(cluster, cluster.leader() or 0, "t-retry"))
    await cluster.run_until(submitting.done, 2.0, "the submission to commit")
    took_s = await cluster.run_until(
        lambda: (task := leader.state.tasks.get("t-retry")) and task.state == TaskState.SUCCEEDED,
        IDLE_PASS_S, "the task to succeed after the failed pass")
    assert failures == ["failed"]
    assert took_s <= FAILED_PASS_RETRY_S + 0.5


async def test_a_silent_executor_is_declared_dead_after_its_lease(
        cluster: VirtualCluster) -> None:
    leader_id = cluster.leader() or 0
    silent = next(node_id for node_id in NODES if node_id != leader_id)
    leader = cluster.drivers[leader_id]
    cluster.network.cut(silent, leader_id)
    cluster.network.cut(silent, next(n for n in NODES if n not in (silent, leader_id)))
    took_s = await cluster.run_until(lambda: not leader.state.nodes[silent].alive, 10.0,
                                     "the silent node declared dead")
    # Its last heartbeat is at most one heartbeat interval old when the link is cut.
    assert LEASE_MS / 1000 - 0.5 <= took_s <= LEASE_MS / 1000 + 0.5


HOUR_MS = 3_600_000


@pytest.mark.parametrize("cluster", [{3: HOUR_MS}], indirect=True)
async def test_a_node_an_hour_ahead_neither_refuses_nor_expires_nor_outlives_its_lease(
        cluster: VirtualCluster) -> None:
    """Node 3's wall clock runs an hour ahead, then jumps two hours back: a task submitted
    through it with a deadline ten seconds ahead of the true time is taken and succeeds;
    once node 3 falls silent (its last stamp still an hour ahead of the leader) it is
    declared dead after its lease of the leader's time, not an hour later."""
    leader_id = cluster.leader() or 0
    if leader_id == 3:
        pytest.skip("the skewed node must be a follower")  # seeds make node 1 or 2 lead
    leader = cluster.drivers[leader_id]
    spec = TaskSpec(keys=("k",), target="redis://127.0.0.1:1",
                    deadline_ms=cluster.clock.wall_ms() + 10_000)
    submitting = asyncio.create_task(cluster.drivers[3].propose(SubmitTask(
        task_id="skewed", spec=spec, now_ms=cluster.clocks[3].wall_ms())))
    await cluster.run_until(submitting.done, 2.0, "the submission")
    assert isinstance(submitting.result(), Applied)
    await cluster.run_until(
        lambda: leader.state.tasks["skewed"].state == TaskState.SUCCEEDED, 3.0, "success")
    cluster.clocks[3].offset_ms = -HOUR_MS
    await cluster.run_for(1.0)
    cluster.clocks[3].offset_ms = HOUR_MS  # its last heartbeats are stamped an hour ahead
    await cluster.run_for(1.0)
    cluster.network.isolate(3)
    took_s = await cluster.run_until(lambda: not leader.state.nodes[3].alive, 10.0,
                                     "node 3 declared dead")
    assert took_s <= LEASE_MS / 1000 + 0.5
