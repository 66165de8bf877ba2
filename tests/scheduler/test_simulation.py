"""Seeded simulation: scheduler + state machine + executors that crash, pause and come back.

Pure and in one process (no Raft): leader changes are modelled by a new leader deciding from
a snapshot of the state with a fresh rng. Afterwards no task is lost or doubled, no stale
report was accepted, and paused executors' late reports were refused and counted. Batched,
each pass is one Batch entry and each executor's reports of a step another, as the daemon
proposes them: the same must hold.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from warmd.scheduler import SchedulerConfig, decide
from warmd.statemachine.commands import (
    FENCED_COMMANDS,
    Batch,
    Command,
    Fail,
    Finish,
    Heartbeat,
    RegisterNode,
    ReportProgress,
    Start,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.lifecycle import TERMINAL_STATES, TaskState
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import Applied, ApplyResult, Rejected, batch_results

TICK_MS = 50
LEASE_MS = 400
NODES = 4
TASKS = 60
KEYS = 12
CONFIG = SchedulerConfig(backoff_base_ms=100, backoff_cap_ms=800, backoff_jitter_ratio=0.3)


@dataclasses.dataclass
class Executor:
    """One node's executor: what it believes it runs, and whether it is up or paused."""

    node_id: int
    up: bool = True
    paused_until_ms: int = 0
    work: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)  # task -> (fence, done)


@dataclasses.dataclass
class Audit:
    """What the simulation saw being accepted."""

    finishes: dict[str, int] = dataclasses.field(default_factory=dict)
    stale_refused: int = 0
    faults: int = 0


class Simulation:
    def __init__(self, seed: int, batched: bool = False) -> None:
        self.batched = batched
        self.rng = random.Random(seed)
        self.ledger = Ledger()
        self.audit = Audit()
        self.executors = {node_id: Executor(node_id) for node_id in range(1, NODES + 1)}
        self.leader_rng = random.Random(seed * 7919)
        self.now_ms = 0
        for node_id in self.executors:
            self._append(RegisterNode(node_id=node_id, capacity=3, lease_ms=LEASE_MS, now_ms=0))

    def _append_all(self, commands: list[Command]) -> list[ApplyResult]:
        """One entry per command, or (batched) one Batch entry for them all."""
        if not self.batched or len(commands) < 2:
            return [self._append(command) for command in commands]
        fences = [self._fence(command) for command in commands]
        results = batch_results(self.ledger.append(Batch(commands=tuple(commands))),
                                len(commands))
        for command, fence_before, result in zip(commands, fences, results, strict=True):
            self._check(command, fence_before, result)
        return results

    def _fence(self, command: Command) -> int | None:
        task = self.ledger.state.tasks.get(getattr(command, "task_id", ""))
        return task.fence if task else None

    def _append(self, command) -> object:
        fence_before = self._fence(command)
        result = self.ledger.append(command)
        self._check(command, fence_before, result)
        return result

    def _check(self, command, fence_before: int | None, result: ApplyResult) -> None:
        if isinstance(command, FENCED_COMMANDS):
            if isinstance(result, Applied):
                assert command.fence == fence_before, f"stale report accepted: {command}"
            elif result.reason.startswith("stale fence"):
                self.audit.stale_refused += 1
        if isinstance(command, Finish) and isinstance(result, Applied):
            self.audit.finishes[command.task_id] = self.audit.finishes.get(command.task_id, 0) + 1

    def submit(self, number: int) -> None:
        deadline = self.now_ms + 400 if number % 10 == 9 else None  # some tasks cannot make it
        spec = TaskSpec(keys=tuple(f"t{number}:{k}" for k in range(KEYS)), target="redis",
                        rule=f"rule{number % 3}", deadline_ms=deadline, max_attempts=3)
        self._append(SubmitTask(task_id=f"t{number}", spec=spec, now_ms=self.now_ms))

    def step(self, faults: bool) -> None:
        self.now_ms += TICK_MS
        if faults:
            self._inject_fault()
        if self.rng.random() < 0.3:  # a leader change: a new leader with only the snapshot
            successor = StateMachine()
            successor.restore(self.ledger.machine.snapshot())
            self.leader_rng = random.Random(self.rng.getrandbits(32))
            commands = decide(successor.state, self.now_ms, CONFIG, self.leader_rng)
        else:
            commands = decide(self.ledger.state, self.now_ms, CONFIG, self.leader_rng)
        self._append_all(commands)
        for executor in self.executors.values():
            self._run_executor(executor)

    def pause_busiest(self) -> None:
        """SIGSTOP the executor with the most tasks in hand, for twice its lease."""
        busiest = max(self.executors.values(), key=lambda executor: len(executor.work))
        busiest.paused_until_ms = self.now_ms + LEASE_MS * 2
        self.audit.faults += 1

    def _inject_fault(self) -> None:
        roll = self.rng.random()
        executor = self.executors[self.rng.randint(1, NODES)]
        if roll < 0.02 and executor.up:  # SIGKILL: its memory is gone
            executor.up, executor.work = False, {}
            self.audit.faults += 1
        elif roll < 0.05 and executor.up and executor.paused_until_ms <= self.now_ms:
            executor.paused_until_ms = self.now_ms + LEASE_MS * 2  # SIGSTOP past its lease
            self.audit.faults += 1
        elif roll < 0.10 and not executor.up:  # restart
            executor.up = True
            self._append(RegisterNode(node_id=executor.node_id, capacity=3, lease_ms=LEASE_MS,
                                      now_ms=self.now_ms))

    def _run_executor(self, executor: Executor) -> None:
        if not executor.up or executor.paused_until_ms > self.now_ms:
            return
        self._append(Heartbeat(node_id=executor.node_id, now_ms=self.now_ms))
        starts: list[Command] = []
        for task in self.ledger.state.in_state(TaskState.ASSIGNED):
            if task.owner == executor.node_id and task.task_id not in executor.work:
                executor.work[task.task_id] = (task.fence, task.checkpoint)  # resume point
                starts.append(Start(task_id=task.task_id, node_id=executor.node_id,
                                    fence=task.fence, now_ms=self.now_ms))
        self._append_all(starts)
        for task in self.ledger.state.in_state(TaskState.RUNNING):
            # A restarted executor adopts what the state says it still runs (same node, same
            # fence, from the checkpoint); otherwise such a task would stay RUNNING forever.
            if task.owner == executor.node_id and task.task_id not in executor.work:
                executor.work[task.task_id] = (task.fence, task.checkpoint)
        advanced = [self._advance(executor, task_id, fence, done)
                    for task_id, (fence, done) in sorted(executor.work.items())]
        results = self._append_all([report for _, report, _ in advanced])
        for (task_id, report, done), result in zip(advanced, results, strict=True):
            if isinstance(report, Fail) or isinstance(result, Rejected) or done == KEYS:
                executor.work.pop(task_id)
            else:
                executor.work[task_id] = (report.fence, done)

    def _advance(self, executor: Executor, task_id: str, fence: int, done: int
                 ) -> tuple[str, Command, int]:
        """Warm a few keys: (task, the report to make, keys done). A refused report means
        the task is no longer ours."""
        report = dict(task_id=task_id, node_id=executor.node_id, fence=fence, now_ms=self.now_ms)
        if self.rng.random() < 0.03:
            return task_id, Fail(**report, error="origin 503"), done
        done = min(KEYS, done + self.rng.randint(1, 2))
        if done == KEYS:
            return task_id, Finish(**report), done
        return task_id, ReportProgress(**report, keys_done=done), done


def _settled(state) -> bool:
    for task in state.tasks.values():
        if task.state in TERMINAL_STATES:
            continue
        exhausted = task.attempt >= task.spec.max_attempts or not task.retryable
        if not (task.state == TaskState.FAILED and exhausted):
            return False
    return True


@pytest.mark.parametrize("batched", [False, True], ids=["entries", "batched"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_no_task_lost_or_doubled_under_crashes_and_pauses(seed: int, batched: bool) -> None:
    """Every task ends settled exactly once; no stale report is accepted; faults happened and
    paused executors' late reports were refused and counted in the state (seed in the id)."""
    simulation = _run_with_faults(seed, batched)
    for executor in simulation.executors.values():  # heal: everyone restarts
        executor.paused_until_ms = 0
        if not executor.up:
            executor.up = True
    for _ in range(400):
        if _settled(simulation.ledger.state):
            break
        simulation.step(faults=False)
    state = simulation.ledger.state
    assert _settled(state), f"seed {seed}: unsettled {state.counts()}"
    assert len(state.tasks) == TASKS
    succeeded = {task_id for task_id, task in state.tasks.items()
                 if task.state == TaskState.SUCCEEDED}
    assert set(simulation.audit.finishes) == succeeded
    assert all(count == 1 for count in simulation.audit.finishes.values())
    assert simulation.audit.faults > 0
    assert state.stale_fence_rejections == simulation.audit.stale_refused
    assert len(succeeded) >= TASKS // 2, f"seed {seed}: {state.counts()}"
    assert sum(task.reassignments for task in state.tasks.values()) > 0
    assert state.stale_fence_rejections > 0


def _run_with_faults(seed: int, batched: bool = False) -> Simulation:
    """Submit a task every third tick while faults are injected, then keep faulting a while."""
    simulation = Simulation(seed, batched)
    for number in range(TASKS):
        simulation.submit(number)
        if number == TASKS // 2:
            simulation.pause_busiest()
        for _ in range(3):
            simulation.step(faults=True)
    for _ in range(60):
        simulation.step(faults=True)
    return simulation
