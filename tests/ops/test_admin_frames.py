"""The admin socket's msgpack frames (warmd/admin/framed.py, server.py, pipeline.py): the
switch, pipelined answers by id, and bad frames closing only their own connection."""

from __future__ import annotations

import asyncio
import shutil
import struct
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest

from warmd.admin.framed import decode_response_frame, encode_request_frame
from warmd.admin.pipeline import PipelinedClient
from warmd.admin.protocol import LINE_BYTES_MAX, Request, decode_response, encode_request
from warmd.admin.server import AdminServer
from warmd.errors import AdminError


class Echo:
    """A pipelined command answered through a future (as bench-write is), with a gate."""

    def __init__(self) -> None:
        self.held: dict[str, asyncio.Future[dict]] = {}

    def echo(self, args: dict) -> asyncio.Future[dict]:
        future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        name = args.get("name")
        if not isinstance(name, str):
            future.set_exception(AdminError("bad_request", "echo needs a name"))
        elif name.startswith("hold"):
            self.held[name] = future
        else:
            future.set_result({"name": name})
        return future


def _shouted(future: asyncio.Future[dict]) -> str:
    """The reply of `shout`: the echoed name in capitals; a name of digits is refused, and
    the future's own error passes through."""
    name = future.result()["name"]
    if name.isdigit():
        raise AdminError("failed", f"{name} is a number")
    return name.upper()


@pytest.fixture
async def served() -> AsyncIterator[tuple[Path, Echo]]:
    directory = Path(tempfile.mkdtemp(prefix="warmd-frames-", dir="/tmp"))
    echo = Echo()
    server = AdminServer(directory / "admin.sock")
    server.register("echo", echo.echo, pipelined=True)
    server.register("shout", echo.echo, pipelined=True, reply=_shouted)
    server.register("count", lambda args: {"held": len(echo.held)})
    await server.start()
    yield directory / "admin.sock", echo
    await server.close()
    shutil.rmtree(directory, ignore_errors=True)


async def _framed(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection switched to frames by hand, as a client in another language would."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(encode_request(Request("protocol", {"frames": "msgpack"}, 1)))
    answer = decode_response(await asyncio.wait_for(reader.readline(), 5))
    assert answer.result == {"frames": "msgpack", "frame_bytes_max": LINE_BYTES_MAX}
    return reader, writer


async def _frame(reader: asyncio.StreamReader):
    (length,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), 5))
    return decode_response_frame(await reader.readexactly(length))


async def test_the_client_switches_and_matches_answers_by_id(served) -> None:
    """Many requests leave in one write; a held one answers after later ones; an error
    reply fails only its own call; an ordinary command still answers in order."""
    path, echo = served
    client = await PipelinedClient.open(path)
    assert client.framed
    held = client.call("echo", name="hold-1")
    quick = [client.call("echo", name=f"n{number}") for number in range(50)]
    refused = client.call("echo", name=7)
    assert [answer["name"] for answer in await asyncio.gather(*quick)] == [
        f"n{number}" for number in range(50)]
    with pytest.raises(AdminError, match="needs a name"):
        await refused
    assert not held.done()
    counted = client.call("count")  # ordinary: waits for the held request before it
    await asyncio.sleep(0.1)
    assert not counted.done()
    echo.held["hold-1"].set_result({"name": "late"})
    assert await held == {"name": "late"}
    assert await counted == {"held": 1}
    await client.close()


async def test_json_lines_still_work_beside_frames(served) -> None:
    """A client that asks for no frames (or an old daemon's) speaks JSON lines."""
    path, _ = served
    client = await PipelinedClient.open(path, frames=False)
    assert not client.framed
    assert await client.call("echo", name="x") == {"name": "x"}
    await client.close()


async def test_a_switch_with_bad_arguments_is_refused_and_the_connection_stays_json(
        served) -> None:
    path, _ = served
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(encode_request(Request("protocol", {"frames": "cbor"}, 1)))
    refusal = decode_response(await asyncio.wait_for(reader.readline(), 5))
    assert refusal.error_code == "bad_request" and "msgpack" in refusal.error_message
    writer.write(encode_request(Request("echo", {"name": "y"}, 2)))
    assert decode_response(await asyncio.wait_for(reader.readline(), 5)).result == {"name": "y"}
    writer.close()


@pytest.mark.parametrize("garbage", [
    struct.pack(">I", 3) + b"\xc1\xc1\xc1",  # not msgpack
    struct.pack(">I", 2) + msgpack.packb([1]),  # msgpack, but not a map
    struct.pack(">I", 3) + b"\x81\x01\x02",  # a map with an integer key
    struct.pack(">I", 3) + b"\xd4\x01\x00",  # an extension type
    struct.pack(">I", 0),  # an empty frame
    struct.pack(">I", LINE_BYTES_MAX + 1),  # oversized: refused before it is buffered
])
async def test_a_bad_frame_closes_its_connection_only_with_a_clear_error(served, garbage) -> None:
    """The answers before it still come; then one error reply (id 0) and the close. The
    daemon keeps serving another connection, framed, the whole time."""
    path, echo = served
    bystander = await PipelinedClient.open(path)
    reader, writer = await _framed(path)
    writer.write(encode_request_frame(Request("echo", {"name": "hold-2"}, 2)) + garbage)
    await asyncio.sleep(0.05)
    assert await bystander.call("echo", name="still") == {"name": "still"}
    echo.held["hold-2"].set_result({"name": "before"})
    assert (await _frame(reader)).result == {"name": "before"}
    refusal = await _frame(reader)
    assert refusal.request_id == 0 and refusal.error_code == "bad_request"
    assert "frame" in refusal.error_message or "msgpack" in refusal.error_message \
        or "map" in refusal.error_message
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
    assert await bystander.call("echo", name="after") == {"name": "after"}
    await bystander.close()
    writer.close()


async def test_a_connection_that_closes_with_requests_held_does_not_disturb_the_server(
        served) -> None:
    path, echo = served
    client = await PipelinedClient.open(path)
    pending = client.call("echo", name="hold-3")
    await asyncio.sleep(0.05)
    await client.close()
    with pytest.raises(AdminError, match="closed"):
        await pending
    echo.held["hold-3"].set_result({"name": "nobody"})  # an answer with nobody to tell
    again = await PipelinedClient.open(path)
    assert await again.call("echo", name="z") == {"name": "z"}
    await again.close()


async def test_a_reply_function_answers_from_the_handlers_future(served) -> None:
    """A pipelined command registered with `reply` answers with what the reply function
    makes of the handler's future (held or done at once), its raised AdminError, or the
    future's own error; a plain command cannot take a reply."""
    path, echo = served
    client = await PipelinedClient.open(path)
    held = client.call("shout", name="hold-2")
    assert await client.call("shout", name="quiet") == "QUIET"
    with pytest.raises(AdminError, match="42 is a number") as number:
        await client.call("shout", name="42")
    assert number.value.code == "failed"
    with pytest.raises(AdminError, match="needs a name"):
        await client.call("shout", name=7)
    await asyncio.sleep(0.05)
    echo.held["hold-2"].set_result({"name": "later"})
    assert await held == "LATER"
    await client.close()
    with pytest.raises(ValueError, match="only a pipelined command"):
        AdminServer(path.parent / "other.sock").register("x", echo.echo, reply=_shouted)
