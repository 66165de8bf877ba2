"""An executor's reports to the log (Start, checkpoints, Finish, Fail), one entry at a time.

Every report was its own Raft entry, and each entry a round of replication, fsync on a
majority and apply on every member: two of the four entries a 1,000-key task cost the log,
and the rounds, more than the entries, cost the CPU. So a node keeps one report entry in
flight and proposes at most one per SPACING_S; the reports its runs make meanwhile go
together in the next entry, a `Batch` in which each report is applied on its own (its own
fence, guards and result), as if it had been proposed alone. A lone report goes as itself.
A report waits at most the commit in flight or the spacing (or STALL_S, when that commit
is lost with its leader); a Finish held back delays its slot's refill, which the executor's
auto prefetch covers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from warmd.clock import Clock, SystemClock
from warmd.raft.errors import RaftError
from warmd.statemachine.commands import BATCH_COMMANDS_MAX, Batch, BatchedCommand, Command
from warmd.statemachine.state import ApplyResult, batch_results

Propose = Callable[[Command], Awaitable[ApplyResult]]  # the driver's propose
STALL_S = 0.5  # an entry in flight this long no longer holds the next one back
SPACING_S = 0.02  # at most one report entry per this long
# A Finish with its result line is ~150 bytes: 500 keep an entry near 75 KB.
REPORTS_PER_ENTRY_MAX = min(500, BATCH_COMMANDS_MAX)


class ReportSender:
    """`propose(report)` returns the report's own result, or None when Raft could not take
    the entry now (no leader, a timeout): the caller retries, as it would a lone proposal.

    One entry is in flight at a time, unless it has been for `stall_s`: a proposal forwarded
    to a leader that just died waits for its timeout, and the reports queued behind it (the
    Finishes of tasks that only a lease separates from being taken back) must not wait with
    it, so the next entry goes beside the stalled one. `entries` and `reports` count what
    was proposed (tests and status: reports per entry).
    """

    def __init__(self, propose: Propose, clock: Clock | None = None,
                 batch_max: int = REPORTS_PER_ENTRY_MAX, stall_s: float = STALL_S,
                 spacing_s: float = SPACING_S) -> None:
        self._propose = propose
        self._clock = clock or SystemClock()
        self._batch_max = batch_max
        self._stall_s = stall_s
        self._spacing_s = spacing_s
        self._last_entry_s = -spacing_s
        self._queue: list[tuple[BatchedCommand, asyncio.Future[ApplyResult | None]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.entries = 0
        self.reports = 0

    async def propose(self, report: BatchedCommand) -> ApplyResult | None:
        """Queue the report for the next entry and wait for its result.

        Raises: whatever the driver raises but RaftError (DriverStopped: the node stops)."""
        future: asyncio.Future[ApplyResult | None] = asyncio.get_running_loop().create_future()
        self._queue.append((report, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        """Propose what is queued, one entry at a time (or beside a stalled one) and at most
        one per spacing, until the queue is empty. Even the first entry after a quiet spell
        waits one turn of the loop: a slot that ends a task proposes its Finish and, in the
        same moment, the next run's Start; both go in it."""
        clock = self._clock
        while True:
            await clock.sleep(max(0.0, self._last_entry_s + self._spacing_s - clock.monotonic()))
            if not self._queue:
                return
            self._last_entry_s = clock.monotonic()
            batch = [item for item in self._queue[:self._batch_max] if not item[1].done()]
            del self._queue[:self._batch_max]
            if not batch:
                continue
            entry = self._start_entry(batch)
            stalled = asyncio.create_task(clock.sleep(self._stall_s))
            await asyncio.wait({entry, stalled}, return_when=asyncio.FIRST_COMPLETED)
            stalled.cancel()

    def _start_entry(self, batch: list[tuple[BatchedCommand, asyncio.Future[ApplyResult | None]]]
                     ) -> asyncio.Task[None]:
        sending = self._send_one([report for report, _ in batch], [future for _, future in batch])
        entry = asyncio.create_task(sending)
        self._in_flight.add(entry)
        entry.add_done_callback(self._in_flight.discard)
        return entry

    async def _send_one(self, reports: list[BatchedCommand],
                        futures: list[asyncio.Future[ApplyResult | None]]) -> None:
        self.entries += 1
        self.reports += len(reports)
        try:
            if len(reports) == 1:
                results: list[ApplyResult | None] = [await self._propose(reports[0])]
            else:
                results = list(batch_results(await self._propose(
                    Batch(commands=tuple(reports))), len(reports)))
        except RaftError:
            results = [None] * len(reports)
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
        except Exception as error:  # DriverStopped: every waiter raises it
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for future, result in zip(futures, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Stop sending; entries in flight are abandoned and queued waiters cancelled."""
        tasks = [*self._in_flight, *([self._sender] if self._sender is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, future in self._queue:
            future.cancel()
        self._queue.clear()
