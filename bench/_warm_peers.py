"""The warm-up bench's peers, each through its own client at its best settings.

Every peer writes the same work as warmd: 16-byte keys, 100-byte values, acknowledged
writes. Redis: `redis-benchmark -P 64` with and without `EX`, and redis-py (asyncio,
hiredis, one pipeline per connection holding its share of the whole batch). Memcached:
memcaslap (memaslap) from a `--cfg_cmd` file fixing key and value sizes, set-only; pymemcache
`set_many` from a thread pool over a `PooledClient`. HTTP: wrk against nginx, a C origin,
with and without HTTP/1.1 pipelining (bench/wrk_pipeline.lua).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from warmd.testing.servers import _wait_port, free_port

KEY_BYTES = 16  # redis-benchmark's `key:__rand_int__` expands to 16 bytes; every key here is 16
VALUE = b"v" * 100
TTL_S = 3600
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured run: its rate and the CPU seconds the client itself spent."""

    keys_s: float
    client_cpu_s: float


def key_of(prefix: str, number: int) -> str:
    """A KEY_BYTES-long key: the prefix, then the number zero-padded to fill the rest."""
    return prefix + str(number).zfill(KEY_BYTES - len(prefix))


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process and of its live children (nginx's
    workers under its master), from /proc (NaN where the process is absent)."""
    try:
        own = _stat_fields(pid)
    except OSError:
        return NAN
    ticks = int(own[11]) + int(own[12])
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(pid):
            continue
        try:
            fields = _stat_fields(int(entry.name))
        except OSError:
            continue  # gone meanwhile
        if fields[1] == str(pid):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, ... (utime is [11])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children_cpu_s() -> float:
    """User + system CPU seconds of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tool(args: list[str], timeout_s: float = 180) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                          check=False).stdout


def missing(binary: str, package: str) -> bool:
    """True (and say so) when a peer's binary is absent: its figures become NaN."""
    if shutil.which(binary) is not None:
        return False
    print(f"PEER MISSING: {binary} (Debian package {package}) - its ratios are nan")
    return True


# --- Redis -------------------------------------------------------------------------------

def redis_benchmark(port: int, count: int, with_ttl: bool) -> Sample:
    """`redis-benchmark -P 64` (default 50 clients) SETting 16-byte keys and 100-byte
    values; `with_ttl` sends warmd's own command, `SET key value EX 3600`.

    `-r count` draws keys at random from `count`, so about a third of its SETs overwrite a
    key already written (cheaper for the server than a new key): if anything, a help."""
    if missing("redis-benchmark", "redis-tools"):
        return Sample(NAN, NAN)
    command = (["SET", "key:__rand_int__", VALUE.decode(), "EX", str(TTL_S)] if with_ttl
               else ["-t", "set", "-d", str(len(VALUE))])
    cpu_before = children_cpu_s()
    output = run_tool(["redis-benchmark", "-p", str(port), "-P", "64", "-n", str(count),
                       "-r", str(count), "-q", "--csv", *command])
    match = re.search(r'^"SET[^"]*","([\d.]+)"', output, re.MULTILINE)
    return Sample(float(match.group(1)) if match else NAN, children_cpu_s() - cpu_before)


async def redis_py(port: int, count: int, connection_count: int) -> Sample:
    """redis-py at its best: asyncio with hiredis, the whole batch split into one
    non-transactional pipeline per connection, all connections at once (as warmd does)."""
    import redis.asyncio as redis_asyncio
    from redis.utils import HIREDIS_AVAILABLE

    if not HIREDIS_AVAILABLE:
        raise RuntimeError("redis-py runs without hiredis: not its best")
    # No socket timeout: sending a quarter of a million commands at once outlasts the
    # default 5 s on a loaded machine (warmd's own timeout is per 2,000-key chunk).
    pool = redis_asyncio.ConnectionPool(host="127.0.0.1", port=port, socket_timeout=None,
                                        max_connections=connection_count)
    client = redis_asyncio.Redis(connection_pool=pool)
    await asyncio.gather(*(client.ping() for _ in range(connection_count)))  # connect first
    keys = [key_of("redispy:", n) for n in range(count)]
    share = -(-count // connection_count)

    async def fill(part: list[str]) -> None:
        pipe = client.pipeline(transaction=False)
        for key in part:
            pipe.set(key, VALUE, ex=TTL_S)
        replies = await pipe.execute()
        if not all(replies):
            raise RuntimeError("redis-py: a SET was not acknowledged")

    started, cpu_before = time.perf_counter(), time.process_time()
    await asyncio.gather(*(fill(keys[start:start + share]) for start in range(0, count, share)))
    sample = Sample(count / (time.perf_counter() - started), time.process_time() - cpu_before)
    await client.aclose()
    await pool.disconnect()
    return sample


# --- Memcached ---------------------------------------------------------------------------

MEMCASLAP_THREADS = 2  # the machine's cores
MEMCASLAP_CONCURRENCY = 64  # it waits for each reply: concurrency is how it fills the server


def memcaslap_config(directory: Path) -> Path:
    """memaslap's `--cfg_cmd` file: keys of exactly KEY_BYTES, values of exactly 100 bytes,
    100 % set commands (command 0 is set)."""
    path = directory / "memcaslap.cfg"
    path.write_text(f"key\n{KEY_BYTES} {KEY_BYTES} 1\nvalue\n{len(VALUE)} {len(VALUE)} 1\n"
                    "cmd\n0 1\n")
    return path


def memcaslap(address: str, count: int) -> Sample:
    """`memcaslap -F cfg -x count -T 2 -c 64`: set-only, the same key and value sizes."""
    if missing("memcaslap", "libmemcached-tools"):
        return Sample(NAN, NAN)
    with tempfile.TemporaryDirectory(prefix="memcaslap-") as directory:
        config = memcaslap_config(Path(directory))
        cpu_before = children_cpu_s()
        output = run_tool(["memcaslap", "-s", address, "-F", str(config), "-x", str(count),
                           "-T", str(MEMCASLAP_THREADS), "-c", str(MEMCASLAP_CONCURRENCY)])
    match = re.search(r"^Run time: [\d.]+s Ops: (\d+) TPS: (\d+)", output, re.MULTILINE)
    if match is None or int(match.group(1)) < count * 0.99:
        print(f"memcaslap gave no full run: {output[-300:]!r}")
        return Sample(NAN, NAN)
    return Sample(float(match.group(2)), children_cpu_s() - cpu_before)


def pymemcache_pool(port: int, count: int, thread_count: int, batch_keys: int) -> Sample:
    """pymemcache at its fastest with acknowledged writes: `set_many` of `batch_keys` keys
    per call, from `thread_count` threads sharing a `PooledClient` (one socket each)."""
    from pymemcache.client.base import PooledClient

    client = PooledClient(("127.0.0.1", port), max_pool_size=thread_count)
    batches = [{key_of("pymc:", n): VALUE for n in range(start, min(count, start + batch_keys))}
               for start in range(0, count, batch_keys)]

    def store(batch: dict[str, bytes]) -> int:
        failed = client.set_many(batch, expire=TTL_S, noreply=False)
        return len(batch) - len(failed)

    with ThreadPoolExecutor(thread_count) as pool:
        list(pool.map(lambda n: client.set(key_of("pymc-c:", n), VALUE), range(thread_count)))
        started, cpu_before = time.perf_counter(), time.process_time()
        stored = sum(pool.map(store, batches))
        sample = Sample(stored / (time.perf_counter() - started),
                        time.process_time() - cpu_before)
    client.close()
    if stored != count:
        raise RuntimeError(f"pymemcache stored {stored} of {count} keys")
    return sample


# --- HTTP --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Origin:
    """A running origin: its base URL and pid (for its CPU seconds)."""

    url: str
    pid: int


NGINX_CONFIG = """\
daemon off;
master_process {master};
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {root};
    proxy_temp_path {root};
    fastcgi_temp_path {root};
    uwsgi_temp_path {root};
    scgi_temp_path {root};
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ return 200 "{body}"; }}
    }}
}}
"""


NGINX_WORKERS = 2  # one saturated its core under wrk on a quiet machine (busy 0.97-0.99)


@contextlib.contextmanager
def nginx_origin(workers: int = NGINX_WORKERS) -> Iterator[Origin]:
    """nginx answering every GET with a 100-byte body: a C origin whose CPU use (master and
    workers, see process_cpu_s) shows whether it, rather than the client, sets the rate."""
    if shutil.which("nginx") is None:
        raise RuntimeError("PEER MISSING: nginx (Debian package nginx-light)")
    with tempfile.TemporaryDirectory(prefix="warm-origin-") as root:
        port = free_port()
        config = Path(root) / "nginx.conf"
        config.write_text(NGINX_CONFIG.format(
            root=root, port=port, body=VALUE.decode(), workers=workers,
            master="on" if workers > 1 else "off"))
        process = subprocess.Popen(["nginx", "-c", str(config), "-p", root],
                                   stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            _wait_port(port, process, 10)  # type: ignore[arg-type]
            yield Origin(f"http://127.0.0.1:{port}", process.pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


WRK_PIPELINE_SCRIPT = Path(__file__).resolve().parent / "wrk_pipeline.lua"


def wrk(url: str, connections: int, seconds: float, pipeline: int = 1) -> Sample:
    """`wrk -t1 -c<connections>` for `seconds` against one URL (nginx serves every path
    alike); `pipeline` > 1 sends that many GETs per write on each connection (HTTP/1.1
    pipelining, bench/wrk_pipeline.lua), as warmd does with an http cache's `pipeline`."""
    if missing("wrk", "wrk"):
        return Sample(NAN, NAN)
    script = ["-s", str(WRK_PIPELINE_SCRIPT)] if pipeline > 1 else []
    arguments = ["--", str(pipeline)] if pipeline > 1 else []
    cpu_before = children_cpu_s()
    output = run_tool(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", *script, url,
                       *arguments])
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    return Sample(float(match.group(1)) if match else NAN, children_cpu_s() - cpu_before)
