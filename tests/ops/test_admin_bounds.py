"""Hostile input on a real daemon's admin socket gets `bad_request`, never `internal` or silence."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from warmd.testing.procs import ProcessCluster


@pytest.fixture(scope="module")
def socket_path() -> Iterator[Path]:
    with ProcessCluster(1) as cluster:
        cluster.start_all().wait_for_leader()
        yield cluster.nodes[1].socket_path


def _exchange(path: Path, line: bytes) -> dict[str, Any]:
    """Send one raw line; return the reply object."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(line + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = client.recv(65536)
            assert chunk, "the daemon closed the connection without a reply"
            reply += chunk
    return json.loads(reply)


def _request(command: str, **args: Any) -> bytes:
    return json.dumps({"v": 1, "id": 1, "command": command, "args": args}).encode()


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deeply_nested_json_is_a_bad_request(socket_path: Path, depth: int) -> None:
    """JSON nested past 32 levels is refused before parsing (json.loads would recurse)."""
    line = b'{"v":1,"id":1,"command":"ping","args":{"a":' + b"[" * depth + b"]" * depth + b"}}"
    reply = _exchange(socket_path, line)
    assert reply["error"]["code"] == "bad_request" and "nested deeper" in reply["error"]["message"]


@pytest.mark.parametrize(("command", "args"), [
    ("remove", {"node_id": 2**64}),
    ("remove", {"node_id": 2**63}),
    ("promote", {"node_id": -1}),
    ("transfer-leader", {"node_id": 10**30}),
    ("add-learner", {"node_id": 2**64, "address": "127.0.0.1:9"}),
    ("drain", {"node_id": 2**64}),
    ("task-submit", {"key_prefix": "k", "key_count": 10**12, "target": "t"}),
    ("task-submit", {"keys": ["a"], "target": "t", "priority": 2**64}),
    ("check-write", {"count": 2**64}),
])
def test_out_of_range_integers_are_bad_requests(socket_path: Path, command: str,
                                                args: dict[str, Any]) -> None:
    """Node ids past int64, huge counts and priorities are refused by name, not `internal`."""
    reply = _exchange(socket_path, _request(command, **args))
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply


def test_the_daemon_still_answers_after_hostile_input(socket_path: Path) -> None:
    """After all of the above, a plain status call works."""
    reply = _exchange(socket_path, _request("status"))
    assert reply["ok"] is True and reply["result"]["role"] == "leader"
