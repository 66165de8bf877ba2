"""Pipelined admin commands: many requests in flight on one connection, replies by id,
while ordinary commands keep their order (warmd/admin/server.py)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from warmd.admin.protocol import Request, decode_response, encode_request
from warmd.admin.server import AdminServer


class Gate:
    """Handlers that finish only when the test opens their gate; records the order run."""

    def __init__(self) -> None:
        self.opened: dict[str, asyncio.Event] = {}
        self.ran: list[str] = []

    async def wait(self, args: dict) -> dict:
        name = args["name"]
        self.ran.append(name)
        await self.opened.setdefault(name, asyncio.Event()).wait()
        return {"name": name}

    def open(self, name: str) -> None:
        self.opened.setdefault(name, asyncio.Event()).set()

    def note(self, args: dict) -> dict:
        self.ran.append("note")
        return {"ran": list(self.ran)}


@pytest.fixture
async def served() -> AsyncIterator[tuple[Path, Gate]]:
    directory = Path(tempfile.mkdtemp(prefix="warmd-pipe-", dir="/tmp"))
    gate = Gate()
    server = AdminServer(directory / "admin.sock")
    server.register("slow", gate.wait, pipelined=True)
    server.register("note", gate.note)
    await server.start()
    yield directory / "admin.sock", gate
    await server.close()
    shutil.rmtree(directory, ignore_errors=True)


async def _reply(reader: asyncio.StreamReader) -> tuple[int, object]:
    response = decode_response(await asyncio.wait_for(reader.readline(), 5))
    return response.request_id, response.result


async def test_pipelined_requests_run_together_and_answer_by_id(served) -> None:
    path, gate = served
    reader, writer = await asyncio.open_unix_connection(path)
    for request_id, name in ((1, "a"), (2, "b")):
        writer.write(encode_request(Request("slow", {"name": name}, request_id)))
    await writer.drain()
    while len(gate.ran) < 2:  # both run although neither has answered
        await asyncio.sleep(0.01)
    gate.open("b")
    assert await _reply(reader) == (2, {"name": "b"})  # the later one answers first
    gate.open("a")
    assert await _reply(reader) == (1, {"name": "a"})
    writer.close()


async def test_an_ordinary_command_waits_for_the_pipelined_ones_before_it(served) -> None:
    path, gate = served
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(encode_request(Request("slow", {"name": "a"}, 1)))
    writer.write(encode_request(Request("note", {}, 2)))
    writer.write(encode_request(Request("slow", {"name": "c"}, 3)))
    await writer.drain()
    await asyncio.sleep(0.2)
    assert gate.ran == ["a"]  # `note` waits for `a`; `c` waits behind `note`
    gate.open("a")
    gate.open("c")
    replies = [await _reply(reader) for _ in range(3)]
    assert replies == [(1, {"name": "a"}), (2, {"ran": ["a", "note"]}), (3, {"name": "c"})]
    writer.close()


async def test_answers_still_go_out_when_the_client_stops_sending(served) -> None:
    path, gate = served
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(encode_request(Request("slow", {"name": "a"}, 7)))
    writer.write_eof()  # the client sends nothing more but waits for its answer
    await asyncio.sleep(0.1)
    gate.open("a")
    assert await _reply(reader) == (7, {"name": "a"})
    assert await asyncio.wait_for(reader.readline(), 5) == b""  # then the server closes
    writer.close()


async def test_a_malformed_line_is_refused_after_the_answers_before_it(served) -> None:
    path, gate = served
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(encode_request(Request("slow", {"name": "a"}, 1)))
    writer.write(b"{not json\n")
    await writer.drain()
    await asyncio.sleep(0.1)
    gate.open("a")
    assert await _reply(reader) == (1, {"name": "a"})
    refusal = decode_response(await asyncio.wait_for(reader.readline(), 5))
    assert refusal.error_code == "bad_request"
    writer.close()


async def test_a_burst_of_pipelined_requests_lets_other_tasks_run_between(served) -> None:
    """A thousand buffered requests do not all start in one turn of the loop: the driver
    (here a task that marks every turn) runs between them, so a leader keeps heartbeating."""
    path, gate = served
    gate.open("x")
    marks: list[str] = gate.ran

    async def mark_turns() -> None:
        while True:
            marks.append("turn")
            await asyncio.sleep(0)

    marker = asyncio.create_task(mark_turns())
    reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
    writer.write(b"".join(encode_request(Request("slow", {"name": "x"}, number))
                          for number in range(1, 1001)))
    await writer.drain()
    replies = {(await _reply(reader))[0] for _ in range(1000)}
    marker.cancel()
    writer.close()
    assert replies == set(range(1, 1001))
    runs, longest = 0, 0  # the longest run of requests started with no turn between
    for mark in marks:
        runs = runs + 1 if mark == "x" else 0
        longest = max(longest, runs)
    assert 0 < longest <= 64
