"""An asyncio admin client for programs that keep many requests in flight on one connection.

warmctl sends one request and waits (client.py); a program that writes a lot, such as a
load generator or an executor-side tool, instead keeps many pipelined requests
(`bench-write`) in flight: `call()` returns at once with the future of the answer, the
requests of one turn of the loop leave in one write, and replies are matched by id. On
connecting it asks for msgpack frames (protocol.py); a daemon that does not offer them
answers `unknown_command` and the connection stays on JSON lines.

    client = await PipelinedClient.open("/run/warmd/admin.sock")
    answers = [client.call("bench-write", client_id="c1", sequence=n) for n in (1, 2, 3)]
    results = await asyncio.gather(*answers)   # each a result, or AdminError
    await client.close()

Ordinary commands work too; the daemon answers them after the requests before them.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

from warmd.admin.framed import decode_response_frame, encode_request_frame
from warmd.admin.protocol import (
    FRAMES_MSGPACK,
    LINE_BYTES_MAX,
    PROTOCOL_COMMAND,
    ErrorCode,
    Request,
    Response,
    decode_response,
    encode_request,
)
from warmd.errors import AdminError
from warmd.frames import FrameDecoder, FrameError

READ_BYTES = 256 * 1024


class PipelinedClient:
    """One connection with many requests in flight; see the module docstring."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 framed: bool, token: str | None = None) -> None:
        self.framed = framed  # msgpack frames (else JSON lines)
        self._reader, self._writer, self._token = reader, writer, token
        self._ids = itertools.count(2)  # 1 was the protocol request
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._outbox: list[bytes] = []
        self._receiving = asyncio.ensure_future(self._receive())

    @staticmethod
    async def open(path: str | os.PathLike[str], token: str | None = None,
                   frames: bool = True) -> PipelinedClient:
        """Connect to the admin socket at `path`, asking for msgpack frames when `frames`.

        Raises:
            OSError: the socket cannot be reached.
            AdminError: the daemon refused the connection or answered the switch with
                anything but a result or `unknown_command`.
        """
        reader, writer = await asyncio.open_unix_connection(path, limit=LINE_BYTES_MAX + 1)
        framed = False
        if frames:
            try:
                framed = await _ask_for_frames(reader, writer, token)
            except BaseException:
                writer.close()
                raise
        return PipelinedClient(reader, writer, framed, token)

    def call(self, command: str, /, **args: Any) -> asyncio.Future[Any]:
        """Send `command` with the writes of this turn of the loop; the future of its result
        (failed with AdminError when the daemon answers with an error or the connection
        ends first).

        Raises:
            AdminError: (bad_request) the request cannot be encoded.
        """
        request_id = next(self._ids)
        request = Request(command, args, request_id, self._token)
        encoded = (encode_request_frame if self.framed else encode_request)(request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._receiving.done():
            future.set_exception(_closed())
            return future
        self._waiting[request_id] = future
        self._outbox.append(encoded)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return future

    async def close(self) -> None:
        """Close the connection; requests still waiting fail with `unavailable`."""
        self._writer.close()
        await asyncio.gather(self._receiving, return_exceptions=True)

    def _flush(self) -> None:
        if self._outbox and not self._writer.is_closing():
            self._writer.write(b"".join(self._outbox))
        self._outbox.clear()

    async def _receive(self) -> None:
        failure = _closed()
        try:
            if self.framed:
                await self._receive_frames()
            else:
                while line := await self._reader.readline():
                    self._resolve(decode_response(line))
        except AdminError as error:  # the daemon's refusal, or a reply that is not one
            failure = error
        except (FrameError, OSError, ValueError):
            pass  # the connection is unusable: every waiting request fails below
        finally:
            waiting, self._waiting = self._waiting, {}
            for future in waiting.values():
                if not future.done():
                    future.set_exception(failure)
            self._writer.close()

    async def _receive_frames(self) -> None:
        decoder = FrameDecoder(LINE_BYTES_MAX)
        while data := await self._reader.read(READ_BYTES):
            decoder.append(data)
            while (payload := decoder.next_frame()) is not None:
                self._resolve(decode_response_frame(payload))

    def _resolve(self, response: Response) -> None:
        future = self._waiting.pop(response.request_id, None)
        if future is None:
            if response.request_id == 0 and not response.ok:  # the daemon refused us
                raise AdminError(response.error_code or ErrorCode.PROTOCOL,
                                 response.error_message)
            return
        if future.done():
            return
        if response.ok:
            future.set_result(response.result)
        else:
            future.set_exception(AdminError(response.error_code or ErrorCode.PROTOCOL,
                                            response.error_message))


async def _ask_for_frames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          token: str | None) -> bool:
    """Whether the daemon switched the connection to msgpack frames."""
    writer.write(encode_request(Request(PROTOCOL_COMMAND, {"frames": FRAMES_MSGPACK}, 1, token)))
    line = await reader.readline()
    if not line:
        raise AdminError(ErrorCode.UNAVAILABLE, "the daemon closed the connection")
    response = decode_response(line)
    if response.error_code == ErrorCode.UNKNOWN_COMMAND:
        return False
    result = response.raise_for_error()
    return isinstance(result, dict) and result.get("frames") == FRAMES_MSGPACK


def _closed() -> AdminError:
    return AdminError(ErrorCode.UNAVAILABLE, "the admin connection closed before the answer")
