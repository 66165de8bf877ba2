"""`python -m chaos --nodes 5 --duration 120 --seed S`: real daemons, real Redis, real faults.

Starts N `warmd run` daemons whose peer links all pass through a fault-injecting proxy and a
redis-server on loopback; submits tasks continuously while a seeded nemesis kills, pauses,
partitions and transfers leadership; then heals everything, waits for the acknowledged tasks
to finish, stops the nodes and audits their logs, the cache and the client history. The last
line is `faults=<N> tasks=<M> lost=<L> duplicates=<D> stale_fence_accepted=<S> divergent=<V>`;
the exit status is 1 on any violation (with the command that replays the seed).

`--soak 30m` runs as long and samples every node's memory, descriptors and data directory
(chaos/soak.py); the last line then adds `rss_growth=`, `fds_start=`, `fds_end=`,
`data_mb_start=`, `data_mb_end=` and the run fails when anything grew without bound.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from chaos.audit import AuditReport
from chaos.faults import Nemesis
from chaos.ops import executor_settings, state_bounds, stop_and_audit, wait_all_terminal
from chaos.proxy import FaultProxy
from chaos.soak import Sampler, SoakVerdict, judge, parse_duration
from chaos.workload import Workload
from warmd import logging as warmd_logging
from warmd.testing.linearizability import check_history
from warmd.testing.procs import NodeProcess, ProcessCluster, Timing
from warmd.testing.servers import start_redis

LEASE_MS = 1_500
HEARTBEAT_MS = 300
SETTLE_TIMEOUT_S = 120.0
SOAK_SNAPSHOT_ENTRIES = 5_000
SOAK_SUBMITTERS = 4


class ChaosCluster(ProcessCluster):
    """A ProcessCluster whose nodes reach each other only through a FaultProxy."""

    proxy_ports: dict[tuple[int, int], int]

    def write_config(self, node: NodeProcess, secret_path: Path | None = None) -> None:
        super().write_config(node, secret_path)
        ports = getattr(self, "proxy_ports", {})
        text = node.config_path.read_text()
        for other in self.nodes.values():
            link = (node.node_id, other.node_id)
            if link in ports:
                text = text.replace(f'[peers.{other.node_id}]\naddress = "{other.address}"',
                                    f'[peers.{other.node_id}]\naddress = "127.0.0.1:{ports[link]}"')
        node.config_path.write_text(text)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=5, help="daemons to start (3..7)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of faults")
    parser.add_argument("--seed", type=int, default=None, help="fault schedule seed")
    parser.add_argument("--keys", type=int, default=20, help="keys per task")
    parser.add_argument("--submit-interval", type=float, default=0.05, help="seconds between tasks")
    parser.add_argument("--soak", type=_duration, default=None, metavar="DURATION",
                        help="run this long (e.g. 30m) and judge RSS, descriptors and disk growth")
    parser.add_argument("--submitters", type=int, default=None,
                        help=f"client threads submitting side by side (default 1; "
                             f"{SOAK_SUBMITTERS} in a soak, so the state's bounds are reached "
                             "early in the run)")
    args = parser.parse_args(argv)
    if args.soak is not None:
        args.duration = args.soak
    if args.submitters is None:
        args.submitters = SOAK_SUBMITTERS if args.soak is not None else 1
    if not 3 <= args.nodes <= 7 or args.duration <= 0 or args.keys < 1 or args.submitters < 1:
        parser.error("need 3 <= --nodes <= 7, --duration > 0, --keys >= 1 and --submitters >= 1")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2**31)
    return args


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def run(args: argparse.Namespace) -> tuple[int, AuditReport, bool, SoakVerdict | None]:
    """One chaos run; returns (faults injected, audit report, history linearizable, and the
    soak's verdict when it was a soak)."""
    rng = random.Random(args.seed)
    redis_server = start_redis()
    # A soak compacts its logs many times over (snapshots every SOAK_SNAPSHOT_ENTRIES), so
    # what it judges is the log's bound, not the first 100,000 entries of the default.
    timing = Timing(snapshot_interval_entries=SOAK_SNAPSHOT_ENTRIES) if args.soak else None
    cluster = ChaosCluster(args.nodes, timing)
    proxy = FaultProxy({node_id: node.port for node_id, node in cluster.nodes.items()}).start()
    workload = None
    try:
        cluster.proxy_ports = proxy.listen_ports
        settings = executor_settings(LEASE_MS, HEARTBEAT_MS, keys_per_second=100)
        for node in cluster.nodes.values():
            node.executor.update(settings)
            cluster.write_config(node)
        cluster.start_all().wait_for_leader(timeout_s=20)
        workload = Workload(cluster, f"redis://{redis_server.address}", args.seed, args.keys,
                            args.submit_interval, args.submitters).start()
        nemesis = Nemesis(cluster, proxy, LEASE_MS, log)
        sampler = None
        if args.soak is not None:
            sampler = Sampler(cluster, report=log, probe=lambda: state_bounds(cluster)).start()
        ends_s = time.monotonic() + args.duration
        while time.monotonic() < ends_s:
            nemesis.inject(rng)
            time.sleep(rng.uniform(0.5, 1.5))
        verdict = None
        if sampler is not None:
            sampler.stop()
            verdict = judge(sampler.samples, args.duration, sampler.settled_s)
            reached = ", ".join(f"{name} at {at_s:.0f} s"
                                for name, at_s in sorted(sampler.bounds_reached_s.items()))
            log(f"soak: bounds reached: {reached or 'none'}; {verdict.describe()}")
        proxy.block(())
        workload.stop()
        log(f"faults over; {len(workload.acknowledged)} tasks acknowledged, "
            f"{len(workload.unknown)} of unknown outcome; waiting for them to finish")
        cluster.wait_for_leader(timeout_s=30)
        try:
            wait_all_terminal(cluster, len(workload.acknowledged), SETTLE_TIMEOUT_S)
        except Exception as error:  # the audit below names what is stuck
            log(f"not every task finished: {str(error).splitlines()[0]}")
        report = stop_and_audit(cluster, workload.acknowledged, redis_server.port)
        history = check_history(workload.history)
        log(history.describe())
        return len(nemesis.records), report, history.linearizable, verdict
    finally:
        if workload is not None:
            workload.stop()
        proxy.close()
        cluster.close()
        redis_server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    warmd_logging.configure("warning")  # the audit opens data directories: keep it quiet
    log(f"chaos: {args.nodes} nodes, {args.duration} s, seed {args.seed}")
    faults, report, linearizable, soak = run(args)
    for violation in report.violations[:20]:
        log(f"VIOLATION: {violation}")
    for problem in soak.problems if soak is not None else ():
        log(f"SOAK: {problem}")
    log(f"reassignments={report.reassignments} stale_fence_refused={report.stale_fence_refused} "
        f"lease_overlaps={report.lease_overlaps} missing_keys={report.missing_keys} "
        f"linearizable={linearizable} common_index={report.common_index}")
    failed = not report.ok or not linearizable or (soak is not None and not soak.ok)
    if failed:
        length = f"--soak {args.soak:g}s" if args.soak is not None else f"--duration {args.duration:g}"
        log(f"replay: python -m chaos --nodes {args.nodes} {length} "
            f"--seed {args.seed}")
    soak_fields = "" if soak is None else (
        f" rss_growth={soak.rss_growth:.3f} fds_start={soak.fds_start} fds_end={soak.fds_end} "
        f"data_mb_start={soak.data_start_mb:.1f} data_mb_end={soak.data_end_mb:.1f}")
    print(f"faults={faults} tasks={report.tasks} lost={report.lost} "
          f"duplicates={report.duplicates} stale_fence_accepted={report.stale_fence_accepted} "
          f"divergent={report.divergent}{soak_fields}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
