"""Probe (issue 18 item 1): what msgspec would save on decoding applied commands.

Every member decodes and validates each committed entry (`decode_command`: msgpack, then
`schema.build` per dataclass). msgspec decodes msgpack straight into typed Structs in C,
checking types and `Meta` ranges as it goes. This probe writes the bench's command mix as
msgspec Structs with the same field names, order, tags and the checks that matter here
(names 1..256 characters, minimums, a Batch's size), checks that both encoders produce the
same bytes and that each decoder reads the other's, and prints microseconds per call:

* `Session(Heartbeat)`: the 100-byte entry of `bench/raft_throughput.py` (`bench-write`);
* `Batch(Start, ReportProgress, Finish)`: what an executor proposes for a task;
* `SubmitTask` with 100 keys: what a plan carries per task.

It is a probe, not a bench: msgspec is not a dependency of warmd (project rule: one
library per job, and msgpack does the job in frames, WAL segments, snapshots and summaries),
so run it with msgspec installed by hand: `.venv/bin/pip install msgspec` then
`.venv/bin/python bench/command_msgspec_probe.py [--quick]`.
"""

from __future__ import annotations

import argparse
from typing import Annotated, Union

import msgspec
from command_decode import CALLS, best_us

from warmd.statemachine.commands import (
    Batch,
    Finish,
    Heartbeat,
    ReportProgress,
    Session,
    Start,
    SubmitTask,
    TaskSpec,
    decode_command,
    encode_command,
)

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Stamp = Annotated[int, msgspec.Meta(ge=0)]
NodeId = Annotated[int, msgspec.Meta(ge=1)]
Fence = Annotated[int, msgspec.Meta(ge=1)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=65_536)]


class _Command(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True,
               tag_field="type",
               tag=lambda name: name.lstrip("M")):
    """Tagged by class name without the probe's `M` prefix, as warmd's wire form is."""


class MHeartbeat(_Command, omit_defaults=True):
    node_id: NodeId
    now_ms: Stamp
    fsync_p99_us: Annotated[int, msgspec.Meta(ge=-1)] = -1


class MStart(_Command):
    task_id: Name
    node_id: NodeId
    fence: Fence
    now_ms: Stamp


class MReportProgress(_Command):
    task_id: Name
    node_id: NodeId
    fence: Fence
    keys_done: Annotated[int, msgspec.Meta(ge=0)]
    now_ms: Stamp


class MFinish(_Command):
    task_id: Name
    node_id: NodeId
    fence: Fence
    now_ms: Stamp
    result: Annotated[str, msgspec.Meta(max_length=4096)] = ""


class MTaskSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Untagged, nested; the cross-field checks of TaskSpec in __post_init__."""

    keys: Annotated[tuple[Key, ...], msgspec.Meta(min_length=1, max_length=100_000)]
    target: Name
    rule: str = ""
    priority: int = 0
    not_before_ms: Stamp = 0
    deadline_ms: int | None = None
    required_labels: tuple[tuple[Name, str], ...] = ()
    max_attempts: Annotated[int, msgspec.Meta(ge=1)] = 3
    gate: str = ""
    gate_timeout_ms: Annotated[int, msgspec.Meta(ge=1)] = 600_000
    loader: str = ""
    loader_url: str = ""
    cache_keys: tuple[str, ...] = ()
    ttl_s: Annotated[int, msgspec.Meta(ge=0)] = 0
    ttl_jitter_permille: Annotated[int, msgspec.Meta(ge=0, lt=1000)] = 100
    rate_per_s: Annotated[int, msgspec.Meta(ge=0)] = 0
    concurrency: Annotated[int, msgspec.Meta(ge=0)] = 0
    slo_latency_ms: Annotated[int, msgspec.Meta(ge=0)] = 0
    slo_permille: Annotated[int, msgspec.Meta(ge=0)] = 0
    plan_id: str = ""
    rules_version: str = ""
    value: str = ""

    def __post_init__(self) -> None:
        if self.cache_keys and len(self.cache_keys) != len(self.keys):
            raise ValueError("cache_keys must be empty or hold one cache key per key")
        if self.deadline_ms is not None and self.deadline_ms <= self.not_before_ms:
            raise ValueError("deadline_ms must be after not_before_ms")


class MSubmitTask(_Command):
    task_id: Name
    spec: MTaskSpec
    now_ms: Stamp


Batched = Union[MHeartbeat, MStart, MReportProgress, MFinish]  # noqa: UP007


class MBatch(_Command):
    commands: Annotated[tuple[Batched, ...], msgspec.Meta(min_length=1, max_length=2_000)]


class MSession(_Command):
    client_id: Name
    sequence: Annotated[int, msgspec.Meta(ge=1)]
    command: Union[MHeartbeat, MStart, MReportProgress, MFinish, MSubmitTask, MBatch]  # noqa: UP007


MCommand = Union[MSession, MBatch, MSubmitTask, MHeartbeat, MStart, MReportProgress, MFinish]  # noqa: UP007


def _samples() -> dict[str, tuple[bytes, object]]:
    """The bench's command mix, as warmd bytes and as the probe's equivalent Structs."""
    now = 1_700_000_000_000
    keys = tuple(f"key:{number}" for number in range(100))
    heartbeat = Heartbeat(node_id=3, now_ms=now)
    client_id = "bench-client-" + "x" * 2  # a 100-byte entry, as bench-write pads it to
    reports = (Start(task_id="task-1", node_id=2, fence=7, now_ms=now),
               ReportProgress(task_id="task-1", node_id=2, fence=7, keys_done=50, now_ms=now),
               Finish(task_id="task-1", node_id=2, fence=7, now_ms=now, result="ok"))
    spec = TaskSpec(keys=keys, target="redis-main", rule="r1", deadline_ms=10**13)
    return {
        "Session(Heartbeat)": (
            encode_command(Session(client_id=client_id, sequence=5, command=heartbeat)),
            MSession(client_id=client_id, sequence=5, command=MHeartbeat(node_id=3, now_ms=now))),
        "Batch(Start,Progress,Finish)": (
            encode_command(Batch(commands=reports)),
            MBatch(commands=(MStart(task_id="task-1", node_id=2, fence=7, now_ms=now),
                             MReportProgress(task_id="task-1", node_id=2, fence=7, keys_done=50,
                                             now_ms=now),
                             MFinish(task_id="task-1", node_id=2, fence=7, now_ms=now,
                                     result="ok")))),
        "SubmitTask(100 keys)": (
            encode_command(SubmitTask(task_id="task-1", spec=spec, now_ms=now)),
            MSubmitTask(task_id="task-1", spec=MTaskSpec(keys=keys, target="redis-main",
                                                         rule="r1", deadline_ms=10**13),
                        now_ms=now)),
    }


def _check_compatible(name: str, data: bytes, struct: object, decoder: msgspec.msgpack.Decoder,
                      encoder: msgspec.msgpack.Encoder) -> None:
    """Same bytes both ways, or the probe's figures would compare different work."""
    if encoder.encode(struct) != data:
        raise SystemExit(f"{name}: msgspec encodes other bytes than warmd")
    if decoder.decode(data) != struct:
        raise SystemExit(f"{name}: msgspec decodes warmd's bytes to something else")
    for garbage in (data[:-1], b"\x81\xa4type\xa3Foo", b"\x80", data.replace(b"now_ms", b"now_xx")):
        try:
            decoder.decode(garbage)
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue
        raise SystemExit(f"{name}: msgspec accepted garbage {garbage!r:.60}")


def main() -> None:
    """Print µs per decode and per encode, warmd against msgspec, per sample."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per repeat")
    calls = 2_000 if parser.parse_args().quick else CALLS
    decoder, encoder = msgspec.msgpack.Decoder(MCommand), msgspec.msgpack.Encoder()
    figures = []
    for name, (data, struct) in _samples().items():
        _check_compatible(name, data, struct, decoder, encoder)
        command = decode_command(data)
        row = (best_us(lambda data=data: decode_command(data), calls),
               best_us(lambda data=data: decoder.decode(data), calls),
               best_us(lambda command=command: encode_command(command), calls),
               best_us(lambda struct=struct: encoder.encode(struct), calls))
        print(f"{name:30s} decode warmd {row[0]:7.2f} msgspec {row[1]:6.2f} us  "
              f"encode warmd {row[2]:7.2f} msgspec {row[3]:6.2f} us  ({len(data)} bytes)")
        figures.append((name.split("(")[0].lower(), *row))
    print(" ".join(f"{key}_decode_us={dw:.2f} {key}_decode_msgspec_us={dm:.2f} "
                   f"{key}_encode_us={ew:.2f} {key}_encode_msgspec_us={em:.2f}"
                   for key, dw, dm, ew, em in figures))


if __name__ == "__main__":
    main()
