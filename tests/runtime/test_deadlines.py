"""Deadlines (warmd/runtime/node/deadlines.py): the driver's per-tick sweep fails exactly the
requests that are due and still waiting, and does not keep answered ones alive."""

from __future__ import annotations

import asyncio

import pytest

from warmd.runtime.node.deadlines import COMPACT_AT_LEAST, Deadlines


class Late(Exception):
    pass


async def test_the_sweep_fails_only_due_futures_that_still_wait() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(2.0, lambda what: Late(what))
    answered, waiting, later = (loop.create_future() for _ in range(3))
    deadlines.add(10.0, answered, "a")
    deadlines.add(10.5, waiting, "b")
    deadlines.add(11.5, later, "c")
    answered.set_result(1)
    assert deadlines.sweep(12.4) == 0  # b is due at 12.5: nothing failed yet
    assert len(deadlines) == 2  # the answered head is forgotten
    assert deadlines.sweep(12.5) == 1
    with pytest.raises(Late, match="b"):
        waiting.result()
    assert not later.done() and len(deadlines) == 1
    later.cancel()  # a caller that gave up is not failed again
    assert deadlines.sweep(100.0) == 0 and len(deadlines) == 0


async def test_a_slow_head_does_not_keep_answered_futures() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(5.0, Late)
    slow = loop.create_future()
    deadlines.add(0.0, slow, "slow")
    for number in range(3 * COMPACT_AT_LEAST):
        future = loop.create_future()
        deadlines.add(0.001 * number, future, "fast")
        future.set_result(number)
    assert len(deadlines) < COMPACT_AT_LEAST  # compacted, the slow one kept
    assert deadlines.sweep(5.0) == 1 and isinstance(slow.exception(), Late)
    assert len(deadlines) == 0
