"""The admin protocol's binary encoding: the same request and reply objects as protocol.py,
as msgpack maps in `[u32 length][payload]` frames (warmd/frames.py), for programs that keep
many requests in flight. A connection switches to it with the `protocol` request.

Apart from protocol.py so that warmctl, which speaks JSON lines only, neither loads msgpack
nor needs it installed. A frame is at most LINE_BYTES_MAX bytes either way; msgpack's C
decoder has a fixed stack (a deeply nested frame fails, it cannot exhaust recursion), map
keys must be strings and extension types are refused.
"""

from __future__ import annotations

from typing import Any

import msgpack

from warmd.admin.protocol import (
    LINE_BYTES_MAX,
    ErrorCode,
    ReplyTooLarge,
    Request,
    Response,
    fitted_response,
    request_document,
    request_from,
    response_from,
)
from warmd.codec import pack
from warmd.errors import AdminError
from warmd.frames import FRAME_HEADER


def encode_request_frame(request: Request) -> bytes:
    """One request frame.

    Raises:
        AdminError: (bad_request) the command name is invalid or an argument cannot be
            encoded, or the frame would exceed LINE_BYTES_MAX.
    """
    return _pack(request_document(request), ErrorCode.BAD_REQUEST)


def decode_request_frame(payload: bytes) -> Request:
    """The request in one frame's payload (its length header taken off).

    Raises:
        AdminError: (bad_request) the payload is not a valid request map.
    """
    return request_from(_unpack(payload, ErrorCode.BAD_REQUEST))


def encode_response_frame(response: Response) -> bytes:
    """One reply frame; what cannot be encoded or is too large becomes an error reply."""
    return fitted_response(response, _pack)


def decode_response_frame(payload: bytes) -> Response:
    """The reply in one frame's payload.

    Raises:
        AdminError: (protocol) the payload is not a valid reply map.
    """
    return response_from(_unpack(payload, ErrorCode.PROTOCOL))


def _pack(document: dict[str, Any], code: ErrorCode) -> bytes:
    try:
        payload = pack(document)
    except (TypeError, ValueError, OverflowError) as error:
        raise AdminError(code, f"cannot encode as msgpack: {error}") from None
    if len(payload) > LINE_BYTES_MAX:
        raise ReplyTooLarge(code, len(payload))
    return FRAME_HEADER.pack(len(payload)) + payload


def _refuse_extension(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not part of the admin protocol")


def _unpack(payload: bytes, code: ErrorCode) -> Any:
    try:
        return msgpack.unpackb(payload, raw=False, ext_hook=_refuse_extension)
    except ValueError as error:  # msgpack's own errors are ValueErrors too
        raise AdminError(code, f"not a msgpack map: {error}") from None
