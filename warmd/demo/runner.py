"""The demo, end to end on one machine: redis-server, the shop and a three-node warmd cluster
as child processes, days of history, then the cold / naive / warm / steady first-screen phases.

The history is written as one access log per warmd node (a load balancer spread the sessions),
so the leader plans from the summaries every node shipped. The measured first screens are
those of the hour after the history (new articles, the new hour's stats, that hour's hot
products) and never reach warmd: the shop's live log is not tailed. The budget is a fifth of
the window's distinct keys. Cold is measured before the daemons start (they would warm the
cache during it). The naive phase warms the same budget with the last day's top targets
through the same executors. The warm-up is production's: the runner restarts the shop and
flushes its Redis, warmd notices the flush, the leader plans from the merged summaries, and
the executors replay the plan through the shop. Every child dies with the runner: Ctrl-C,
SIGTERM or exit.
Run as `python -m warmd.demo.runner --headless --json`.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis.asyncio as aioredis

from warmd.cache.http import HttpClient
from warmd.demo.cluster import DemoCluster, DemoClusterSpec, PlanProgress
from warmd.demo.measure import (
    MeasureSettings,
    PhaseResult,
    first_screen_loads,
    format_table,
    results_json,
    warm_budget,
)
from warmd.demo.measure import run_phases as measure_phases
from warmd.demo.naive import top_targets
from warmd.demo.shop import create_database
from warmd.demo.traffic import TrafficSpec, write_split_history
from warmd.errors import CacheError, WarmdError
from warmd.logging import configure as configure_logging
from warmd.testing.servers import ServerProcess, free_port, start_redis

SHOP_START_TIMEOUT_S = 15.0


class DemoError(WarmdError):
    """A demo child would not start or the warm-up did not finish as it should."""


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """The whole demo run: history shape, measurement, warm-up budget (None: a fifth of the
    measured window's distinct keys), cluster, timeouts."""

    traffic: TrafficSpec = field(
        default_factory=lambda: TrafficSpec(days=5.0, sessions_per_day=1500))
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    warm_budget: int | None = None
    shop_delay_ms: str = "20-50"
    nodes: int = 3
    summaries_timeout_s: float = 90.0  # every node has shipped the summary of its history
    plan_timeout_s: float = 30.0  # the flush is noticed and a plan committed
    warm_up_timeout_s: float = 150.0  # every task of that plan has finished


@dataclass(frozen=True, slots=True)
class DemoLayout:
    """Where the demo's files are, and how much history each node's log holds."""

    directory: Path
    history_paths: tuple[Path, ...]
    history_lines: tuple[int, ...]
    history_end_s: float  # the measured window opens here


class ShopProcess:
    """The shop as a child process in its own process group; `reset` is a cold restart."""

    def __init__(self, directory: Path, redis_url: str, delay_ms: str = "20-50") -> None:
        self.directory, self.redis_url, self.delay_ms = directory, redis_url, delay_ms
        self.db_path, self.log_path = directory / "shop.sqlite", directory / "access.log"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "warmd.demo.shop", "--port", str(self.port),
                   "--redis", self.redis_url, "--db", str(self.db_path),
                   "--log", str(self.log_path), "--delay-ms", self.delay_ms]
        with open(self.directory / "shop.stderr", "ab") as stderr:
            # A new session: the shop gets no terminal Ctrl-C; the runner stops it itself,
            # so a shop is never half-way through its own shutdown when we restart it.
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                            start_new_session=True)

    def stop(self) -> None:
        """SIGTERM the shop's process group, SIGKILL it after 5 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    async def wait_ready(self) -> None:
        """Poll /_stats until the shop answers.

        Raises:
            DemoError: the shop exited or did not answer within SHOP_START_TIMEOUT_S.
        """
        client = HttpClient(base_url=self.base_url, timeout_s=1.0)
        deadline = time.monotonic() + SHOP_START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise DemoError(f"the shop exited; see {self.directory / 'shop.stderr'}")
                with contextlib.suppress(CacheError):
                    await client.get("/_stats")
                    return
                await asyncio.sleep(0.05)
        finally:
            await client.close()
        raise DemoError(f"the shop did not answer within {SHOP_START_TIMEOUT_S} s")

    async def reset(self) -> None:
        """Restart the shop, then flush its cache: a cold start.

        The restart comes first so that a warm-up planned on the flush never replays into a
        shop that is still starting; the end state is the same either way.
        """
        self.stop()
        self.start()
        await self.wait_ready()
        redis = aioredis.from_url(self.redis_url)
        try:
            await redis.flushall()
        finally:
            await redis.aclose()


class Children:
    """Every child of the demo; `stop_all` is idempotent and runs at exit whatever happens."""

    def __init__(self, keep_files: bool = False) -> None:
        self.redis: ServerProcess | None = None
        self.shop: ShopProcess | None = None
        self.cluster: DemoCluster | None = None
        self.keep_files = keep_files
        atexit.register(self.stop_all)

    def stop_all(self) -> None:
        """The daemons first (they watch the others), then the shop, then redis."""
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            cluster.stop_all(keep_files=self.keep_files)
            if self.keep_files:
                _announce(f"demo: kept the daemons' files in {cluster.root}")
        if self.shop is not None:
            self.shop.stop()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


def _announce(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def start_demo(settings: DemoSettings, children: Children, directory: Path,
                     say: Callable[[str], None] = _announce) -> DemoLayout:
    """Start redis, write one history log per node, start the shop (its live log is empty)."""
    (directory / "redis").mkdir(exist_ok=True)
    children.redis = start_redis(directory=directory / "redis")
    shop = children.shop = ShopProcess(directory, f"redis://{children.redis.address}/0",
                                       settings.shop_delay_ms)
    create_database(shop.db_path)
    history_end_s = time.time()
    paths = tuple(directory / f"history-node{n}.log" for n in range(1, settings.nodes + 1))
    lines = await asyncio.to_thread(write_split_history, paths, settings.traffic, history_end_s)
    say(f"demo: redis at {children.redis.address}, shop at {shop.base_url}; wrote "
        f"{sum(lines)} lines ({settings.traffic.days:g} days) of history as {len(paths)} "
        f"access logs, one per warmd node ({', '.join(map(str, lines))} lines)")
    shop.start()
    await shop.wait_ready()
    return DemoLayout(directory, paths, lines, history_end_s)


class ClusterWarmUp:
    """The warm-up as production runs it: `start()` brings the cluster up and waits until
    every node shipped its history; after the runner's flush and restart, `wait()` follows
    the plan warmd made on the flush until its tasks are done."""

    def __init__(self, settings: DemoSettings, children: Children, layout: DemoLayout,
                 budget: int, say: Callable[[str], None] = _announce) -> None:
        self.settings, self.children, self.layout, self.say = settings, children, layout, say
        self.budget = budget
        self.known_plans: set[str] = set()
        self.plan: PlanProgress | None = None
        self.duration_s = 0.0

    @property
    def cluster(self) -> DemoCluster:
        if self.children.cluster is None:
            raise DemoError("the warmd cluster is not running")
        return self.children.cluster

    async def start(self) -> None:
        """Start the daemons and wait for a leader and for every node's history summary.

        Raises:
            DemoError, DemoClusterError: a child is missing, a daemon died, or a wait
                timed out (the message names the daemons' log files).
        """
        shop, redis = self.children.shop, self.children.redis
        if shop is None or redis is None:
            raise DemoError("the shop and redis must run before the cluster starts")
        started = time.monotonic()
        spec = DemoClusterSpec(shop_url=shop.base_url, redis_address=redis.address,
                               history_paths=self.layout.history_paths, budget=self.budget,
                               horizon_ms=int(self.settings.measure.window_s * 1000))
        self.children.cluster = DemoCluster(spec)
        self.cluster.start_all()
        leader = await self.cluster.wait_leader()
        self.say(f"demo: warmd cluster up: {spec.size} nodes, leader node {leader} "
                 f"({time.monotonic() - started:.1f} s)")
        wanted = dict(enumerate(self.layout.history_lines, start=1))
        shipped = await self.cluster.wait_summaries(wanted, self.settings.summaries_timeout_s)
        self.say(f"demo: summaries shipped: {shipped.describe()} "
                 f"({time.monotonic() - started:.1f} s after start)")
        self.known_plans = {plan.plan_id for plan in self.cluster.plans()}

    async def naive(self) -> list[str]:
        """Warm the last day's top `budget` targets through the cluster's executors, as
        tasks submitted by hand; return them (the naive warm set).

        Raises:
            DemoError: a task did not succeed.
        """
        started = time.monotonic()
        targets = await asyncio.to_thread(top_targets, self.layout.history_paths,
                                          self.layout.history_end_s, self.budget)
        task_ids = self.cluster.submit_replay(targets)
        states = await self.cluster.wait_tasks_finished(task_ids,
                                                        self.settings.warm_up_timeout_s)
        if any(state != "SUCCEEDED" for state in states.values()):
            raise DemoError(f"the naive warm-up did not succeed: {states}")
        self.say(f"demo: naive warm-up done in {time.monotonic() - started:.1f} s: the last "
                 f"day's top {len(targets)} targets replayed through the shop")
        return targets

    async def wait(self) -> list[str]:
        """Follow the first plan made after `start()`; return the requests it warmed.

        Raises:
            DemoError: no plan came, it was empty, or a task did not succeed.
        """
        started = time.monotonic()
        plan = await self.cluster.wait_new_plan(self.known_plans, self.settings.plan_timeout_s)
        self.say(f"demo: warmd planned after the flush: {plan.describe()}")
        if plan.tasks == 0:
            raise DemoError(f"plan {plan.plan_id} holds no task; see `warmctl plans`")
        plan = await self.cluster.wait_plan_finished(plan.plan_id,
                                                     self.settings.warm_up_timeout_s)
        self.plan, self.duration_s = plan, time.monotonic() - started
        if plan.succeeded < plan.tasks:
            raise DemoError(f"the warm-up did not succeed: {plan.describe()}")
        self.say(f"demo: warm-up done in {self.duration_s:.1f} s: {plan.tasks} tasks "
                 f"SUCCEEDED, {plan.requests} requests replayed through the shop")
        return self.cluster.plan_targets(plan.plan_id)


async def run_demo_phases(settings: DemoSettings, children: Children, layout: DemoLayout,
                          say: Callable[[str], None] = _announce) -> dict[str, PhaseResult]:
    """cold (before warmd runs), then the cluster and the naive warm set, then the flush and
    warmd's warm-up, then steady. Cold is measured before the daemons start: they would warm
    during it."""
    if children.shop is None:
        raise DemoError("the shop did not start")
    loads = first_screen_loads(settings.measure, layout.history_end_s)
    budget = warm_budget(loads) if settings.warm_budget is None else settings.warm_budget
    say(f"demo: measuring {settings.measure.request_limit} first-screen requests of the hour "
        f"after the history; warm budget {budget} requests")
    warm_up = ClusterWarmUp(settings, children, layout, budget, say)
    return await measure_phases(children.shop, warm_up.wait, settings.measure, loads,
                                before_warm=warm_up.start, naive_warm_up=warm_up.naive)


async def run_demo(settings: DemoSettings, children: Children,
                   directory: Path) -> dict[str, PhaseResult]:
    """Start everything, then run the three phases; the children stay up."""
    layout = await start_demo(settings, children, directory)
    return await run_demo_phases(settings, children, layout)


def _raise_interrupt(signal_number: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM take one road: unwind, stop every child, exit 130."""
    raise KeyboardInterrupt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options, shared by `python -m warmd.demo.runner` and `warmd demo`."""
    parser.add_argument("--headless", action="store_true", help="run once and exit")
    parser.add_argument("--json", action="store_true", help="print the table as one JSON object")
    parser.add_argument("--seed", type=int, default=1, help="seed of the history traffic")
    parser.add_argument("--days", type=float, default=5.0, help="days of history")
    parser.add_argument("--sessions-per-day", type=int, default=1500)
    parser.add_argument("--requests", type=int, default=1000,
                        help="first-screen requests timed per phase")
    parser.add_argument("--budget", type=int, default=None,
                        help="requests to warm at most (default: a fifth of the measured "
                             "window's distinct keys)")
    parser.add_argument("--keep-files", action="store_true",
                        help="keep the logs, configs and data of every child for a look after")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.days <= 0 or args.sessions_per_day <= 0 or args.requests <= 0
            or (args.budget is not None and args.budget < 0)):
        parser.error("--days, --sessions-per-day and --requests must be > 0, --budget >= 0")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m warmd.demo.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    return args


def settings_from(args: argparse.Namespace) -> DemoSettings:
    return DemoSettings(
        traffic=TrafficSpec(seed=args.seed, days=args.days,
                            sessions_per_day=args.sessions_per_day),
        measure=MeasureSettings(request_limit=args.requests), warm_budget=args.budget)


def print_results(results: dict[str, PhaseResult], as_json: bool) -> None:
    if as_json:
        print(json.dumps(results_json(results), sort_keys=True), flush=True)
    else:
        print(format_table(results), flush=True)


def console_line(cluster: DemoCluster) -> str:
    """The console's one-time login link for node 1 (single use, five minutes), or why not."""
    try:
        link = cluster.call(1, "login-link")
    except WarmdError as error:
        return f"The console is not available: {error}"
    return (f"The console: {link['url']}\n(a one-time login link, valid {link['valid_s']} s; "
            "it logs you in as the admin who started the demo)")


def _wait_forever(children: Children) -> None:
    """Keep the demo up for a look around; Ctrl-C (or SIGTERM) ends it."""
    shop, cluster = children.shop, children.cluster
    if shop is None or cluster is None:
        return
    socket = cluster.nodes[1].socket_path
    console = f"http://127.0.0.1:{cluster.nodes[1].web_port}/"
    print(f"\n{console_line(cluster)}", flush=True)
    print(f"\nThe demo stays up. The shop: {shop.base_url}/ (counters at {shop.base_url}"
          f"/_stats). warmd's console (node 1): {console}\n"
          f"warmd node 1's admin socket: {socket}\nTry:\n"
          f"  .venv/bin/warmctl --socket {socket} status\n"
          f"  .venv/bin/warmctl --socket {socket} plans\n"
          f"  .venv/bin/warmctl --socket {socket} tasks ls\n"
          f"  .venv/bin/warmctl --socket {socket} login-link   # another console login link\n"
          f"  redis-cli -p {children.redis.port if children.redis else 6379} flushall"
          "   # warmd notices, plans and warms again\n"
          "Press Ctrl-C to stop everything.", flush=True)
    while True:
        time.sleep(3600)


def main(argv: list[str] | None = None) -> int:
    return run(parse_arguments(argv))


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed options; every child is stopped however it ends."""
    configure_logging(level="warning")  # the demo prints its own progress on stderr
    # SIGINT explicitly too: a shell starting the demo in the background ignores SIGINT
    # for it, and Ctrl-C (or `kill -INT`) must still stop every child.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    children = Children(keep_files=args.keep_files)
    directory = Path(tempfile.mkdtemp(prefix="warmd-demo-"))
    started = time.monotonic()
    try:
        results = asyncio.run(run_demo(settings_from(args), children, directory))
        _announce(f"demo: finished in {time.monotonic() - started:.1f} s")
        print_results(results, args.json)
        if not args.headless:
            _wait_forever(children)
        return 0
    except KeyboardInterrupt:
        print("demo: interrupted; stopping every child", file=sys.stderr, flush=True)
        return 130
    except (WarmdError, OSError) as error:
        print(f"demo: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        children.stop_all()
        if args.keep_files:
            _announce(f"demo: kept the shop's files in {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
