"""The executor and the scheduling loop in-process on a real one-node driver and a real
Redis: a pass assigns, the run checkpoints, a superseded fence stops it at once, and the
reassigned task resumes from its checkpoint."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

import redis

from warmd.cache.configured import ConfiguredCaches
from warmd.config_table import Address
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.types import ConfState
from warmd.runtime.execute.executor import Executor, ExecutorOptions
from warmd.runtime.execute.task_runner import RunnerSettings, SpecRunner
from warmd.runtime.leader.scheduling import SchedulingLoop, SchedulingOptions
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.disk import DiskStorage
from warmd.runtime.node.driver import Driver, DriverOptions
from warmd.runtime.node.transport import TcpTransport, TransportOptions
from warmd.statemachine.commands import DeclareDead, RegisterNode, Release, SubmitTask, TaskSpec
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import Applied, TaskRecord
from warmd.testing.servers import ServerProcess

KEYS = 200
LEASE_MS = 60_000  # long: only the test declares the node dead


async def _driver(directory: Path) -> Driver:
    storage = DiskStorage.open(directory, conf_state=ConfState(voters=(1,)))
    transport = TcpTransport(TransportOptions(cluster_id="t", node_id=1, secret=b"s" * 32))
    await transport.start()
    node = RaftNode(RaftConfig(node_id=1, election_timeout_ticks=4, heartbeat_ticks=1),
                    storage, random.Random(7))
    driver = Driver(node, storage, transport, Applier(StateMachine(), {1: Address("127.0.0.1", 1)}),
                    DriverOptions(0.005, 2.0, 100_000, "test-client"))
    await driver.start()
    return driver


async def _until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline_s:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_superseded_fence_stops_the_run_and_the_new_assignment_resumes_it(
        tmp_path: Path, redis_target: ServerProcess) -> None:
    """One scheduling pass admits and assigns; the executor checkpoints; once the task is
    released under it the run stops within a poll, and the next assignment (new fence)
    resumes from the checkpoint and finishes with every key in Redis."""
    driver = await _driver(tmp_path)
    runner = SpecRunner(ConfiguredCaches(()), RunnerSettings(batch_keys=10, keys_per_second=200.0))
    options = ExecutorOptions(capacity=1, lease_ms=LEASE_MS, heartbeat_interval_s=30.0)
    executor = Executor(driver, runner, options)
    loop = SchedulingLoop(driver, SchedulingOptions(), random.Random(1))
    running = asyncio.create_task(executor.run())
    state = driver.applier.machine.state
    try:
        await _until(lambda: 1 in state.nodes, 10, "the executor to register")
        spec = TaskSpec(keys=tuple(f"k{n}" for n in range(KEYS)), target=f"redis://{redis_target.address}")
        await driver.propose(SubmitTask(task_id="t", spec=spec, now_ms=int(time.time() * 1000)))
        await loop.run_pass()
        task: TaskRecord = state.tasks["t"]
        assert loop.counters.applied == 2 and task.owner == 1  # MarkReady + Assign
        first_fence = task.fence
        await _until(lambda: task.checkpoint >= 50, 10, "progress")
        later_ms = int(time.time() * 1000) + 2 * LEASE_MS
        assert isinstance(await driver.propose(DeclareDead(node_id=1, now_ms=later_ms)), Applied)
        assert isinstance(await driver.propose(Release(task_id="t", fence=first_fence, now_ms=later_ms)), Applied)
        await _until(lambda: executor.superseded_runs == 1, 1.0, "the run to stop")
        client = redis.Redis(port=redis_target.port)
        written = client.dbsize()
        await asyncio.sleep(0.3)
        assert client.dbsize() == written  # nothing more is written under the old fence
        resumed_from = task.checkpoint
        assert 0 < resumed_from < KEYS
        await driver.propose(RegisterNode(node_id=1, capacity=1, lease_ms=LEASE_MS,
                                          now_ms=int(time.time() * 1000)))
        await loop.run_pass()
        assert task.fence > first_fence and task.owner == 1
        await _until(lambda: task.state.value == "SUCCEEDED", 10, "success")
        assert task.checkpoint == KEYS and task.reassignments == 1 and client.dbsize() == KEYS
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await runner.close()
        await driver.stop()
        await driver.transport.close()
        driver.storage.close()


async def test_a_pass_abandoned_on_leadership_loss_does_not_end_the_scheduling_loop(
        tmp_path: Path) -> None:
    """When leadership is lost while a pass's proposals are outstanding, the pass is
    abandoned (its proposals cancelled) and the loop schedules again once it leads."""
    driver = await _driver(tmp_path)
    loop = SchedulingLoop(driver, SchedulingOptions(interval_s=0.02), random.Random(1))
    state = driver.applier.machine.state
    try:
        await _until(lambda: driver.leader_id == 1, 5, "leadership")
        now = int(time.time() * 1000)
        await driver.propose(RegisterNode(node_id=1, capacity=1000, lease_ms=LEASE_MS, now_ms=now))
        spec = TaskSpec(keys=("k",), target="redis://127.0.0.1:1")
        await asyncio.gather(*(driver.propose(SubmitTask(task_id=f"t{n}", spec=spec, now_ms=now))
                               for n in range(400)))
        answers = iter([True])  # leader for the read point, then "lost" while proposing
        loop.is_leader = lambda: next(answers, False)  # type: ignore[method-assign]
        await loop.run_pass()
        assert loop.counters.abandoned_passes == 1
        del loop.is_leader  # the real check again: this node leads
        running = asyncio.create_task(loop.run())
        await _until(lambda: len(state.by_state[TaskState.ASSIGNED]) == 400, 10, "assignments")
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    finally:
        await driver.stop()
        await driver.transport.close()
        driver.storage.close()


async def test_auto_prefetch_holds_more_when_tasks_are_written_faster_than_refilled(
        tmp_path: Path, redis_target: ServerProcess) -> None:
    """With writes of ~25 ms and refills that wait for a scheduling pass (at most one per
    100 ms), a node on `prefetch = "auto"` re-registers to hold several tasks per slot
    ahead (more than the 1 it starts with), and every task still runs once and succeeds."""
    driver = await _driver(tmp_path)
    runner = SpecRunner(ConfiguredCaches(()), RunnerSettings(batch_keys=10, keys_per_second=200.0))
    options = ExecutorOptions(capacity=2, lease_ms=LEASE_MS, heartbeat_interval_s=30.0)
    assert options.prefetch_auto and options.prefetch == 1
    executor = Executor(driver, runner, options)
    loop = SchedulingLoop(driver, SchedulingOptions(), random.Random(1))
    tasks = [asyncio.create_task(executor.run()), asyncio.create_task(loop.run())]
    state = driver.applier.machine.state
    try:
        await _until(lambda: 1 in state.nodes, 10, "the executor to register")
        assert state.nodes[1].capacity == 2 * (1 + 1)
        spec = TaskSpec(keys=tuple(f"auto:{n}" for n in range(5)), target=f"redis://{redis_target.address}")
        now_ms = int(time.time() * 1000)
        await asyncio.gather(*(driver.propose(SubmitTask(task_id=f"a{n:03d}", spec=spec, now_ms=now_ms))
                               for n in range(80)))
        await _until(lambda: len(state.by_state[TaskState.SUCCEEDED]) == 80, 60, "every task")
        assert executor.prefetch > 1 and state.nodes[1].capacity == 2 * (1 + executor.prefetch)
        assert all(len(task.attempts) == 1 for task in state.tasks.values())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.close()
        await driver.stop()
        await driver.transport.close()
        driver.storage.close()
