"""Progress checkpoints of one run, proposed without stalling the run.

A checkpoint only tells a later owner where to resume, so the run need not wait for its
quorum commit: writing the next batch while the last checkpoint commits costs nothing in
safety (the checkpoint never runs ahead of the keys written, and a new owner at worst
rewrites keys that were written after the newest committed checkpoint). One checkpoint is in
flight at a time and newer ones coalesce into it: whatever arrives while one commits is
replaced by the newest, so a fast run proposes one checkpoint per commit latency, not one per
batch. Nothing is proposed before the run's Start is in the log (a ReportProgress is refused
in ASSIGNED), and once the sender learns that the fence is lost, the next report raises
FenceLost so the runner stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class FenceLost(Exception):
    """This node no longer holds the task under its fence; the run stops."""


class Checkpoints:
    """`report` is the runner's ProgressCallback; `close` ends the sender (call it once the
    run's outcome is known: a Finish marks every key done, so unsent progress is moot)."""

    def __init__(self, propose: Callable[[int], Awaitable[None]],
                 started: asyncio.Future[bool]) -> None:
        self._propose = propose  # proposes one checkpoint until taken; raises FenceLost
        self._started = started  # True once the Start is in the log (or was before we ran)
        self._newest = 0
        self._sent = 0
        self._sender: asyncio.Task[None] | None = None
        self.lost = False
        self.proposed = 0  # checkpoints proposed (for tests: coalescing makes it fewer)

    async def report(self, keys_done: int) -> None:
        """Note `keys_done`; propose it in the background unless one is already in flight
        (then it goes next, unless a newer one overtakes it)."""
        if self.lost:
            raise FenceLost(f"checkpoint {keys_done}")
        self._newest = max(self._newest, keys_done)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        try:
            if not await asyncio.shield(self._started):
                self.lost = True
                return
            while self._sent < self._newest:
                keys_done = self._newest
                self.proposed += 1
                await self._propose(keys_done)
                self._sent = keys_done
        except FenceLost:
            self.lost = True

    async def close(self) -> None:
        """Stop sending: cancel the checkpoint in flight (it may still commit, harmlessly:
        after a Finish it is refused) and drop the unsent ones."""
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
