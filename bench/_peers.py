"""Shared helpers for the Raft benches: warmd, PySyncObj and etcd clusters on loopback.

All three run as three real processes each, on free ports, in a fresh temporary directory
that is removed afterwards; every process is started in its own session and killed by its
own pid on exit. The workload is the same for all: closed-loop 100-byte writes with a fixed
number in flight, acknowledged after commit (and apply).

- warmd: fsync on, the config's default Raft timing and segment size. Driven from a client
  process (bench/_raft_client.py, `client_load`) through a node's admin socket with
  pipelined `bench-write` requests in msgpack frames (warmd.admin.pipeline), to a follower (which forwards to the leader) or to the
  leader; or, labelled "in-process", by `bench-propose` inside the leader (`warmd_load`).
- PySyncObj: bench/_pysyncobj_node.py, journal file on (PySyncObj does not fsync it); the
  load runs in the leader's process (PySyncObj has no client protocol).
- etcd (Debian etcd-server, 3.4): fsync on, default timing (heartbeat 100 ms, election
  1000 ms) unless given; driven by the same client process through the native gRPC client
  `aetcd` (`client_load`). The failover bench's one-put probes (`etcd_put_once`) use the
  JSON gateway over aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from warmd.testing.procs import NodeProcess, ProcessCluster, Timing
from warmd.testing.servers import free_port

BENCH_DIR = Path(__file__).resolve().parent
# warmd's own defaults (warmd/config.py), so failover is measured "with default settings".
DEFAULT_TIMING = Timing(tick_interval_ms=50, election_timeout_ticks=10, heartbeat_ticks=2,
                        snapshot_interval_entries=100_000, proposal_timeout_ms=5000)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One system's figures for one run; latencies in milliseconds."""

    ops_s: float
    p50_ms: float
    p99_ms: float
    failures: int = 0
    client_cpu_us: float = 0.0  # CPU of the client process per write (0: no client)
    server_cpu_us: float = 0.0  # CPU of the three members together per write (0: not measured)


def percentile_ms(sorted_s: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted durations (seconds) in milliseconds."""
    if not sorted_s:
        return 0.0
    rank = min(len(sorted_s) - 1, max(0, int(fraction * len(sorted_s) + 0.999999) - 1))
    return sorted_s[rank] * 1000


def kill_process(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL one process we started (its own session) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


# ---------------------------------------------------------------------------- warmd

class BenchCluster(ProcessCluster):
    """ProcessCluster with the config's default segment size (tests use 64 KiB segments)."""

    def write_config(self, node: NodeProcess, secret_path: Path | None = None) -> None:
        super().write_config(node, secret_path)
        text = node.config_path.read_text().replace("segment_bytes = 65536\n", "")
        node.config_path.write_text(text)


def warmd_load(cluster: ProcessCluster, count: int, concurrency: int,
               size_bytes: int = 100) -> LoadResult:
    """Run `bench-propose` on the current leader; raises if any write was rejected."""
    leader = cluster.wait_for_leader(30)
    report = cluster.call(leader, "bench-propose", timeout_s=600, count=count,
                          size_bytes=size_bytes, concurrency=concurrency)
    if report["rejected"]:
        raise RuntimeError(f"warmd rejected {report['rejected']} bench writes: {report}")
    return LoadResult(report["ops_per_s"], report["p50_ms"], report["p99_ms"])


def client_load(system: str, target: str, count: int, concurrency: int, warmup: int,
                size_bytes: int = 100, tag: str = "", timeout_s: float = 900) -> LoadResult:
    """Run bench/_raft_client.py against `target` (warmd: an admin socket path; etcd:
    host:port) in a process of its own; raises if it fails or reports no write. `tag` names
    the run's warmd sessions: give each run on one cluster its own."""
    command = [sys.executable, str(BENCH_DIR / "_raft_client.py"), system, target,
               "--count", str(count), "--concurrency", str(concurrency),
               "--warmup", str(warmup), "--size", str(size_bytes)]
    command += ["--tag", tag] if tag else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                          check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{system} client failed ({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["failures"]:
        print(f"  {system} client: {report['failures']} failed writes, first: "
              f"{report['first_error']}", flush=True)
    if report["failures"] == count:
        raise RuntimeError(f"every {system} write failed: {report['first_error']}")
    return LoadResult(report["ops_s"], report["p50_ms"], report["p99_ms"], report["failures"],
                      report["client_cpu_us"])


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds the processes have used so far (/proc/PID/stat)."""
    total_ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total_ticks += int(fields[11]) + int(fields[12])
    return total_ticks / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- PySyncObj

@dataclass(frozen=True, slots=True)
class PySyncObjSettings:
    """The SyncObjConf settings that bound PySyncObj's throughput (_pysyncobj_node.py)."""

    batch: bool = True  # appendEntriesUseBatch
    append_period_s: float = 0.1  # appendEntriesPeriod
    tick_period_s: float = 0.05  # autoTickPeriod

    def arguments(self) -> list[str]:
        flags = ["--append-period", str(self.append_period_s),
                 "--tick-period", str(self.tick_period_s)]
        return flags if self.batch else [*flags, "--no-batch"]

    def __str__(self) -> str:
        return (f"batch={'on' if self.batch else 'off'} "
                f"appendEntriesPeriod={self.append_period_s:g}s "
                f"autoTickPeriod={self.tick_period_s:g}s")


def pysyncobj_load(count: int, concurrency: int, size_bytes: int = 100,
                   timeout_s: float = 300, warmup: int = 0,
                   settings: PySyncObjSettings = PySyncObjSettings()) -> LoadResult:
    """Three PySyncObj processes with journals; the leader runs the load and reports."""
    root = Path(tempfile.mkdtemp(prefix="pso-"))
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    processes = []
    try:
        for number, address in enumerate(addresses):
            command = [sys.executable, str(BENCH_DIR / "_pysyncobj_node.py"), "--self", address,
                       "--journal", str(root / f"journal{number}"), "--count", str(count),
                       "--size", str(size_bytes), "--concurrency", str(concurrency),
                       "--warmup", str(warmup), *settings.arguments()]
            for partner in addresses:
                if partner != address:
                    command += ["--partner", partner]
            processes.append(subprocess.Popen(command, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL, start_new_session=True))
        report = _first_report(processes, timeout_s)
        return LoadResult(report["ops_s"], report["p50_ms"], report["p99_ms"],
                          report["failures"])
    finally:
        for process in processes:
            kill_process(process)
        shutil.rmtree(root, ignore_errors=True)


def _first_report(processes: list[subprocess.Popen[bytes]], timeout_s: float) -> dict:
    """The JSON line the leading node prints (the others print nothing)."""
    import selectors

    selector = selectors.DefaultSelector()
    for process in processes:
        assert process.stdout is not None
        selector.register(process.stdout, selectors.EVENT_READ)
    deadline_s = time.monotonic() + timeout_s
    while time.monotonic() < deadline_s:
        for key, _ in selector.select(timeout=1.0):
            line = key.fileobj.readline()  # type: ignore[union-attr]
            if line.strip():
                return json.loads(line)
    raise TimeoutError(f"PySyncObj gave no report within {timeout_s} s")


# ---------------------------------------------------------------------------- etcd

@dataclass(slots=True)
class EtcdMember:
    name: str
    peer_port: int
    client_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def client_address(self) -> str:
        return f"127.0.0.1:{self.client_port}"


class EtcdCluster:
    """Three etcd members on loopback, default settings unless `heartbeat_ms` and
    `election_ms` are given (etcd's --heartbeat-interval, --election-timeout); a context
    manager."""

    def __init__(self, heartbeat_ms: int | None = None, election_ms: int | None = None) -> None:
        self.timing = [] if heartbeat_ms is None or election_ms is None else [
            "--heartbeat-interval", str(heartbeat_ms), "--election-timeout", str(election_ms)]
        self.root = Path(tempfile.mkdtemp(prefix="etcd-"))
        self.members = [EtcdMember(f"m{number}", free_port(), free_port(),
                                   self.root / f"m{number}") for number in range(3)]
        self.token = f"bench-{os.getpid()}-{time.monotonic_ns()}"

    def start(self, member: EtcdMember, new: bool = True) -> None:
        cluster = ",".join(f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members)
        command = ["etcd", "--name", member.name, "--data-dir", str(member.data_dir),
                   "--listen-peer-urls", f"http://127.0.0.1:{member.peer_port}",
                   "--initial-advertise-peer-urls", f"http://127.0.0.1:{member.peer_port}",
                   "--listen-client-urls", member.client_url,
                   "--advertise-client-urls", member.client_url,
                   "--initial-cluster", cluster, "--initial-cluster-token", self.token,
                   "--initial-cluster-state", "new", "--log-level", "error", *self.timing]
        log = open(self.root / f"{member.name}.log", "ab")  # noqa: SIM115 - the child owns it
        member.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def start_all(self) -> EtcdCluster:
        for member in self.members:
            self.start(member)
        return self

    def kill(self, member: EtcdMember) -> None:
        if member.process is not None:
            kill_process(member.process)
            member.process = None

    def close(self) -> None:
        for member in self.members:
            self.kill(member)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def leader(self, timeout_s: float = 30.0) -> EtcdMember:
        """The member that reports itself leader (polls /v3/maintenance/status)."""
        return asyncio.run(self._leader(timeout_s))

    async def _leader(self, timeout_s: float) -> EtcdMember:
        deadline_s = time.monotonic() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
            while time.monotonic() < deadline_s:
                for member in self.members:
                    if member.process is None:
                        continue
                    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                        async with session.post(f"{member.client_url}/v3/maintenance/status",
                                                json={}) as reply:
                            status = await reply.json(content_type=None)
                        if status.get("leader") == status.get("header", {}).get("member_id"):
                            return member
                await asyncio.sleep(0.05)
        raise TimeoutError(f"etcd elected no leader within {timeout_s} s")


def put_body(number: int, size_bytes: int) -> dict[str, str]:
    """A /v3/kv/put body whose key and value together are `size_bytes` bytes."""
    key = f"k{number % 100000:06d}".encode()
    value = b"v" * (size_bytes - len(key))
    return {"key": base64.b64encode(key).decode(), "value": base64.b64encode(value).decode()}


async def etcd_put_once(url: str, timeout_s: float) -> bool:
    """One put; True when etcd acknowledged it within `timeout_s`."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                f"{url}/v3/kv/put", json=put_body(0, 100)) as reply:
            await reply.read()
            return reply.status == 200
    except (TimeoutError, aiohttp.ClientError):
        return False


# ---------------------------------------------------------------------------- rounds

@dataclass(frozen=True, slots=True)
class Spread:
    """The median of a few rounds and their range: what a bench on a shared machine
    reports instead of one figure (or the best one, which flatters whoever had a quiet
    moment)."""

    median: float
    low: float
    high: float

    @staticmethod
    def of(values: list[float]) -> Spread:
        finite = [value for value in values if value == value]
        if not finite:
            return Spread(float("nan"), float("nan"), float("nan"))
        return Spread(statistics.median(finite), min(finite), max(finite))

    def describe(self, digits: int = 0) -> str:
        return f"{self.median:,.{digits}f} ({self.low:,.{digits}f}-{self.high:,.{digits}f})"


def interleaved_rounds(rounds: int, systems: list[str]) -> list[list[str]]:
    """The order to run `systems` in each round: every round runs each once, and the order
    rotates, so no system always runs first (fresh server) or last (after the others)."""
    return [systems[number % len(systems):] + systems[:number % len(systems)]
            for number in range(rounds)]
