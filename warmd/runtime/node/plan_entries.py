"""Propose a plan of any size: one SubmitPlan, or a header and bounded parts, in order.

The pure split is `warmd.statemachine.plan_parts.split_plan` (run it in a thread: it encodes
every task); this is the shell half that proposes the entries in order (the state machine
takes parts only in order; one driver queues and appends them in the order they are
proposed) and stops at the first refusal. The leader's planner and the `bench-plan` admin
command use it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from warmd.runtime.node.driver import Driver
from warmd.statemachine.commands import Command
from warmd.statemachine.state import Applied, ApplyResult

# Parts proposed before the first is applied: a few keep the pipeline full without handing
# one Ready megabytes of parts to decode and apply in a single turn of the event loop.
PARTS_IN_FLIGHT = 4


async def propose_entries(driver: Driver, entries: Sequence[Command]) -> ApplyResult:
    """Propose a split plan's entries in order, up to PARTS_IN_FLIGHT at once; the result
    of the last, or the first refusal (the parts after it are refused as out of order).

    Raises:
        RaftError: as Driver.propose (a plan cut off mid-way stays staged and never runs).
    """
    in_flight: deque[asyncio.Future[ApplyResult]] = deque()
    result: ApplyResult = Applied(None)
    try:
        for command in entries:
            in_flight.append(asyncio.ensure_future(driver.propose(command)))
            if len(in_flight) >= PARTS_IN_FLIGHT:
                result = await in_flight.popleft()
                if not isinstance(result, Applied):
                    return result
        while in_flight:
            result = await in_flight.popleft()
            if not isinstance(result, Applied):
                return result
        return result
    finally:
        for future in in_flight:
            future.cancel()
