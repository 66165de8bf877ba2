"""Hostile input on a real daemon's admin socket gets `bad_request`, never `internal` or silence."""

from __future__ import annotations

import json
import os
import random
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


ARGUMENT_NAMES = ("node_id", "keys", "target", "limit", "state", "task_id", "files", "request",
                  "count", "address", "undo", "key_prefix", "key_count", "priority",
                  "deadline_ms", "not_before_ms", "max_attempts", "rule", "cursor")
# Commands a fuzzer must not drive with valid-looking arguments: they write files anywhere
# (snapshot-save) or run for as long as asked (check-write, bench-*).
UNFUZZED = ("snapshot-save", "check-write", "bench-")
FUZZ_REQUESTS = 300


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    makers = [lambda: None, lambda: True, lambda: rng.randrange(-2**70, 2**70),
              lambda: rng.choice([0, 1, -1, 2**63 - 1, 2**63, 2**64]),
              lambda: "k" * rng.randrange(5), lambda: rng.random() * 1e300, lambda: "/tmp",
              lambda: [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))],
              lambda: {rng.choice(ARGUMENT_NAMES): _random_value(rng, depth + 1)
                       for _ in range(rng.randrange(4))}]
    return rng.choice(makers if depth < 3 else makers[:7])()


def test_random_arguments_to_every_command_never_answer_internal(socket_path: Path) -> None:
    """A seeded fuzzer (WARMD_SEED=<n> replays it) sends every command random arguments."""
    seed = int(os.environ.get("WARMD_SEED", random.randrange(2**32)))
    print(f"WARMD_SEED={seed}")
    rng = random.Random(seed)
    commands = sorted(name for name in _exchange(socket_path, _request("commands"))["result"]
                      if not name.startswith(UNFUZZED))
    for _ in range(FUZZ_REQUESTS):
        command = rng.choice(commands)
        names = rng.sample(ARGUMENT_NAMES, rng.randrange(4))
        args = {name: _random_value(rng) for name in names}
        reply = _exchange(socket_path, _request(command, **args))
        assert reply["ok"] or reply["error"]["code"] != "internal", (seed, command, args, reply)
    assert _exchange(socket_path, _request("ping"))["ok"] is True
