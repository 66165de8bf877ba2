"""Readiness gates in the daemon: a gate opens when all its checks pass, reports the moment
it turns open once, is re-checked only at its poll interval, and explains a closed check."""

from __future__ import annotations

import time
from pathlib import Path

from warmd.rules.compiled import Gate, GateCheck
from warmd.runtime.leader.gates import GatePoller, gate_context
from warmd.testing.origin import OriginState, TestOrigin


def file_gate(path: Path, poll_s: float = 0.0) -> Gate:
    return Gate("etl-done", (GateCheck("file", (("path", str(path)),)),), poll_s=poll_s)


async def test_a_gate_reports_the_moment_it_opens_once(tmp_path: Path) -> None:
    """Closed while the marker is missing; the poll after it appears reports the gate once."""
    marker = tmp_path / "_SUCCESS"
    poller = GatePoller()
    gates = {"etl-done": file_gate(marker)}
    assert await poller.poll(gates) == [] and not poller.is_open("etl-done")
    assert "is missing" in poller.states["etl-done"].detail
    marker.write_text("")
    assert await poller.poll(gates) == ["etl-done"] and poller.is_open("etl-done")
    assert await poller.poll(gates) == []  # still open: not a new event


async def test_a_gate_is_rechecked_only_at_its_poll_interval(tmp_path: Path) -> None:
    """Within `poll` the last answer stands, so a flapping marker is not hammered."""
    marker = tmp_path / "_SUCCESS"
    poller = GatePoller()
    gates = {"etl-done": file_gate(marker, poll_s=3600.0)}
    await poller.poll(gates)
    marker.write_text("")
    assert await poller.poll(gates) == [] and not poller.is_open("etl-done")


async def test_every_check_must_pass_and_the_closed_one_is_named(tmp_path: Path) -> None:
    """An http check that passes and a file check that does not: closed, naming the file."""
    async with TestOrigin(OriginState()) as origin:
        gate = Gate("both", (GateCheck("http", (("url", origin.url + "/health"),)),
                             GateCheck("file", (("path", str(tmp_path / "{date}.done")),))))
        poller = GatePoller()
        await poller.poll({"both": gate})
        state = poller.states["both"]
        assert not state.open and state.detail.startswith("file:")
        (tmp_path / f"{gate_context(time.time())['date']}.done").write_text("")
        poller.states["both"].checked_s = 0.0
        assert await poller.poll({"both": gate}) == ["both"]
        assert "GET" in poller.states["both"].detail


async def test_an_unknown_hook_keeps_the_gate_closed_with_the_reason() -> None:
    """A hook that is neither built in nor installed here closes the gate and says so."""
    poller = GatePoller()
    await poller.poll({"odd": Gate("odd", (GateCheck("no-such-hook", ()),))})
    assert not poller.is_open("odd")
    assert "not installed" in poller.states["odd"].detail
