"""Scale: warm 10k, 100k and 1M keys through a real 3-node cluster, and 10k tasks in one plan.

Keys: three real daemons (executors on, `capacity` tasks each, `batch_keys` keys per write
and per progress checkpoint) and one real redis-server. A round commits one plan of `keys`
keys in tasks of KEYS_PER_TASK keys on the leader (`bench-plan`: the planner's own path, a
SubmitPlan or a header and 256 KiB parts) and waits until every task is SUCCEEDED; its time
runs from the admin call to the last SUCCEEDED seen by a poll of the leader's status. The
peer is the bare warm runner (`KeyWriterRunner`, what an executor runs for a task) writing
the same keys, in the same tasks, batches and total concurrency (nodes x capacity), into the
same Redis from one process with no Raft at all. Rounds of ours and the peer's alternate;
the medians and spreads are printed. Redis is flushed before every round.

Measured per size: end-to-end keys/s and the ratio to the runner; the largest log record
on any node (every segment file's record headers, scanned while the round runs, so nothing
compacted away is missed; a record is the entry plus ~30 bytes of term and index); the
leader's peak RSS (VmHWM); log bytes on disk at the end; the snapshot bytes with the plan
live (just committed) and after it finished (compacted), whichever is larger is reported;
lost = keys missing in Redis or holding another task's value, or tasks not SUCCEEDED;
duplicated = assignments beyond one per task (from the leader's status of the plan tasks).

Where the time goes, per size (medians over the rounds), measures that load moves least:
CPU per key (the daemons' user+system time, every process of their groups, against the
bench process's own for the runner; Redis's beside each), and the slots' time split into
writing (the sum of every task's write time: the executor logs it with its Finish, the
runner returns it) and waiting (the rest of slots x elapsed: commits, scheduling, the plan).

Tasks: one plan of `--tasks-count` tasks of TASK_KEYS keys each: the assignment rate (tasks
assigned per second, first to last assignment, leader-stamped), pick-up latency (an
assignment to its executor's Start, both stamped on this box), and the state's size (the
snapshot with all tasks live) and leader RSS.

Last line: `keys=... e2e_keys_s=... runner_keys_s=... ratio_vs_runner=... max_entry_bytes=...
leader_rss_mb=... snapshot_bytes=... lost=... duplicated=...` for the largest size run.

Usage: python bench/scale.py [--quick] [--sizes 10000,100000,1000000] [--rounds 3]
       [--tasks-count 10000] [--keys-per-task 1000] [--prefetch N|auto] [--svg docs/scale.svg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.svg_plot import Series, line_chart
from chaos.ops import executor_settings, wait_executors
from warmd.codec import TAG_ENTRY
from warmd.runtime.commands.bench_plan import key_ranges
from warmd.runtime.execute.key_writer import KeyTask, KeyWriterRunner
from warmd.testing.procs import ProcessCluster, Timing
from warmd.testing.servers import ServerProcess, start_redis

NODES = 3
CAPACITY = 4
BATCH_KEYS = 1_000
KEYS_PER_TASK = 1_000  # the default; --keys-per-task changes it for ours and the peer alike
TASK_KEYS = 10  # keys of each task in the 10k-task plan
TASK_RUN_CAPACITY = 100  # slots per node in the task run
TIMING = Timing(tick_interval_ms=50, election_timeout_ticks=10, heartbeat_ticks=2,
                snapshot_interval_entries=100_000, proposal_timeout_ms=5_000)  # as shipped
LEASE_MS, HEARTBEAT_MS = 10_000, 500
POLL_S = 0.2
RECORD_HEADER = struct.Struct(">II")


@dataclass
class SegmentScanner:
    """The largest record in a node's log segments, read header by header as they grow."""

    directory: Path
    offsets: dict[Path, int] = field(default_factory=dict)
    largest: int = 0
    entries: int = 0  # log entries seen so far (records but hard states)

    def scan(self) -> None:
        for path in sorted(self.directory.rglob("log-*.seg")):
            offset = self.offsets.get(path, 0)
            try:
                with open(path, "rb") as handle:
                    size = path.stat().st_size
                    while offset + RECORD_HEADER.size <= size:
                        handle.seek(offset)
                        length, _ = RECORD_HEADER.unpack(handle.read(RECORD_HEADER.size))
                        if length == 0 or offset + RECORD_HEADER.size + length > size:
                            break  # preallocated zeros or a record still being written
                        self.largest = max(self.largest, length)
                        # [tag, ...] in msgpack: a fixarray byte, then the tag
                        self.entries += handle.read(2)[1:] == bytes([TAG_ENTRY])
                        offset += RECORD_HEADER.size + length
            except FileNotFoundError:
                continue  # compacted away after its records were counted
            self.offsets[path] = offset

    def log_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.directory.rglob("log-*.seg"))


@dataclass
class Round:
    keys: int
    seconds: float
    lost: int = 0
    duplicated: int = 0
    tasks: int = 0
    cpu_s: float = 0.0  # ours: the daemons; the peer: the bench process
    redis_cpu_s: float = 0.0
    write_s: float = 0.0  # every task's write time, summed
    to_first_start_s: float = 0.0  # ours: the admin call to the first Start (plan, first pass)
    running_s: float = 0.0  # ours: the first Start to the last Finish (logged times)
    entries: int = 0  # ours: log entries the round added (plan, tasks, heartbeats, all)
    prefetch: str = ""  # ours: each node's prefetch at the end of the round

    @property
    def cpu_us_per_key(self) -> float:
        return self.cpu_s / self.keys * 1e6

    @property
    def writing(self) -> float:
        """The share of the slots' time spent writing (the rest is waiting)."""
        return self.write_s / (NODES * CAPACITY * self.seconds)

    @property
    def wait_ms_per_task(self) -> float:
        return (NODES * CAPACITY * self.seconds - self.write_s) / self.tasks * 1000

    @property
    def write_ms_per_task(self) -> float:
        return self.write_s / self.tasks * 1000

    def breakdown(self) -> str:
        text = (f"CPU {self.cpu_us_per_key:.1f} us/key (+ Redis "
                f"{self.redis_cpu_s / self.keys * 1e6:.1f}), slots writing {self.writing:.0%}: "
                f"per task {self.write_ms_per_task:.0f} ms writing, "
                f"{self.wait_ms_per_task:.0f} ms waiting")
        if self.entries:
            text += (f"; {self.entries / self.tasks:.2f} log entries a task (all of them), "
                     f"prefetch {self.prefetch}")
        if self.running_s:
            text += (f"; first Start after {self.to_first_start_s:.2f} s, then slots writing "
                     f"{self.write_s / (NODES * CAPACITY * self.running_s):.0%} of "
                     f"{self.running_s:.2f} s")
        return text


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def group_cpu_seconds(groups: set[int]) -> float:
    """User + system CPU of every live process in the process groups (a daemon and its
    analysis worker), read from /proc."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) in groups:
                total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def task_ranges(keys: int, keys_per_task: int) -> list[tuple[int, int]]:
    """The [start, end) key numbers of each task, as bench-plan splits them."""
    return key_ranges(keys, max(1, keys // keys_per_task))


# ---------------------------------------------------------------- the peer: the bare runner


async def runner_round(server: ServerProcess, keys: int, prefix: str, keys_per_task: int
                       ) -> Round:
    """The same tasks, batches and concurrency as the cluster's, from one process."""
    port = server.port
    runner = KeyWriterRunner(BATCH_KEYS)
    target = f"redis://127.0.0.1:{port}"
    tasks = [KeyTask(task_id=f"{prefix}-{number:05d}", target=target, ttl_s=3600,
                     keys=[f"{prefix}:{n}" for n in range(start, end)])
             for number, (start, end) in enumerate(task_ranges(keys, keys_per_task))]
    queue: asyncio.Queue[KeyTask] = asyncio.Queue()
    for task in tasks:
        queue.put_nowait(task)
    write_s = 0.0

    async def worker() -> None:
        nonlocal write_s
        while not queue.empty():
            task = queue.get_nowait()
            result = await runner.run(task)
            write_s += result.duration_s
            if result.keys_ok != len(task.keys):
                raise RuntimeError(f"the runner wrote {result.keys_ok} of {len(task.keys)} "
                                   f"keys: {result.reason}")

    redis_cpu_s, cpu_s = cpu_seconds(server.process.pid), time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(NODES * CAPACITY)))
    elapsed = time.perf_counter() - started
    cpu_s, redis_cpu_s = time.process_time() - cpu_s, cpu_seconds(server.process.pid) - redis_cpu_s
    await runner.close()
    return Round(keys, elapsed, tasks=len(tasks), cpu_s=cpu_s, redis_cpu_s=redis_cpu_s,
                 write_s=write_s)


# ---------------------------------------------------------------- ours: the cluster


class ScaleCluster:
    """A 3-node cluster with executors, the Redis they warm, and the measurements."""

    def __init__(self, server: ServerProcess, capacity: int = CAPACITY,
                 prefetch: int | str | None = None) -> None:
        self.server = server
        self.cluster = ProcessCluster(NODES, TIMING)
        settings = executor_settings(LEASE_MS, HEARTBEAT_MS, capacity=capacity,
                                     batch_keys=BATCH_KEYS)
        if prefetch is not None:  # else the shipped default
            settings["prefetch"] = prefetch
        for node in self.cluster.nodes.values():
            node.executor.update(settings)
            self.cluster.write_config(node)
        self.scanners = [SegmentScanner(node.data_dir) for node in self.cluster.nodes.values()]
        self.snapshot_bytes = 0
        self.leader = 0

    def __enter__(self) -> ScaleCluster:
        self.cluster.start_all()
        self.leader = self.cluster.wait_for_leader(timeout_s=30)
        wait_executors(self.cluster, NODES, timeout_s=60)
        return self

    def __exit__(self, *exc: object) -> None:
        self.cluster.close()

    def scan(self) -> None:
        for scanner in self.scanners:
            scanner.scan()

    @property
    def max_entry_bytes(self) -> int:
        return max(scanner.largest for scanner in self.scanners)

    @property
    def log_bytes(self) -> int:
        return max(scanner.log_bytes() for scanner in self.scanners)

    def cpu_seconds(self) -> float:
        """CPU used so far by every node's process group."""
        return group_cpu_seconds({node.process.pid for node in self.cluster.nodes.values()
                                  if node.process is not None})

    def write_seconds(self, plan_id: str) -> float:
        """The summed write time of the plan's tasks, from the Finish events the executors
        logged (each with its run's write time)."""
        total = 0.0
        for event in self.transitions(plan_id):
            if event.get("command") == "Finish":
                total += float(event.get("write_s", 0.0))
        return total

    def run_window(self, plan_id: str) -> tuple[float, float]:
        """(first Start, last Finish) of the plan's tasks, as logged (epoch seconds)."""
        stamps: dict[str, list[float]] = {"Start": [], "Finish": []}
        for event in self.transitions(plan_id):
            if event.get("command") in stamps:
                stamps[event["command"]].append(
                    datetime.fromisoformat(event["timestamp"]).timestamp())
        return min(stamps["Start"]), max(stamps["Finish"])

    def entries(self) -> int:
        """Log entries seen so far in one node's segments (every node logs the same)."""
        return self.scanners[0].entries

    def prefetch(self) -> str:
        """Each node's prefetch now: its registration or its last change, from its log."""
        values = []
        for node in self.cluster.nodes.values():
            value = "?"
            for line in node.log_text().splitlines():
                if '"executor_registered"' in line or '"executor_prefetch_changed"' in line:
                    value = str(json.loads(line).get("prefetch", "?"))
            values.append(value)
        return ",".join(values)

    def transitions(self, plan_id: str) -> list[dict[str, Any]]:
        """Every node's logged task transitions of the plan (kept whatever compaction does)."""
        events = []
        for node in self.cluster.nodes.values():
            for line in node.log_text().splitlines():
                if '"task_transition"' in line and f'"{plan_id}-' in line:
                    events.append(json.loads(line))
        return events

    def elections(self) -> int:
        """Terms begun after the first: leader changes during the run (0 is the goal)."""
        return max(int(self.cluster.status(node_id)["term"])  # type: ignore[index]
                   for node_id in self.cluster.nodes) - 1

    def peak_rss_mb(self) -> float:
        """The highest peak RSS of any node: each may have led, and the leader holds the most."""
        return max(peak_rss_mb(node.process.pid) for node in self.cluster.nodes.values()
                   if node.process is not None)

    def snapshot(self) -> int:
        data_bytes = int(self.cluster.call(self.leader, "snapshot", timeout_s=300)["data_bytes"])
        self.snapshot_bytes = max(self.snapshot_bytes, data_bytes)
        return data_bytes

    def drain(self, draining: bool) -> None:
        for node_id in self.cluster.nodes:
            self.cluster.call(self.leader, "drain", timeout_s=60, node_id=node_id,
                              **({} if draining else {"undo": True}))

    def live_snapshot(self, keys: int, keys_per_task: int) -> tuple[int, int]:
        """(snapshot bytes with a plan of `keys` keys live, after it finished): untimed, the
        executors drained while the plan is committed and snapshotted, then let go."""
        tasks = len(task_ranges(keys, keys_per_task))
        self.drain(True)
        self.plan("live", keys, tasks)
        live = self.snapshot()
        self.drain(False)
        self.wait_done("live", tasks, timeout_s=max(120.0, keys / 1000))
        return live, self.snapshot()

    def plan(self, plan_id: str, keys: int, tasks: int) -> dict[str, Any]:
        return self.cluster.call(self.leader, "bench-plan", timeout_s=600, plan_id=plan_id,
                                 keys=keys, tasks=tasks, key_prefix=f"{plan_id}:",
                                 target=f"redis://{self.server.address}")

    def wait_done(self, plan_id: str, tasks: int, timeout_s: float) -> dict[str, int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.scan()
            last = self.cluster.status(self.leader)["warm_up"]["last_plan"]  # type: ignore[index]
            if last and last["plan_id"] == plan_id:
                states = last["tasks_by_state"]
                if sum(count for state, count in states.items()
                       if state in ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED", "SKIPPED")
                       ) >= tasks:
                    return dict(states)
            time.sleep(POLL_S)
        raise TimeoutError(f"plan {plan_id} not finished in {timeout_s} s")

    def tasks_of(self, plan_id: str) -> list[dict[str, Any]]:
        """Every task of the plan from the leader's state (pages of task-list)."""
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.cluster.call(self.leader, "task-list", timeout_s=60, plan=plan_id,
                                     limit=1000, **({"cursor": cursor} if cursor else {}))
            found.extend(page["tasks"])
            cursor = page.get("next_cursor")
            if not cursor:
                return found


def lost_keys(port: int, plan_id: str, keys: int, keys_per_task: int) -> int:
    """Keys of the plan missing in Redis or holding another task's value."""
    client = redis.Redis(port=port)
    lost = 0
    try:
        for number, (start, end) in enumerate(task_ranges(keys, keys_per_task)):
            values = client.mget([f"{plan_id}:{n}" for n in range(start, end)])
            expected = f"{plan_id}-{number:05d}".encode()
            lost += sum(1 for value in values if value != expected)
    finally:
        client.close()
    return lost


def cluster_round(scale: ScaleCluster, keys: int, plan_id: str, keys_per_task: int) -> Round:
    tasks = len(task_ranges(keys, keys_per_task))
    server_pid = scale.server.process.pid
    scale.scan()
    redis_cpu_s, cpu_s, entries = cpu_seconds(server_pid), scale.cpu_seconds(), scale.entries()
    started, started_wall = time.perf_counter(), time.time()
    committed = scale.plan(plan_id, keys, tasks)
    print(f"    plan of {tasks} tasks in {committed['entries']} entries: built in "
          f"{committed['build_s']:.2f} s, committed in {committed['commit_s']:.2f} s", flush=True)
    states = scale.wait_done(plan_id, tasks, timeout_s=max(120.0, keys / 1000))
    elapsed = time.perf_counter() - started
    cpu_s, redis_cpu_s = scale.cpu_seconds() - cpu_s, cpu_seconds(server_pid) - redis_cpu_s
    scale.scan()
    lost = lost_keys(scale.server.port, plan_id, keys, keys_per_task)
    first_start, last_finish = scale.run_window(plan_id)
    return Round(keys, elapsed, lost=lost + tasks - states.get("SUCCEEDED", 0), tasks=tasks,
                 cpu_s=cpu_s, redis_cpu_s=redis_cpu_s, write_s=scale.write_seconds(plan_id),
                 to_first_start_s=first_start - started_wall,
                 running_s=last_finish - first_start, entries=scale.entries() - entries,
                 prefetch=scale.prefetch())


def flush(port: int) -> None:
    client = redis.Redis(port=port)
    try:
        client.flushall()
    finally:
        client.close()


# ---------------------------------------------------------------- reporting


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} (min {min(values):,.0f}, max {max(values):,.0f})"


@dataclass
class SizeResult:
    keys: int
    e2e_keys_s: list[float]
    runner_keys_s: list[float]
    max_entry_bytes: int
    leader_rss_mb: float
    snapshot_bytes: int
    log_bytes: int
    lost: int
    duplicated: int
    elections: int

    @property
    def ratio(self) -> float:
        return statistics.median(self.e2e_keys_s) / statistics.median(self.runner_keys_s)

    def line(self) -> str:
        return (f"keys={self.keys} e2e_keys_s={statistics.median(self.e2e_keys_s):.0f} "
                f"runner_keys_s={statistics.median(self.runner_keys_s):.0f} "
                f"ratio_vs_runner={self.ratio:.2f} max_entry_bytes={self.max_entry_bytes} "
                f"leader_rss_mb={self.leader_rss_mb:.0f} snapshot_bytes={self.snapshot_bytes} "
                f"lost={self.lost} duplicated={self.duplicated}")


def run_size(server: ServerProcess, keys: int, rounds: int, keys_per_task: int,
             prefetch: int | str | None) -> SizeResult:
    ours: list[Round] = []
    peer: list[Round] = []
    with ScaleCluster(server, prefetch=prefetch) as scale:
        for number in range(rounds):
            flush(server.port)
            peer.append(uvloop.run(runner_round(server, keys, f"r{number}", keys_per_task)))
            flush(server.port)
            ours.append(cluster_round(scale, keys, f"s{keys}-{number}", keys_per_task))
            print(f"  round {number + 1}: cluster {ours[-1].seconds:.2f} s, runner "
                  f"{peer[-1].seconds:.2f} s, lost {ours[-1].lost}\n    cluster: "
                  f"{ours[-1].breakdown()}\n    runner:  {peer[-1].breakdown()}", flush=True)
        duplicated = sum(duplicated_starts(scale, f"s{keys}-{number}") for number in range(rounds))
        live, finished = scale.live_snapshot(keys, keys_per_task)
        print(f"    snapshot: {live:,} B with the plan live, {finished:,} B once it finished",
              flush=True)
        result = SizeResult(
            keys=keys, e2e_keys_s=[r.keys / r.seconds for r in ours],
            runner_keys_s=[r.keys / r.seconds for r in peer], max_entry_bytes=scale.max_entry_bytes,
            leader_rss_mb=scale.peak_rss_mb(), snapshot_bytes=scale.snapshot_bytes,
            log_bytes=scale.log_bytes, lost=sum(r.lost for r in ours), duplicated=duplicated,
            elections=scale.elections())
    print(f"{keys:>9,} keys: cluster {spread(result.e2e_keys_s)} keys/s, runner "
          f"{spread(result.runner_keys_s)} keys/s, ratio {result.ratio:.2f}; largest record "
          f"{result.max_entry_bytes:,} B, leader peak RSS {result.leader_rss_mb:.0f} MB, "
          f"snapshot {result.snapshot_bytes:,} B, log {result.log_bytes:,} B, "
          f"{result.elections} elections", flush=True)
    return result


def duplicated_starts(scale: ScaleCluster, plan_id: str) -> int:
    """Runs beyond one per task of the plan: every node's log of applied Starts (the
    executor logs each Start the state machine applied), so a compacted plan counts too."""
    starts = Counter(event["task_id"] for event in scale.transitions(plan_id)
                     if event.get("command") == "Start")
    return sum(count - 1 for count in starts.values())


@dataclass
class TaskRun:
    tasks: int
    seconds: float
    assign_rate: float
    pickup_p50_ms: float
    pickup_p99_ms: float
    snapshot_bytes: int
    rss_mb: float
    elections: int

    def line(self) -> str:
        return (f"tasks={self.tasks} tasks_s={self.tasks / self.seconds:.0f} "
                f"assign_rate_s={self.assign_rate:.0f} pickup_p50_ms={self.pickup_p50_ms:.0f} "
                f"pickup_p99_ms={self.pickup_p99_ms:.0f} state_bytes={self.snapshot_bytes} "
                f"rss_mb={self.rss_mb:.0f} elections={self.elections}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def task_run(server: ServerProcess, count: int) -> TaskRun:
    """One plan of `count` tasks of TASK_KEYS keys; TASK_RUN_CAPACITY slots per node so the
    leader's placement, not the executors' slots, bounds the rate."""
    with ScaleCluster(server, capacity=TASK_RUN_CAPACITY) as scale:
        started = time.perf_counter()
        scale.plan("tasks", count * TASK_KEYS, count)
        scale.wait_done("tasks", count, timeout_s=600)
        elapsed = time.perf_counter() - started
        attempts = [task["attempts"][-1] for task in scale.tasks_of("tasks")]
        assigned = sorted(attempt["assigned_ms"] for attempt in attempts)
        pickups = [attempt["started_ms"] - attempt["assigned_ms"] for attempt in attempts]
        rate = (len(assigned) - 1) / max(0.001, (assigned[-1] - assigned[0]) / 1000)
        return TaskRun(count, elapsed, rate, percentile(pickups, 0.5), percentile(pickups, 0.99),
                       scale.snapshot(), scale.peak_rss_mb(), scale.elections())


def _prefetch(text: str) -> int | str:
    return text if text == "auto" else int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k keys, 2 rounds, no task run")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks-count", type=int, default=10_000, help="0: no task run")
    parser.add_argument("--keys-per-task", type=int, default=KEYS_PER_TASK)
    parser.add_argument("--prefetch", type=_prefetch, default=None,
                        help='the executors\' tasks held ahead per slot, or "auto" (default: '
                             'as shipped)')
    parser.add_argument("--svg", default="")
    args = parser.parse_args()
    sizes = [100_000] if args.quick else [int(size) for size in args.sizes.split(",")]
    rounds = 2 if args.quick else args.rounds
    server = start_redis()
    try:
        if not args.quick and args.tasks_count:
            print(task_run(server, args.tasks_count).line(), flush=True)
            flush(server.port)
        results = [run_size(server, keys, rounds, args.keys_per_task, args.prefetch)
                   for keys in sizes]
    finally:
        server.stop()
    if args.svg:
        write_svg(Path(args.svg), results)
    print(results[-1].line())
    return 0


def write_svg(path: Path, results: list[SizeResult]) -> None:
    keys = [float(result.keys) for result in results]
    chart = line_chart(
        "Keys/s end to end through a 3-node cluster vs the bare runner", "keys in the plan",
        "keys/s (median)", [
            Series("cluster (plan -> commit -> all SUCCEEDED)", keys,
                   [statistics.median(result.e2e_keys_s) for result in results]),
            Series("bare runner, same tasks and concurrency", keys,
                   [statistics.median(result.runner_keys_s) for result in results]),
        ], log_x=True)
    path.write_text(chart)


if __name__ == "__main__":
    raise SystemExit(main())
