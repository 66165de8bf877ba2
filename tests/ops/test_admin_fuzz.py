"""Fuzzing the admin protocol: any line gets a Request or an AdminError, and a real AdminServer
answers every line with one JSON reply (never silence, never `internal`), then keeps serving.

Bounded: a few hundred hypothesis examples per property, well under a second each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmd.admin.protocol import (
    NESTING_DEPTH_MAX,
    ErrorCode,
    Request,
    decode_request,
    decode_response,
    encode_request,
    nesting_depth,
)
from warmd.admin.server import AdminServer
from warmd.errors import AdminError

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                         st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=30)
requests = st.fixed_dictionaries({"v": st.just(1), "command": st.sampled_from(
    ["ping", "echo", "status", "no-such", "Bad Name", ""]), "args": json_values,
    "id": st.one_of(st.integers(), json_scalars)})


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_nesting_depth_from_bytes_equals_the_parsed_depth(value: Any) -> None:
    """The byte scanner sees through strings (brackets, quotes, escapes) like the parser."""
    assert nesting_depth(json.dumps(value).encode()) == _depth(value)
    assert nesting_depth(json.dumps(value, ensure_ascii=False).encode()) == _depth(value)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=300), requests.map(lambda r: json.dumps(r).encode()),
                 st.builds(lambda depth, text: (text * depth).encode(),
                           st.integers(0, 5000), st.sampled_from(["[", "{\"a\":", "[{}", "\""]))))
def test_any_line_decodes_to_a_request_or_an_admin_error(line: bytes) -> None:
    """decode_request and decode_response raise AdminError and nothing else."""
    for decode in (decode_request, decode_response):
        with contextlib.suppress(AdminError):
            decode(line)


@settings(max_examples=200, deadline=None)
@given(requests)
def test_valid_requests_round_trip(document: dict[str, Any]) -> None:
    """Whatever decodes re-encodes to a line that decodes to the same request."""
    try:
        request = decode_request(json.dumps(document).encode())
    except AdminError as error:
        assert error.code == ErrorCode.BAD_REQUEST
        return
    assert decode_request(encode_request(request)) == request
    assert _depth(request.args) < NESTING_DEPTH_MAX


class _ServerThread:
    """An AdminServer with an `echo` handler on its own event loop in a thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.server = AdminServer(path)
        self.server.register("echo", lambda args: {"args": args})
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> _ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_ServerThread]:
    with _ServerThread(tmp_path_factory.mktemp("admin") / "a.sock") as running:
        yield running


def _exchange(path: Path, line: bytes) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(line.replace(b"\n", b" ") + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = client.recv(65536)
            assert chunk, f"no reply to {line[:80]!r}"
            reply += chunk
    return json.loads(reply)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.one_of(st.binary(min_size=1, max_size=200).filter(lambda b: b.strip()),
                      requests.map(lambda r: json.dumps(r).encode())))
def test_a_real_server_answers_every_line_and_never_internally(server: _ServerThread,
                                                              line: bytes) -> None:
    """One JSON reply per line; errors are the caller's (bad_request, unknown_command)."""
    reply = _exchange(server.path, line)
    assert reply.get("ok") in (True, False)
    if reply["ok"] is False:
        assert reply["error"]["code"] != ErrorCode.INTERNAL, reply
    assert _exchange(server.path, b'{"command":"ping"}')["ok"] is True


def test_request_type_is_what_the_server_dispatches() -> None:
    """Regression guard for the fuzzers above: a decoded request carries a dict of args."""
    request = decode_request(b'{"command":"echo","args":{"a":[1,{"b":null}]}}')
    assert request == Request("echo", {"a": [1, {"b": None}]}, 0)
