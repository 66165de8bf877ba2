"""One PySyncObj node for bench/raft_throughput.py (run as a separate process).

Every node serves a replicated dict with its journal file on. The node that finds itself
leader runs the closed-loop load: `concurrency` 100-byte `set` calls in flight, each
acknowledged by PySyncObj's callback once the entry is committed and applied; a warm-up of
`--warmup` calls runs first, uncounted. It prints one JSON line with the figures (failed
calls counted, not timed) and keeps serving until killed (the parent kills all three).

PySyncObj has no client protocol: its callers live in the process of a member, so the load
runs in the leader, like warmd's in-process `bench-propose`. Its throughput settings
(SyncObjConf, documented in its config.py): `appendEntriesUseBatch` (batch commands into one
append, default on), `appendEntriesPeriod` (how often a batching leader sends appends, 0.1 s)
and `autoTickPeriod` (how long its loop waits for socket events, 0.05 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

from _peers import percentile_ms
from pysyncobj import SyncObj, SyncObjConf, replicated


class Store(SyncObj):
    """A replicated dict: the same key/value workload as warmd's and etcd's."""

    def __init__(self, self_address: str, partners: list[str], conf: SyncObjConf) -> None:
        super().__init__(self_address, partners, conf)
        self._data: dict[str, bytes] = {}

    @replicated
    def put(self, key: str, value: bytes) -> None:
        self._data[key] = value


def run_load(store: Store, count: int, size_bytes: int, concurrency: int,
             deadline_s: float = 120.0) -> dict[str, float]:
    """`count` puts with `concurrency` in flight; latency from call to commit callback (of
    the calls that succeeded: PySyncObj reports a failure through the callback's error).
    Calls still unanswered `deadline_s` after the start (a leader change can lose their
    callbacks) are counted as failures, and the run ends there."""
    slots = threading.Semaphore(concurrency)
    done = threading.Event()
    latencies_s: list[float] = []
    failures = [0]
    lock = threading.Lock()
    value = b"v" * (size_bytes - 16)  # key + value + call overhead come to about size_bytes

    def finished(sent_s: float):
        def callback(result: object, error: int) -> None:
            with lock:
                if error:
                    failures[0] += 1
                else:
                    latencies_s.append(time.perf_counter() - sent_s)
                if len(latencies_s) + failures[0] == count:
                    done.set()
            slots.release()
        return callback

    started_s = time.perf_counter()
    ends_s = started_s + deadline_s
    for number in range(count):
        if not slots.acquire(timeout=max(0.0, ends_s - time.perf_counter())):
            break
        store.put(f"k{number % 100000:06d}", value, callback=finished(time.perf_counter()))
    done.wait(timeout=max(0.0, ends_s - time.perf_counter()))
    elapsed_s = time.perf_counter() - started_s
    with lock:  # a late callback must not change what is reported
        measured = sorted(latencies_s)
    return {"ops_s": len(measured) / elapsed_s, "p50_ms": percentile_ms(measured, 0.5),
            "p99_ms": percentile_ms(measured, 0.99),
            "failures": count - len(measured),  # failed, never answered, or never sent
            "elapsed_s": elapsed_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--self", dest="self_address", required=True)
    parser.add_argument("--partner", action="append", required=True)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--append-period", type=float, default=0.1)
    parser.add_argument("--tick-period", type=float, default=0.05)
    parser.add_argument("--no-batch", action="store_true")
    args = parser.parse_args()
    conf = SyncObjConf(journalFile=args.journal, dynamicMembershipChange=False,
                       appendEntriesPeriod=args.append_period, autoTickPeriod=args.tick_period,
                       appendEntriesUseBatch=not args.no_batch)
    store = Store(args.self_address, args.partner, conf)
    while store._getLeader() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # let the cluster settle before the leader loads it
    if store._isLeader():
        if args.warmup:
            run_load(store, args.warmup, args.size, args.concurrency)
        report = run_load(store, args.count, args.size, args.concurrency)
        print(json.dumps(report), flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
