"""`FrameReader`: the frames of warmd/frames.py read from an asyncio stream."""

from __future__ import annotations

import asyncio

from warmd.frames import FrameDecoder

READ_CHUNK_BYTES = 256 * 1024


class FrameReader:
    """Frames from an asyncio stream, through a FrameDecoder (the only I/O in this module)."""

    def __init__(self, reader: asyncio.StreamReader, max_frame_bytes: int) -> None:
        self._reader = reader
        self.decoder = FrameDecoder(max_frame_bytes)

    async def read_frames(self) -> list[bytes]:
        """The next frames (at least one); raises ConnectionError at end of stream."""
        frames: list[bytes] = []
        while not frames:
            while (frame := self.decoder.next_frame()) is not None:
                frames.append(frame)
            if not frames:
                await self._read_more()
        return frames

    async def read_frame(self) -> bytes:
        """Exactly one frame, leaving later bytes buffered (used by the handshake)."""
        while (frame := self.decoder.next_frame()) is None:
            await self._read_more()
        return frame

    async def _read_more(self) -> None:
        data = await self._reader.read(READ_CHUNK_BYTES)
        if not data:
            raise ConnectionResetError("peer closed the connection")
        self.decoder.append(data)
