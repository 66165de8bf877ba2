"""The measurement that bench/membership.py's cost model is calibrated on (`--calibrate`).

A real 3-node cluster (fsync on, shipped timing, /metrics on loopback): its members' CPU
per second while idle, then per write with 1 and with 64 writes in flight on the leader's
admin socket, with the Readies and log saves each member handled per write (from
`warmd_commit_duration_seconds_count` and `warmd_wal_fsync_duration_seconds_count`). Then
the simulator's counts per commit for the same shapes, under the calibrated model, so the
two can be set side by side: the fit (docs/benchmarks.md, "Membership") solves the idle
follower, the lone write and the batched write for the per-Ready, per-tick and per-entry
costs, with the per-message costs from the slope over real learners and the fsync's CPU
from a bare fdatasync loop.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Mapping

from _peers import DEFAULT_TIMING, BenchCluster, client_load, cpu_seconds

from warmd.testing.cost_sim import CostCluster, CostModel, CostRun
from warmd.testing.servers import free_port

COUNTERS = {"readies": "warmd_commit_duration_seconds_count",
            "saves": "warmd_wal_fsync_duration_seconds_count"}


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = {key: re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
             for key, name in COUNTERS.items()}
    return {key: float(match.group(1)) if match else 0.0 for key, match in found.items()}


def measure_real(rounds: int) -> None:
    with BenchCluster(3, DEFAULT_TIMING, cluster_id="warmd-calibration") as cluster:
        for node in cluster.nodes.values():
            node.web_port = free_port()
            cluster.write_config(node)
        cluster.start_all()
        leader = cluster.wait_for_leader(30)
        pids = {n: node.process.pid for n, node in cluster.nodes.items() if node.process}
        time.sleep(3)
        before = {n: cpu_seconds([pid]) for n, pid in pids.items()}
        time.sleep(15)
        idle = {n: (cpu_seconds([pid]) - before[n]) / 15 * 1e6 for n, pid in pids.items()}
        print("real idle CPU per second: " + _roles(leader, idle, "{:.0f} us"), flush=True)
        socket = str(cluster.nodes[leader].socket_path)
        for number in range(rounds):
            for flight, count, warmup in ((1, 400, 50), (64, 4000, 500)):
                cpu_before = {n: cpu_seconds([pid]) for n, pid in pids.items()}
                counts_before = {n: scrape(node.web_port or 0)
                                 for n, node in cluster.nodes.items()}
                load = client_load("warmd", socket, count, flight, warmup,
                                   tag=f"cal{number:x}{flight}")
                writes = count + warmup
                figures = {}
                for n, node in cluster.nodes.items():
                    counts = scrape(node.web_port or 0)
                    figures[n] = (f"{(cpu_seconds([pids[n]]) - cpu_before[n]) / writes * 1e6:.0f}"
                                  f" us, {(counts['readies'] - counts_before[n]['readies']) / writes:.3f}"
                                  f" readies, {(counts['saves'] - counts_before[n]['saves']) / writes:.3f}"
                                  " saves")
                print(f"real round {number + 1}, {flight} in flight, {load.ops_s:.0f} ops/s, "
                      f"per write: " + _roles(leader, figures, "{}"), flush=True)


def _roles(leader: int, values: Mapping[int, object], form: str) -> str:
    return "; ".join(f"{'leader' if n == leader else 'follower'} {form.format(value)}"
                     for n, value in sorted(values.items()))


def simulated_counts(model: CostModel) -> None:
    for flight in (1, 64):
        result = CostCluster(model, CostRun(in_flight=flight, shared_cores=2)).measure()
        for role, figures in (("leader", result.leader), ("follower", result.follower)):
            assert figures is not None
            print(f"sim, {flight} in flight, {role} per commit: CPU {figures.cpu_us:.0f} us, "
                  f"{figures.readies:.3f} readies, {figures.messages:.3f} messages, "
                  f"{figures.fsyncs:.3f} fsyncs, {figures.entries:.3f} entries", flush=True)


def calibrate(model: CostModel, rounds: int) -> None:
    measure_real(rounds)
    simulated_counts(model)
