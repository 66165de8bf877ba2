"""Hypothesis against the frame decoder: any bytes, any chunking, only frames or FrameError."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.frames import (
    FRAME_HEADER,
    EmptyFrame,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    encode_frame,
)

MAX_FRAME_BYTES = 64
payloads = st.lists(st.binary(min_size=1, max_size=MAX_FRAME_BYTES), max_size=12)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[start:end] for start, end in itertools.pairwise(points)]


@settings(max_examples=400, deadline=None)
@given(payloads, st.lists(st.integers(min_value=0), max_size=20))
def test_valid_stream_yields_the_same_frames_for_any_chunking(frames: list[bytes], cuts: list[int]) -> None:
    """Concatenated frames come back exactly, however the stream is split."""
    stream = b"".join(encode_frame(frame) for frame in frames)
    decoder = FrameDecoder(MAX_FRAME_BYTES)
    decoded: list[bytes] = []
    for chunk in _chunks(stream, cuts):
        decoded.extend(decoder.feed(chunk))
    assert decoded == frames
    assert decoder.buffered_bytes == 0


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=20))
def test_arbitrary_bytes_give_frames_or_frame_error(data: bytes, cuts: list[int]) -> None:
    """Random byte streams never raise anything but FrameError, and frames respect the limit."""
    decoder = FrameDecoder(MAX_FRAME_BYTES)
    try:
        for chunk in _chunks(data, cuts):
            for frame in decoder.feed(chunk):
                assert 0 < len(frame) <= MAX_FRAME_BYTES
    except FrameError:
        with pytest.raises(FrameError):
            decoder.feed(b"more")  # a failed decoder stays failed


@settings(max_examples=300, deadline=None)
@given(payloads, st.binary(max_size=50), st.lists(st.integers(min_value=0), max_size=10))
def test_garbage_after_valid_frames_keeps_the_valid_prefix(
    frames: list[bytes], garbage: bytes, cuts: list[int]
) -> None:
    """Frames before a damaged part of the stream come out intact; the damage raises FrameError."""
    stream = b"".join(encode_frame(frame) for frame in frames) + garbage
    decoder = FrameDecoder(MAX_FRAME_BYTES)
    decoded: list[bytes] = []
    try:
        for chunk in _chunks(stream, cuts):
            decoder.append(chunk)
            while (frame := decoder.next_frame()) is not None:
                decoded.append(frame)
    except FrameError:
        pass
    assert decoded[:len(frames)] == frames


def test_oversized_header_fails_before_the_payload_arrives() -> None:
    """The limit is enforced from the four header bytes alone."""
    decoder = FrameDecoder(MAX_FRAME_BYTES)
    with pytest.raises(FrameTooLarge) as caught:
        decoder.feed(FRAME_HEADER.pack(MAX_FRAME_BYTES + 1))
    assert caught.value.length_bytes == MAX_FRAME_BYTES + 1


def test_empty_frame_is_an_error() -> None:
    """A zero length is refused, since no payload is empty."""
    with pytest.raises(EmptyFrame):
        FrameDecoder(MAX_FRAME_BYTES).feed(FRAME_HEADER.pack(0))


def test_raised_limit_applies_to_frames_not_yet_returned() -> None:
    """Raising the limit after the handshake admits a large frame already buffered."""
    decoder = FrameDecoder(8)
    decoder.append(encode_frame(b"hi") + encode_frame(b"x" * 100))
    assert decoder.next_frame() == b"hi"
    decoder.max_frame_bytes = 1000
    assert decoder.next_frame() == b"x" * 100


def test_bad_limit_is_refused() -> None:
    """A limit outside 1..2^32-1 is a ValueError."""
    with pytest.raises(ValueError):
        FrameDecoder(0)
