"""The admin wire format: one JSON object per line over the Unix socket, requests and replies.

JSON lines by default, because an operator can talk to a stuck daemon with
`socat - UNIX-CONNECT:/run/warmd/admin.sock` and read the answer. A program that sends many
requests may switch its connection to binary frames: it sends the `protocol` request
`{"command": "protocol", "args": {"frames": "msgpack"}}` as a JSON line, and after its
JSON reply both sides send `[u32 big-endian length][msgpack map]` frames holding the same
objects (warmd/frames.py; at most LINE_BYTES_MAX bytes each). Decoding a frame costs a
fraction of parsing a JSON line, and a reader takes every frame a read brought at once. A
daemon without binary frames answers `unknown_command`: the client stays on JSON lines.
Encoding and decoding are pure; errors travel as `{"code", "message"}` and become
`AdminError`, whose code maps to a sysexits-style exit status for warmctl.

Replies come in the order of the requests, except that a client may keep many requests of
a pipelined command (`bench-write`) in flight on one connection: their replies come as each
is done, and the client matches them by `id`.

    request:  {"v": 1, "id": 7, "command": "status", "args": {}}
              (+ "token": "<secret>" to act as a named token instead of the socket's uid)
    success:  {"v": 1, "id": 7, "ok": true, "result": {...}}
    failure:  {"v": 1, "id": 7, "ok": false, "error": {"code": "not_leader", "message": "..."}}
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from warmd.errors import AdminError

PROTOCOL_VERSION = 1
LINE_BYTES_MAX = 1 << 20  # a request or reply longer than this is refused, not buffered
NESTING_DEPTH_MAX = 32  # arrays and objects inside one another; no command needs more than 4
COMMAND_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,63}")
PROTOCOL_COMMAND = "protocol"  # switches a connection's encoding (module docstring)
FRAMES_MSGPACK = "msgpack"


class ErrorCode(StrEnum):
    """Why a request failed; each maps to one warmctl exit status."""

    BAD_REQUEST = "bad_request"  # malformed line, wrong types, bad arguments
    UNKNOWN_COMMAND = "unknown_command"
    PERMISSION_DENIED = "permission_denied"  # peer credentials not allowed, or socket mode
    NOT_LEADER = "not_leader"  # retry on the leader (the message names it)
    UNAVAILABLE = "unavailable"  # no daemon, no quorum, shutting down
    TIMEOUT = "timeout"
    FAILED = "failed"  # the operation ran and failed (e.g. a rejected command)
    PROTOCOL = "protocol"  # the peer spoke something that is not this protocol
    TOO_LARGE = "too_large"  # the reply would exceed LINE_BYTES_MAX: ask for a smaller page
    INTERNAL = "internal"  # a bug in the daemon; its log has the traceback


# sysexits.h values, so scripts can tell "try again" (75) from "you may not" (77).
EXIT_STATUS: Mapping[str, int] = {
    ErrorCode.BAD_REQUEST: 64,
    ErrorCode.UNKNOWN_COMMAND: 64,
    ErrorCode.PERMISSION_DENIED: 77,
    ErrorCode.NOT_LEADER: 75,
    ErrorCode.UNAVAILABLE: 69,
    ErrorCode.TIMEOUT: 75,
    ErrorCode.FAILED: 1,
    ErrorCode.PROTOCOL: 76,
    ErrorCode.TOO_LARGE: 1,
    ErrorCode.INTERNAL: 70,
}


def exit_status(code: str) -> int:
    """The warmctl exit status for an error code (1 for codes this version does not know)."""
    return EXIT_STATUS.get(code, 1)


@dataclass(frozen=True, slots=True)
class Request:
    command: str
    args: Mapping[str, Any] = field(default_factory=dict)
    request_id: int = 0
    token: str | None = field(default=None, repr=False)  # a named token's secret, if given


@dataclass(frozen=True, slots=True)
class Response:
    request_id: int
    result: Any = None
    error_code: str | None = None
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return self.error_code is None

    def raise_for_error(self) -> Any:
        """Return the result, or raise the error this response carries.

        Raises:
            AdminError: the daemon answered with an error.
        """
        if self.error_code is not None:
            raise AdminError(self.error_code, self.error_message)
        return self.result


def encode_request(request: Request) -> bytes:
    """One request line.

    Raises:
        AdminError: (bad_request) the command name is invalid or an argument is not JSON.
    """
    return _dump(request_document(request), ErrorCode.BAD_REQUEST)


def request_document(request: Request) -> dict[str, Any]:
    """The object a request travels as (either encoding).

    Raises:
        AdminError: (bad_request) the command name is invalid.
    """
    _check_command(request.command)
    document = {
        "v": PROTOCOL_VERSION,
        "id": request.request_id,
        "command": request.command,
        "args": dict(request.args),
    }
    if request.token is not None:
        document["token"] = request.token
    return document


def decode_request(line: bytes) -> Request:
    """Parse one request line.

    Raises:
        AdminError: (bad_request) the line is not a valid request object.
    """
    return request_from(_load(line, ErrorCode.BAD_REQUEST))


def request_from(document: Any) -> Request:
    """The request a decoded object (either encoding) holds.

    Raises:
        AdminError: (bad_request) it is not a valid request object.
    """
    document = checked_document(document, ErrorCode.BAD_REQUEST)
    request_id = document.get("id", 0)
    if not isinstance(request_id, int) or isinstance(request_id, bool):
        raise AdminError(ErrorCode.BAD_REQUEST, '"id" must be an integer')
    command = document.get("command")
    if not isinstance(command, str):
        raise AdminError(ErrorCode.BAD_REQUEST, '"command" must be a string')
    _check_command(command)
    args = document.get("args", {})
    if not isinstance(args, dict):
        raise AdminError(ErrorCode.BAD_REQUEST, '"args" must be an object')
    token = document.get("token")
    if token is not None and not isinstance(token, str):
        raise AdminError(ErrorCode.BAD_REQUEST, '"token" must be a string')
    return Request(command, args, request_id, token)


Dump = Callable[[dict[str, Any], ErrorCode], bytes]


def encode_response(response: Response) -> bytes:
    """One reply line; a result that is not JSON becomes an internal error reply, and one
    longer than LINE_BYTES_MAX a `too_large` error that says how to page."""
    return fitted_response(response, _dump)


def fitted_response(response: Response, dump: Dump) -> bytes:
    """The reply encoded by `dump` (either encoding); a result it cannot encode becomes an
    internal error reply, and one longer than LINE_BYTES_MAX a `too_large` error."""
    document: dict[str, Any]
    if response.ok:
        document = {"v": PROTOCOL_VERSION, "id": response.request_id, "ok": True,
                    "result": response.result}
    else:
        error = {"code": response.error_code, "message": response.error_message}
        document = {"v": PROTOCOL_VERSION, "id": response.request_id, "ok": False,
                    "error": error}
    try:
        return dump(document, ErrorCode.INTERNAL)
    except ReplyTooLarge as error:
        message = (f"the reply ({error.size_bytes} bytes) exceeds the {LINE_BYTES_MAX}-byte "
                   "line limit; ask for fewer items with `limit` and continue from the "
                   "reply's `next_cursor` (warmctl pages by itself)")
        return fitted_response(
            Response(response.request_id, None, ErrorCode.TOO_LARGE, message), dump)
    except AdminError as error:
        return fitted_response(error_response(response.request_id, error), dump)


def decode_response(line: bytes) -> Response:
    """Parse one reply line.

    Raises:
        AdminError: (protocol) the line is not a valid reply object.
    """
    return response_from(_load(line, ErrorCode.PROTOCOL))


def response_from(document: Any) -> Response:
    """The reply a decoded object (either encoding) holds.

    Raises:
        AdminError: (protocol) it is not a valid reply object.
    """
    document = checked_document(document, ErrorCode.PROTOCOL)
    request_id = document.get("id", 0)
    if document.get("ok") is True:
        return Response(request_id, document.get("result"))
    error = document.get("error")
    if document.get("ok") is not False or not isinstance(error, dict):
        raise AdminError(ErrorCode.PROTOCOL, "reply has neither a result nor an error")
    code, message = error.get("code"), error.get("message", "")
    if not isinstance(code, str) or not isinstance(message, str):
        raise AdminError(ErrorCode.PROTOCOL, "reply error needs a string code and message")
    return Response(request_id, None, code, message)


def error_response(request_id: int, error: AdminError) -> Response:
    return Response(request_id, None, error.code, error.message)


def _check_command(command: str) -> None:
    if not COMMAND_PATTERN.fullmatch(command):
        raise AdminError(
            ErrorCode.BAD_REQUEST,
            f"command {command[:70]!r} is not a lowercase name like 'status' or 'add-learner'",
        )


class ReplyTooLarge(AdminError):
    """An encoded message longer than LINE_BYTES_MAX."""

    def __init__(self, code: str, size_bytes: int) -> None:
        super().__init__(code, f"message of {size_bytes} bytes exceeds {LINE_BYTES_MAX}")
        self.size_bytes = size_bytes


def _dump(document: dict[str, Any], code: ErrorCode) -> bytes:
    try:
        text = json.dumps(document, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise AdminError(code, f"cannot encode as JSON: {error}") from None
    line = text.encode("utf-8") + b"\n"
    if len(line) > LINE_BYTES_MAX:
        raise ReplyTooLarge(code, len(line))
    return line


def _load(line: bytes, code: ErrorCode) -> Any:
    if len(line) > LINE_BYTES_MAX:
        raise AdminError(code, f"line of {len(line)} bytes exceeds {LINE_BYTES_MAX}")
    # json.loads would recurse once per level. Counting the opening brackets first is one C
    # pass: a line with no more of them than the limit cannot nest deeper (every request).
    if (line.count(b"[") + line.count(b"{") > NESTING_DEPTH_MAX
            and nesting_depth(line) > NESTING_DEPTH_MAX):
        raise AdminError(code, f"JSON nested deeper than {NESTING_DEPTH_MAX} levels")
    try:
        document = json.loads(line)
    except (UnicodeDecodeError, ValueError) as error:
        raise AdminError(code, f"not a JSON line: {error}") from None
    return document


def checked_document(document: Any, code: ErrorCode) -> dict[str, Any]:
    """`document` if it is an object of this protocol's version, else AdminError(code)."""
    if not isinstance(document, dict):
        raise AdminError(code, "expected an object (a map)")
    version = document.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise AdminError(code, f"protocol version {version!r} is not {PROTOCOL_VERSION}")
    return document



_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEPS = bytes.maketrans(b"[]{}", b"\x02\x00\x02\x00")  # open +1, close -1 (minus 1)


def nesting_depth(line: bytes) -> int:
    """How deep arrays and objects nest in a JSON text, from its bytes, before parsing it:
    strings are cut out, then brackets counted (C-speed passes; no recursion at all)."""
    steps = _JSON_STRING.sub(b"", line).translate(None, _NOT_BRACKETS).translate(_BRACKET_STEPS)
    return max(itertools.accumulate(step - 1 for step in steps), default=0)
