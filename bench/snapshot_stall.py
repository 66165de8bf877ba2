"""Event-loop stalls while a big replicated state is snapshotted, digested and restored.

Builds a state machine of about `--mb` MB (tasks of 100 keys each) and, on a running
event loop with a probe that wakes every millisecond and records how late it woke, does:
the snapshot and the digest as the driver does them now (in a forked child: the loop only
pays for the fork), the same two inline (what the driver did before), and a restore
inline (before) and in steps that yield to the loop every 2,000 records (now). The peer is our own inline path: the ratio says
what forking buys. Prints one line per operation with its wall time and the probe's
lag p99 and max, then a last line
`snapshot_forked_lag_max_ms=... digest_forked_lag_max_ms=... snapshot_inline_ms=...
digest_inline_ms=... restore_inline_ms=... restore_stepped_lag_max_ms=... state_mb=...`.

Usage: python bench/snapshot_stall.py [--mb 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from warmd.raft.types import ConfState, Snapshot, SnapshotMeta
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.forked import start_forked
from warmd.statemachine.commands import SubmitTask, TaskSpec
from warmd.statemachine.machine import StateMachine

KEYS_PER_TASK = 100
PROBE_S = 0.001


def build(megabytes: int) -> StateMachine:
    machine = StateMachine()
    key_bytes = 24
    tasks = megabytes * 1_000_000 // (KEYS_PER_TASK * key_bytes)
    for number in range(tasks):
        keys = tuple(f"bench:{number:08d}:{key:08d}" for key in range(KEYS_PER_TASK))
        machine.apply(number + 1, SubmitTask(task_id=f"t{number}", now_ms=number,
                                             spec=TaskSpec(keys=keys, target="redis://x:1")))
    return machine


async def probed(operation: Callable[[], Awaitable[object]]) -> tuple[float, list[float]]:
    """Run `operation` while a probe measures how late the loop wakes it; (seconds, lags)."""
    lags: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(PROBE_S)
            lags.append(max(0.0, time.perf_counter() - before - PROBE_S))

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await operation()
    elapsed = time.perf_counter() - started
    done.set()
    await prober
    return elapsed, lags


def describe(name: str, elapsed: float, lags: list[float]) -> float:
    lags = sorted(lags) or [0.0]
    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
    print(f"{name:<18} {elapsed * 1000:9.1f} ms   loop lag p99 {p99 * 1000:7.1f} ms  "
          f"max {lags[-1] * 1000:7.1f} ms  (median {statistics.median(lags) * 1000:.2f})")
    return lags[-1] * 1000


async def main_async(megabytes: int) -> None:
    machine = build(megabytes)
    data = machine.snapshot()
    print(f"state: {len(machine.state.tasks)} tasks, snapshot {len(data) / 1e6:.1f} MB")

    async def forked_snapshot() -> object:
        return await start_forked(machine.snapshot).result()

    async def forked_digest() -> object:
        return await start_forked(lambda: machine.digest().encode()).result()

    async def inline(function: Callable[[], object]) -> object:
        return function()

    snapshot = Snapshot(SnapshotMeta(index=1, term=1, conf_state=ConfState(voters=(1,))),
                        Applier(machine, {}).snapshot_data())

    async def stepped_restore() -> object:
        return await Applier(StateMachine(), {}).restore_in_steps(snapshot)

    results = {}
    for name, operation in [
        ("snapshot_forked", forked_snapshot),
        ("digest_forked", forked_digest),
        ("snapshot_inline", lambda: inline(machine.snapshot)),
        ("digest_inline", lambda: inline(machine.digest)),
        ("restore_inline", lambda: inline(lambda: StateMachine().restore(data))),
        ("restore_stepped", stepped_restore),
    ]:
        elapsed, lags = await probed(operation)
        results[name] = (elapsed * 1000, describe(name, elapsed, lags))
    print(f"snapshot_forked_lag_max_ms={results['snapshot_forked'][1]:.1f} "
          f"digest_forked_lag_max_ms={results['digest_forked'][1]:.1f} "
          f"snapshot_inline_ms={results['snapshot_inline'][0]:.0f} "
          f"digest_inline_ms={results['digest_inline'][0]:.0f} "
          f"restore_inline_ms={results['restore_inline'][0]:.0f} "
          f"restore_stepped_lag_max_ms={results['restore_stepped'][1]:.1f} "
          f"state_mb={len(data) / 1e6:.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="approximate state size")
    parser.add_argument("--quick", action="store_true", help="a 10 MB state")
    args = parser.parse_args()
    asyncio.run(main_async(10 if args.quick else args.mb))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
