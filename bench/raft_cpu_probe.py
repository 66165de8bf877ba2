"""Probe: CPU and garbage-collector time per write of EACH warmd member, through a follower.

`bench/raft_throughput.py` prints the three members' CPU per write together; finding where
the CPU goes needs it per member: the entry follower (the client's admin socket, the
forwarding, its apply), the leader (replication, its apply) and the other follower (its
apply). Same load as the bench's headline path (bench/_raft_client.py, pipelined
`bench-write` frames to a follower, 100-byte entries), rounds one after the other on one
cluster. Per run it reads each member's user+system CPU from /proc and its collector's
time from `bench-gc` (gc.callbacks in the daemon) before and after, and prints microseconds
per write (warm-up writes included in the divisor, as the bench does), then medians.
It also prints each member's Raft messages sent per write (the transport's frame count,
from `bench-gc`) and its TCP data segments sent to its peers per 1,000 writes (from
`ss -tinp`: a segment is one write of a batch of frames to one peer on loopback).
A daemon from before `bench-gc` shows 0 for the collector, so the probe also measures older
code (docs/benchmarks.md, "Session 7", says how its daemons were run from a checkout).

    .venv/bin/python bench/raft_cpu_probe.py [--rounds 3] [--flight 64 1024] [--count 20000]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import DEFAULT_TIMING, BenchCluster, client_load, cpu_seconds

from warmd.admin.client import AdminClientError

ROLES = ("entry follower", "leader", "other follower")


def _roles(cluster: BenchCluster) -> dict[str, int]:
    leader = cluster.wait_for_leader(30)
    followers = sorted(node_id for node_id in cluster.nodes if node_id != leader)
    return dict(zip(ROLES, (followers[0], leader, followers[1]), strict=True))


@dataclass(frozen=True, slots=True)
class Sample:
    """One member's totals so far: CPU seconds, and the collector's runs and CPU seconds
    per generation."""

    cpu_s: float
    collections: tuple[int, int, int]
    gc_s: tuple[float, float, float]
    segments: int  # TCP data segments sent on its established connections
    messages: int  # Raft messages sent to its peers (0 from a daemon before they were counted)


_SOCKET_OWNER = re.compile(r"pid=(\d+),")
_SEGMENTS = re.compile(r"\bdata_segs_out:(\d+)")


def _tcp_segments() -> dict[int, int]:
    """Per process id: the data segments sent on its established TCP sockets."""
    listing = subprocess.run(["ss", "-tinpH", "state", "established"], capture_output=True,
                             text=True, check=True).stdout
    totals: dict[int, int] = {}
    owners: list[int] = []
    for line in listing.splitlines():
        if not line.startswith(("\t", " ")):
            owners = [int(pid) for pid in _SOCKET_OWNER.findall(line)]
            continue
        segments = sum(int(found) for found in _SEGMENTS.findall(line))
        for pid in owners:
            totals[pid] = totals.get(pid, 0) + segments
    return totals


def _sample(cluster: BenchCluster, roles: dict[str, int]) -> dict[str, Sample]:
    samples = {}
    tcp = _tcp_segments()
    for role, node_id in roles.items():
        process = cluster.nodes[node_id].process
        assert process is not None
        try:
            gc_report = cluster.call(node_id, "bench-gc")
        except AdminClientError:  # a daemon from before bench-gc: no collector figures
            gc_report = {"collections": (0, 0, 0), "seconds": (0.0, 0.0, 0.0)}
        samples[role] = Sample(cpu_seconds([process.pid]), tuple(gc_report["collections"]),
                               tuple(gc_report["seconds"]), tcp.get(process.pid, 0),
                               gc_report.get("frames_out", 0))
    return samples


def _run(cluster: BenchCluster, flight: int, count: int, warmup: int, tag: str
         ) -> dict[str, tuple[float, ...]]:
    """One load; each member's CPU µs, collector µs, TCP segments (per 1,000) and messages per write,
    and the run's (ops/s, client CPU µs per write)."""
    roles = _roles(cluster)
    before = _sample(cluster, roles)
    result = client_load("warmd", str(cluster.nodes[roles["entry follower"]].socket_path),
                         count, flight, warmup, tag=tag)
    after = _sample(cluster, roles)
    writes = count + warmup
    per_write = {role: ((after[role].cpu_s - before[role].cpu_s) / writes * 1e6,
                        (sum(after[role].gc_s) - sum(before[role].gc_s)) / writes * 1e6,
                        (after[role].segments - before[role].segments) / writes * 1000,
                        (after[role].messages - before[role].messages) / writes)
                 for role in roles}
    per_write["ops/s"] = (result.ops_s, result.client_cpu_us)
    print("  collections (ms) per generation 0/1/2: " + ", ".join(
        f"{role} " + "/".join(
            f"{after[role].collections[g] - before[role].collections[g]} "
            f"({(after[role].gc_s[g] - before[role].gc_s[g]) * 1e3:.0f})" for g in range(3))
        for role in roles), flush=True)
    return per_write


def _medians(flight: int, figures: list[dict[str, tuple[float, ...]]]) -> str:
    def median(role: str, item: int) -> float:
        return statistics.median(run[role][item] for run in figures)
    cpu = {role: median(role, 0) for role in ROLES}
    return (f"median {flight} in flight: {median('ops/s', 0):.0f} ops/s, CPU/write "
            + ", ".join(f"{role} {cpu[role]:.1f} us (gc {median(role, 1):.1f})" for role in ROLES)
            + f", members {sum(cpu.values()):.1f} us, client {median('ops/s', 1):.1f} us"
            + "; messages per write / TCP segments per 1,000 writes: "
            + ", ".join(f"{role} {median(role, 3):.3f}/{median(role, 2):.1f}" for role in ROLES)
            + f", members {sum(median(role, 3) for role in ROLES):.3f}"
            + f"/{sum(median(role, 2) for role in ROLES):.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flight", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    args = parser.parse_args()
    runs: dict[int, list[dict[str, tuple[float, ...]]]] = {flight: [] for flight in args.flight}
    with BenchCluster(3, DEFAULT_TIMING, cluster_id="warmd-cpu-probe") as cluster:
        cluster.start_all()
        cluster.wait_for_leader(30)
        for number in range(args.rounds):
            for flight in args.flight:
                figures = _run(cluster, flight, args.count, args.warmup, f"c{number:x}{flight:x}")
                runs[flight].append(figures)
                print(f"round {number + 1} {flight:>5} in flight  {figures['ops/s'][0]:7.0f} ops/s  "
                      + "  ".join(f"{role} {cpu:5.1f} us (gc {gc_us:4.1f}, {messages:.3f} msg,"
                                  f" {segments:.1f} seg/1k)"
                                  for role, (cpu, gc_us, segments, messages) in (
                                      (role, figures[role]) for role in ROLES))
                      + f"  client {figures['ops/s'][1]:4.1f} us", flush=True)
    for flight, figures in runs.items():
        print(_medians(flight, figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
