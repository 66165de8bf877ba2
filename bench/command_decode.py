"""Microseconds per decode_command call: a Heartbeat, a 100-key SubmitTask and a Session.

The peer is bare `msgpack.unpackb` of the same bytes (no validation, no objects): the
floor any decoder of this wire format pays. The ratio says what validation costs.

Decoding (with validation) runs on the leader for every proposal and on every follower
for every applied entry, so its per-call cost bounds throughput. Not a test: run with
`.venv/bin/python bench/command_decode.py`.
"""

from __future__ import annotations

import argparse
import timeit

import msgpack

from warmd.statemachine.commands import (
    Heartbeat,
    Session,
    SubmitTask,
    TaskSpec,
    decode_command,
    encode_command,
)

CALLS = 20_000
REPEATS = 5


def _samples() -> dict[str, bytes]:
    spec = TaskSpec(keys=tuple(f"key:{number}" for number in range(100)), target="redis-main",
                    rule="r1", deadline_ms=10**13, required_labels=(("zone", "a"),))
    heartbeat = Heartbeat(node_id=3, now_ms=1_700_000_000_000)
    return {
        "Heartbeat": encode_command(heartbeat),
        "SubmitTask (100 keys)": encode_command(
            SubmitTask(task_id="task-1", spec=spec, now_ms=1_700_000_000_000)),
        "Session(Heartbeat)": encode_command(
            Session(client_id="c1", sequence=5, command=heartbeat)),
    }


def best_us(function, calls: int) -> float:
    """The best of REPEATS timings of `calls` calls, in us per call."""
    return min(timeit.repeat(function, number=calls, repeat=REPEATS)) / calls * 1e6


def main() -> None:
    """Print, per sample, µs per call for warmd and bare msgpack, and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per repeat")
    calls = 2_000 if parser.parse_args().quick else CALLS
    figures = []
    for name, data in _samples().items():
        warmd_us = best_us(lambda data=data: decode_command(data), calls)
        bare_us = best_us(lambda data=data: msgpack.unpackb(data), calls)
        print(f"{name:24s} warmd {warmd_us:8.2f} us/call  bare msgpack {bare_us:8.2f} us/call"
              f"  ratio {warmd_us / bare_us:6.1f}")
        figures.append((name.split()[0].split("(")[0].lower(), warmd_us, bare_us))
    print(" ".join(f"{key}_us={warmd:.2f} {key}_bare_us={bare:.2f}"
                   for key, warmd, bare in figures))


if __name__ == "__main__":
    main()
