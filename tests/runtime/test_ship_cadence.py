"""Summaries ship often while a source changes and rarely when it does not (cadence.py),
decided on the pipeline's clock: checked as a table and on a real pipeline in virtual time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.test_log_pipeline import Recorder, append, source, tiny_encode
from warmd.clock import ManualClock
from warmd.config import AnalysisConfig
from warmd.runtime.ingest.cadence import Cadence, ship_due
from warmd.runtime.ingest.pipeline import LogPipeline

CADENCE = Cadence(interval_s=10, interval_max_s=600, change_ratio=0.05)


@pytest.mark.parametrize(("pending", "shipped", "since_s", "due"), [
    (0, 1000, 10_000, False),  # nothing new: never
    (5, 0, None, True),  # the first report goes at once
    (500, 1000, 5, False),  # a big change, but within the short interval
    (50, 1000, 10, True),  # 5 % new: worth a ship at the short interval
    (49, 1000, 599, False),  # a trickle waits ...
    (49, 1000, 600, True),  # ... for the long interval at most
])
def test_the_cadence_table(pending: int, shipped: int, since_s: float | None, due: bool) -> None:
    assert ship_due(CADENCE, pending, shipped, since_s) is due


async def test_a_trickle_ships_at_the_long_interval_a_burst_at_once(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    append(log, 0, 1000)
    clock = ManualClock()
    recorder = Recorder()
    settings = AnalysisConfig(ship_interval_ms=10_000, ship_interval_max_ms=600_000,
                              ship_change_ratio=0.05, poll_interval_ms=1_000)
    pipeline = LogPipeline(7, [source("web", log)], settings, recorder, tiny_encode, clock=clock)
    try:
        await pipeline.poll_once()
        assert await pipeline.ship_due() == 1 and recorder.accepted[-1].lines == 1000
        for minute in range(1, 10):  # 4 lines a minute: under 5 % of what was shipped
            append(log, 1000 + 4 * (minute - 1), 1000 + 4 * minute)
            clock.advance(60)
            await pipeline.poll_once()
            assert await pipeline.ship_due() == 0, f"shipped a trickle after {minute} min"
        append(log, 1036, 1040)
        clock.advance(60)  # ten minutes since the last report: the long interval is up
        await pipeline.poll_once()
        assert await pipeline.ship_due() == 1 and recorder.accepted[-1].lines == 1040
        append(log, 1040, 1140)  # a burst of 10 %: shipped at the next short interval
        clock.advance(5)
        await pipeline.poll_once()
        assert await pipeline.ship_due() == 0
        clock.advance(5)
        assert await pipeline.ship_due() == 1 and recorder.accepted[-1].lines == 1140
    finally:
        pipeline.close()
