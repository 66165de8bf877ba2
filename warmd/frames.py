"""Length-prefixed frames `[u32 length][payload]`: the peer transport's and the admin
socket's binary mode speak them.

The decoder is sans-I/O (feed bytes, get whole frames) so that hypothesis can throw
any byte stream and chunking at it: it returns frames or raises a `FrameError`,
never anything else, and it checks the size limit before buffering a payload.
It lives outside `runtime/` because the admin protocol (which `runtime/` imports) needs
it too; `runtime/node/framing.py` feeds it from an asyncio stream.
"""

from __future__ import annotations

import struct

from warmd.errors import WarmdError

FRAME_HEADER = struct.Struct(">I")
MAX_FRAME_LIMIT_BYTES = (1 << 32) - 1


class FrameError(WarmdError):
    """A peer sent a byte stream that is not a sequence of acceptable frames."""


class FrameTooLarge(FrameError):
    """A frame's declared length exceeds the configured maximum."""

    def __init__(self, length_bytes: int, max_frame_bytes: int) -> None:
        super().__init__(f"frame of {length_bytes} bytes exceeds the limit of {max_frame_bytes}")
        self.length_bytes = length_bytes
        self.max_frame_bytes = max_frame_bytes


class EmptyFrame(FrameError):
    """A frame of length zero: no valid payload is empty."""


def encode_frame(payload: bytes) -> bytes:
    """Prefix `payload` with its length."""
    return FRAME_HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Split a byte stream into frames; after the first error it stays failed.

    `max_frame_bytes` may be changed between feeds (small during a handshake,
    large afterwards).
    """

    def __init__(self, max_frame_bytes: int) -> None:
        if not 0 < max_frame_bytes <= MAX_FRAME_LIMIT_BYTES:
            raise ValueError(f"max_frame_bytes must be in 1..{MAX_FRAME_LIMIT_BYTES}")
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._start = 0  # bytes of _buffer already handed out
        self._error: FrameError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet part of a returned frame."""
        return len(self._buffer) - self._start

    def append(self, data: bytes) -> None:
        """Add received bytes without parsing them (see `next_frame`)."""
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None until more bytes arrive.

        Frames are parsed lazily, so a limit changed after the handshake applies to
        every frame not yet returned.

        Raises:
            FrameTooLarge: the next frame's declared length exceeds `max_frame_bytes`.
            EmptyFrame: the next frame's declared length is zero.
        """
        if self._error is not None:
            raise self._error
        header_size = FRAME_HEADER.size
        if len(self._buffer) - self._start < header_size:
            return None
        (length,) = FRAME_HEADER.unpack_from(self._buffer, self._start)
        self._check_length(length)
        end = self._start + header_size + length
        if end > len(self._buffer):
            return None
        frame = bytes(self._buffer[self._start + header_size:end])
        self._start = end
        self._compact()
        return frame

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame they complete, in order.

        Raises:
            FrameTooLarge: a declared length exceeds `max_frame_bytes`.
            EmptyFrame: a declared length is zero.
        """
        self.append(data)
        frames: list[bytes] = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def _check_length(self, length: int) -> None:
        if length == 0:
            self._error = EmptyFrame("frame of length zero")
        elif length > self.max_frame_bytes:
            self._error = FrameTooLarge(length, self.max_frame_bytes)
        if self._error is not None:
            raise self._error

    def _compact(self) -> None:
        """Drop consumed bytes once they are at least half the buffer (amortised O(1))."""
        if self._start and self._start * 2 >= len(self._buffer):
            del self._buffer[:self._start]
            self._start = 0
