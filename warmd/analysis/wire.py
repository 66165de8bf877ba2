"""The wire form of a Summary: versioned, compressed msgpack of plain values, never pickle.

Summaries travel between hosts through the Raft log, so decoding trusts nothing: any bad
input raises `SummaryDecodeError`, and the decompressed size is capped. Pure.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgpack

from warmd.analysis.summary import Summary
from warmd.analysis.summary_plain import PlainFormError, summary_from_plain, summary_to_plain
from warmd.analysis.wire_budget import shrink_step
from warmd.errors import WarmdError

MAGIC = b"WSM"
VERSION = 1
HEADER = MAGIC + bytes([VERSION])
COMPRESSION_LEVEL = 6
# A zip bomb stops here; the encoder keeps every summary's msgpack within it too. It also
# bounds what unpacking may allocate (at most one object per byte).
DECODED_BYTES_MAX = 32 * 1024 * 1024
# What one ReportSummary may carry (warmd.statemachine.summaries.SUMMARY_BYTES_MAX; a test
# keeps the two equal, and this pure package does not import the state machine).
ENCODED_BYTES_MAX = 8 * 1024 * 1024
# What the daemon ships in one Raft entry: the smallest allowed raft.max_entry_bytes (1 MiB)
# less room for the ReportSummary envelope, so a summary never meets the entry cap.
SHIPPED_BYTES_MAX = (1 << 20) - (64 << 10)
# While shrinking, a form whose msgpack, at the first pass's compression ratio, would come
# out this many times over the budget is shrunk again without compressing it first.
SKIP_COMPRESSION_FACTOR = 1.25


class SummaryDecodeError(WarmdError):
    """Bytes that are not a valid encoded summary (wrong magic, version, size or content)."""


class SummaryEncodeError(WarmdError):
    """A summary cannot be encoded within the byte budget even with its sketches emptied."""


def encode_summary(summary: Summary, max_bytes: int = ENCODED_BYTES_MAX) -> bytes:
    """The canonical wire form of `summary`: HEADER + zlib(msgpack(plain values)).

    The same state (built by the same steps) always gives the same bytes, on any host,
    and decode -> encode gives back the very bytes it started from. A form longer than
    `max_bytes` (or inflating past DECODED_BYTES_MAX) is shrunk, lightest sketch entries
    and oldest templates first (see wire_budget.py), until it fits; `summary` itself is
    never changed.

    Raises:
        SummaryEncodeError: even the emptied summary is longer than `max_bytes`.
    """
    plain = summary_to_plain(summary)
    packed = msgpack.packb(plain, use_bin_type=True)
    data = HEADER + zlib.compress(packed, COMPRESSION_LEVEL)
    ratio = len(data) / len(packed)
    while len(data) > max_bytes or len(packed) > DECODED_BYTES_MAX:
        if not shrink_step(plain):
            raise SummaryEncodeError(f"summary does not fit in {max_bytes} bytes "
                                     f"(still {len(data)} with its sketches emptied)")
        packed = msgpack.packb(plain, use_bin_type=True)
        if len(packed) * ratio > SKIP_COMPRESSION_FACTOR * max_bytes:
            continue  # surely still too long: compressing (the slow part) can wait
        data = HEADER + zlib.compress(packed, COMPRESSION_LEVEL)
    return data


def decode_summary(data: bytes) -> Summary:
    """The Summary that `encode_summary` turned into `data`.

    Raises:
        SummaryDecodeError: anything wrong with `data` (magic, version, compression, size,
            msgpack, a missing or unknown field, a value of the wrong type or range).
    """
    plain = _unpack(_decompress(data))
    try:
        return summary_from_plain(plain)
    except PlainFormError as error:
        raise SummaryDecodeError(str(error)) from None


def _decompress(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SummaryDecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:len(MAGIC)] != MAGIC:
        raise SummaryDecodeError(f"not an encoded summary (starts with {data[:4]!r})")
    if len(data) < len(HEADER):
        raise SummaryDecodeError("encoded summary truncated inside its header")
    if data[len(MAGIC)] != VERSION:
        raise SummaryDecodeError(f"unsupported summary version {data[len(MAGIC)]} "
                                 f"(this build reads version {VERSION})")
    inflater = zlib.decompressobj()
    try:
        packed = inflater.decompress(data[len(HEADER):], DECODED_BYTES_MAX + 1)
    except zlib.error as error:
        raise SummaryDecodeError(f"summary is not valid zlib data: {error}") from None
    if len(packed) > DECODED_BYTES_MAX:
        raise SummaryDecodeError(f"summary inflates past {DECODED_BYTES_MAX} bytes")
    if not inflater.eof:
        raise SummaryDecodeError("summary's zlib stream is truncated")
    if inflater.unused_data:
        raise SummaryDecodeError("trailing bytes after the summary's zlib stream")
    return packed


def _unpack(packed: bytes) -> Any:
    try:
        return msgpack.unpackb(packed, raw=False, use_list=True, strict_map_key=True)
    except Exception as error:  # msgpack raises several unrelated types for garbage
        raise SummaryDecodeError(f"summary is not valid msgpack: "
                                 f"{error.__class__.__name__}: {error}") from None
