"""An executor's reports go one entry at a time, together when they queue, each with its own
result; a stalled entry does not hold the next back; the prefetch tuner follows R / W."""

from __future__ import annotations

import asyncio

import pytest

from warmd.raft.errors import ProposalDropped
from warmd.runtime.execute.prefetch import CHANGE_INTERVAL_S, SAMPLES_MIN, PrefetchTuner
from warmd.runtime.execute.reports import ReportSender
from warmd.statemachine.commands import (
    Assign,
    Batch,
    Command,
    Finish,
    MarkReady,
    RegisterNode,
    Start,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.ledger import Ledger
from warmd.statemachine.state import Applied, ApplyResult, Rejected


class SlowLog:
    """A real state machine behind a proposal that commits after `commit_s` (the first
    `stalled` proposals never commit: they fail after `stall_s`, as a lost forward does)."""

    def __init__(self, commit_s: float, stalled: int = 0, stall_s: float = 0.0) -> None:
        self.ledger = Ledger()
        self.commit_s, self.stalled, self.stall_s = commit_s, stalled, stall_s
        self.entries: list[Command] = []

    async def propose(self, command: Command) -> ApplyResult:
        if self.stalled:
            self.stalled -= 1
            await asyncio.sleep(self.stall_s)
            raise ProposalDropped("the leader died with it")
        await asyncio.sleep(self.commit_s)
        self.entries.append(command)
        return self.ledger.append(command)


def _fences(log: SlowLog, tasks: int) -> list[int]:
    ledger = log.ledger
    ledger.append(RegisterNode(node_id=1, capacity=tasks, lease_ms=1_000, now_ms=0))
    fences = []
    for number in range(tasks):
        task_id = f"t{number}"
        ledger.append(SubmitTask(task_id=task_id, spec=TaskSpec(keys=("k",), target="r"), now_ms=0))
        ledger.append(MarkReady(task_id=task_id, now_ms=0))
        fences.append(ledger.append(Assign(task_id=task_id, node_id=1, now_ms=0)).value)  # type: ignore[union-attr]
    return fences


async def test_reports_made_while_one_commits_go_together_with_their_own_results() -> None:
    """Five Starts at once: the first goes alone, the other four in one Batch, and a stale
    fence among them is refused alone."""
    log = SlowLog(commit_s=0.02)
    fences = _fences(log, 5)
    fences[3] -= 1  # a superseded owner's report
    sender = ReportSender(log.propose)
    reports = [sender.propose(Start(task_id=f"t{n}", node_id=1, fence=fence, now_ms=1))
               for n, fence in enumerate(fences)]
    first = asyncio.ensure_future(reports[0])
    await asyncio.sleep(0.005)  # in flight
    results = [await first, *await asyncio.gather(*reports[1:])]
    assert [type(result) for result in results] == [Applied, Applied, Applied, Rejected, Applied]
    assert (sender.entries, sender.reports) == (2, 5)
    assert isinstance(log.entries[1], Batch) and len(log.entries[1].commands) == 4
    await sender.close()


async def test_a_stalled_entry_does_not_hold_back_the_next() -> None:
    """The first entry is lost with its leader (it fails only after 2 s); a Finish queued
    behind it commits after the stall bound, not after the loss is known."""
    log = SlowLog(commit_s=0.01, stalled=1, stall_s=2.0)
    fences = _fences(log, 2)
    sender = ReportSender(log.propose, stall_s=0.1)
    lost = asyncio.ensure_future(sender.propose(Start(task_id="t0", node_id=1, fence=fences[0],
                                                      now_ms=1)))
    await asyncio.sleep(0.005)  # in flight
    loop = asyncio.get_running_loop()
    began = loop.time()
    finished = await sender.propose(Start(task_id="t1", node_id=1, fence=fences[1], now_ms=1))
    assert finished == Applied(None) and loop.time() - began < 1.0
    assert await lost is None  # a RaftError: the caller retries
    await sender.close()


@pytest.mark.parametrize(("write_s", "refill_s", "expected"),
                         [(0.030, 0.100, 4), (0.400, 0.120, 1), (0.001, 1.0, 8)])
def test_the_tuner_holds_as_many_as_a_refill_takes_writes(
        write_s: float, refill_s: float, expected: int) -> None:
    """ceil(R / W), within 1..8, once enough of both were measured."""
    tuner = PrefetchTuner(prefetch=1)
    now_s = 100.0
    for _ in range(SAMPLES_MIN):
        assert tuner.maybe_change(now_s) is None  # too few samples yet
        tuner.wrote(now_s, write_s, work_waiting=True)
        now_s += refill_s
        tuner.assigned(now_s, 1)
    assert tuner.target() == expected
    assert tuner.maybe_change(now_s) == (expected if expected != 1 else None)
    assert tuner.prefetch == expected


def test_the_tuner_changes_at_most_every_interval_and_ignores_idle_holds() -> None:
    """A hold freed while no work waits is not a refill, and a second change waits its turn."""
    tuner = PrefetchTuner(prefetch=1)
    tuner.wrote(0.0, 0.03, work_waiting=False)
    tuner.assigned(30.0, 1)  # a new plan half a minute later: not a 30 s refill
    assert not tuner.refills_s
    for step in range(SAMPLES_MIN):
        tuner.wrote(step, 0.03, work_waiting=True)
        tuner.assigned(step + 0.1, 1)
    assert tuner.maybe_change(10.0) == 4
    for step in range(2 * SAMPLES_MIN):
        tuner.wrote(11 + step * 0.01, 0.2, work_waiting=True)
    assert tuner.target() == 1 and tuner.maybe_change(10.0 + CHANGE_INTERVAL_S / 2) is None
    assert tuner.maybe_change(10.0 + CHANGE_INTERVAL_S) == 1


async def test_finish_reports_of_several_tasks_share_an_entry() -> None:
    """Finishes queued behind another task's Start go in one Batch; every task ends
    SUCCEEDED but the one only started."""
    log = SlowLog(commit_s=0.02)
    fences = _fences(log, 3)
    sender = ReportSender(log.propose)
    started = asyncio.ensure_future(
        sender.propose(Start(task_id="t0", node_id=1, fence=fences[0], now_ms=1)))
    for n, fence in enumerate(fences[1:], start=1):
        log.ledger.append(Start(task_id=f"t{n}", node_id=1, fence=fence, now_ms=1))
    await asyncio.sleep(0.005)  # the t0 Start in flight: the Finishes queue behind it
    results = await asyncio.gather(*(
        sender.propose(Finish(task_id=f"t{n}", node_id=1, fence=fence, now_ms=2))
        for n, fence in enumerate(fences[1:], start=1)))
    assert await started == Applied(None)
    assert results == [Applied(None)] * 2 and sender.entries == 2
    assert [task.state.value for task in log.ledger.state.tasks.values()] == [
        "RUNNING", "SUCCEEDED", "SUCCEEDED"]
    await sender.close()


async def test_a_finish_and_the_next_start_made_together_share_the_first_entry() -> None:
    """An idle sender yields once before its first entry, so a slot's Finish and the next
    run's Start, proposed in the same moment, cost one entry, not two."""
    log = SlowLog(commit_s=0.01)
    fences = _fences(log, 2)
    log.ledger.append(Start(task_id="t0", node_id=1, fence=fences[0], now_ms=1))
    sender = ReportSender(log.propose)
    results = await asyncio.gather(
        sender.propose(Finish(task_id="t0", node_id=1, fence=fences[0], now_ms=2)),
        sender.propose(Start(task_id="t1", node_id=1, fence=fences[1], now_ms=2)))
    assert results == [Applied(None), Applied(None)] and sender.entries == 1
    await sender.close()


def test_the_tuner_covers_the_slow_refills_not_the_typical_one() -> None:
    """Refills of 50 ms with one in five at 250 ms and 50 ms writes: the median would hold
    one task ahead, but the slow refills leave a slot idle, so the tuner holds five."""
    tuner = PrefetchTuner(prefetch=1)
    now_s = 0.0
    for step in range(SAMPLES_MIN * 3):
        tuner.wrote(now_s, 0.05, work_waiting=True)
        now_s += 0.25 if step % 5 == 0 else 0.05
        tuner.assigned(now_s, 1)
    assert tuner.target() == 5


async def test_reports_come_at_most_one_entry_per_spacing() -> None:
    """Commits are fast here, yet reports made 5 ms apart after the first wait for the
    spacing and go together: a node proposes one report entry per 20 ms at most."""
    log = SlowLog(commit_s=0.001)
    fences = _fences(log, 3)
    sender = ReportSender(log.propose, spacing_s=0.02)
    pending = []
    for number, fence in enumerate(fences):
        pending.append(asyncio.ensure_future(
            sender.propose(Start(task_id=f"t{number}", node_id=1, fence=fence, now_ms=1))))
        await asyncio.sleep(0.005)
    assert await asyncio.gather(*pending) == [Applied(None)] * 3
    assert (sender.entries, sender.reports) == (2, 3)
    await sender.close()
