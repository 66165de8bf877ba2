"""The demo, end to end on one machine: redis-server and the shop as child processes, days of
history, then the cold / warm / steady first-screen phases and the before/after table.

Until the warmd cluster is wired in, the warm-up is the offline pipeline on one node:
`warmd predict` over the shop's access log, then the warm runner replays the predictions
against the shop over HTTP. Every child dies with the runner: Ctrl-C, SIGTERM or exit.
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
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import redis.asyncio as aioredis

from warmd.cache.http import HttpClient
from warmd.demo.measure import MeasureSettings, PhaseResult, format_table, results_json
from warmd.demo.measure import run_phases as measure_phases
from warmd.demo.shop import create_database
from warmd.demo.traffic import TrafficSpec, write_history
from warmd.errors import CacheError, WarmdError
from warmd.hooks.base import WarmRequest
from warmd.hooks.loaders import ReplayLoader
from warmd.hooks.registry import HookRegistry
from warmd.logging import configure as configure_logging
from warmd.rules.engine import predict
from warmd.runtime.analysis_worker import read_records, summarise_records
from warmd.runtime.warmer import WarmResult, WarmRunner, WarmTask
from warmd.testing.servers import ServerProcess, free_port, start_redis

SHOP_START_TIMEOUT_S = 15.0


class DemoError(WarmdError):
    """A demo child would not start or the warm-up could not run."""


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """The whole demo run: history shape, measurement, warm-up budget, shop slowness."""

    traffic: TrafficSpec = field(
        default_factory=lambda: TrafficSpec(days=5.0, sessions_per_day=1500))
    measure: MeasureSettings = field(default_factory=MeasureSettings)
    warm_budget: int = 2000
    horizon_s: float = 6 * 3600.0
    shop_delay_ms: str = "20-50"


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
        """Flush the cache and restart the shop: the cold start of the demo."""
        redis = aioredis.from_url(self.redis_url)
        try:
            await redis.flushall()
        finally:
            await redis.aclose()
        self.stop()
        self.start()
        await self.wait_ready()


class Children:
    """Every child of the demo; `stop_all` is idempotent and runs at exit whatever happens."""

    def __init__(self) -> None:
        self.redis: ServerProcess | None = None
        self.shop: ShopProcess | None = None
        atexit.register(self.stop_all)

    def stop_all(self) -> None:
        if self.shop is not None:
            self.shop.stop()
        if self.redis is not None:
            self.redis.stop()
            self.redis = None


async def replay_warm_up(log_path: Path, history_end_s: float, base_url: str, budget: int,
                         horizon_s: float) -> WarmResult:
    """`warmd predict` over the log lines before `history_end_s`, then the warm runner
    replays the predicted requests against the shop so its read-through cache fills.

    Raises:
        DemoError: the log holds no request to learn from.
    """
    parsed = await asyncio.to_thread(read_records, [str(log_path)])
    history = [record for record in parsed.records if record.time_s < history_end_s]
    if not history:
        raise DemoError(f"no request in {log_path} before the warm-up")
    summary = await asyncio.to_thread(summarise_records, history)
    predictions = predict(summary, time.time(), horizon_s, budget)
    client = HttpClient(base_url=base_url, headers={"User-Agent": "warmd-demo-warmer"})
    registry = HookRegistry()
    registry.add(ReplayLoader(client))
    task = WarmTask(task_id="demo-warm-up", target="", loader="replay",
                    requests=tuple(WarmRequest(path=p.target) for p in predictions))
    try:
        return await WarmRunner({}, registry).run(task)
    finally:
        await client.close()


def _announce(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def start_demo(settings: DemoSettings, children: Children, directory: Path,
                     say: Callable[[str], None] = _announce) -> float:
    """Start redis, write the history into the shop's access log, start the shop; return
    the end of the history (the warm-up learns only from lines before it)."""
    (directory / "redis").mkdir(exist_ok=True)
    children.redis = start_redis(directory=directory / "redis")
    shop = children.shop = ShopProcess(directory, f"redis://{children.redis.address}/0",
                                       settings.shop_delay_ms)
    create_database(shop.db_path)
    history_end_s = time.time()
    lines = write_history(shop.log_path, settings.traffic, history_end_s)
    say(f"demo: redis at {children.redis.address}, shop at {shop.base_url}; "
        f"wrote {lines} lines ({settings.traffic.days:g} days) of history to {shop.log_path}")
    shop.start()
    await shop.wait_ready()
    return history_end_s


async def run_demo_phases(settings: DemoSettings, shop: ShopProcess, history_end_s: float,
                          say: Callable[[str], None] = _announce) -> dict[str, PhaseResult]:
    """cold, warm (after the predict-and-replay warm-up) and steady, on a running shop."""

    async def warm_up() -> None:
        result = await replay_warm_up(shop.log_path, history_end_s, shop.base_url,
                                      settings.warm_budget, settings.horizon_s)
        say(f"demo: warm-up replayed {result.keys_ok} predicted requests in "
            f"{result.duration_s:.1f} s ({result.outcome.value})")

    day = datetime.now(UTC).date()
    return await measure_phases(shop, warm_up, settings.measure, day)


async def run_demo(settings: DemoSettings, children: Children,
                   directory: Path) -> dict[str, PhaseResult]:
    """Start everything, then run the three phases; the children stay up."""
    history_end_s = await start_demo(settings, children, directory)
    if children.shop is None:
        raise DemoError("the shop did not start")
    return await run_demo_phases(settings, children.shop, history_end_s)


def _raise_interrupt(signal_number: int, frame: FrameType | None) -> None:
    """SIGTERM takes the same road as Ctrl-C: unwind, stop every child, exit 130."""
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
    parser.add_argument("--budget", type=int, default=2000, help="requests to warm at most")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.days <= 0 or args.sessions_per_day <= 0 or args.requests <= 0 or args.budget < 0:
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


def _wait_forever(shop: ShopProcess) -> None:
    print(f"\nThe demo stays up: the shop is at {shop.base_url}/ (stats at "
          f"{shop.base_url}/_stats). The warmd cluster and its UI are not wired in yet, so "
          "there is no warmctl target; press Ctrl-C to stop everything.", flush=True)
    while True:
        time.sleep(3600)


def main(argv: list[str] | None = None) -> int:
    return run(parse_arguments(argv))


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed options; every child is stopped however it ends."""
    configure_logging(level="warning")  # the demo prints its own progress on stderr
    signal.signal(signal.SIGTERM, _raise_interrupt)
    children = Children()
    directory = Path(tempfile.mkdtemp(prefix="warmd-demo-"))
    try:
        results = asyncio.run(run_demo(settings_from(args), children, directory))
        print_results(results, args.json)
        if not args.headless and children.shop is not None:
            _wait_forever(children.shop)
        return 0
    except KeyboardInterrupt:
        print("demo: interrupted; stopping every child", file=sys.stderr, flush=True)
        return 130
    except (WarmdError, OSError) as error:
        print(f"demo: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        children.stop_all()
        _remove_tree(directory)


def _remove_tree(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
