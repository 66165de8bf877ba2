"""Learner/voter cost curves (issue 19 item 4): the cost-model simulator, then real processes.

1. Simulated (warmd/testing/cost_sim.py: the pure Raft core under a calibrated cost model,
   one host per member, each with its own core and disk, 1 Gb/s links): 3, 5 and 7 voters
   x 0, 8 and 24 learners, 64 writes of 100 bytes in flight at the leader, several seeds;
   commit throughput, p99 commit latency and the leader's CPU per commit (medians over the
   seeds, with their spread). The curves go to docs/membership-*.svg.
2. Real processes: 3 `warmd` voters on loopback (fsync on, shipped timing) and 0, 3 or 6
   learners, started fresh for each run and added with `add-learner` (removed and killed
   after it); bench/_raft_client.py keeps 64 `bench-write`s in flight on the leader's admin
   socket. Rounds interleave the three learner counts in a rotating order. Beside them, the
   simulator on the same shape (all members sharing this machine's 2 cores and one disk):
   whether the model's curve follows reality at small size.

The last line: `ratio_24_learners=` (the worst over 3, 5, 7 voters of commits/s with 24
learners over without), `p99_ratio_7_vs_3=` (the worst over 0, 8, 24 learners of p99 with 7
voters over 3), then the real figures.

    .venv/bin/python bench/membership.py [--quick] [--rounds 3] [--seeds 5] [--no-real]
    .venv/bin/python bench/membership.py --calibrate   # what the model's constants come from
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import DEFAULT_TIMING, BenchCluster, LoadResult, Spread, client_load, cpu_seconds
from _peers import interleaved_rounds as rotated
from svg_plot import Series, line_chart

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.progress import Progress
from warmd.raft.storage import LogStorage
from warmd.raft.types import ProgressState
from warmd.testing.cluster import NodeFactory
from warmd.testing.cost_sim import CostCluster, CostModel, CostResult, CostRun
from warmd.testing.procs import ProcessCluster

DOCS = Path(__file__).resolve().parent.parent / "docs"
VOTERS = (3, 5, 7)
LEARNERS = (0, 8, 24)
REAL_LEARNERS = (0, 3, 6)
IN_FLIGHT = 64

# Calibrated on this machine, 2026-12-06 (`--calibrate` repeats the real measurement;
# docs/benchmarks.md, "Membership", has the figures):
# - an idle follower: 10.7 ms of CPU a second = 20 ticks + 10 heartbeat Readies (a message
#   in, one out);
# - a follower per write with 1 in flight: 1,000 us (1.8 Readies, 2 + 2 messages, 1 fsync,
#   1 entry); with 64 in flight: 62 us (0.045 Readies, 0.04 saves per write);
# - the leader with 64 in flight: 138 us per write; what a follower does not do is the
#   client's admin request (proposal_us);
# - per message: the leader's CPU per write grew by ~6 us per real learner (0 to 6), for
#   ~0.14 messages per learner per write in the model: ~70 us a message sent and handled;
# - fsync: 1.1 ms per save at 1 in flight (/metrics); its CPU, a bare fdatasync loop's
#   64-131 us plus the hand-off to the writer thread: 200 us;
# - bytes: warmd.codec encodes an APPEND of 16 100-byte entries (1,755 bytes) in 5.6 us and
#   decodes it in 13.9 us: 0.003 and 0.008 us a byte, charged at both ends as 0.005.
# Solved for the rest: a Ready 341 us, a tick 328 us (the daemon's idle loops ride on it),
# an entry 32 us (11 appended, 21 applied), a client write 71 us. Check: the model puts the
# leader's lone write at 1,323 us against 1,489 measured (12 % low). Network: 1 Gb/s links,
# 200 us one way (hosts on a LAN).
CALIBRATED = CostModel(
    ready_us=341.0,
    message_handled_us=45.0,
    message_sent_us=25.0,
    byte_coded_us=0.005,
    entry_appended_us=11.0,
    entry_applied_us=21.0,
    proposal_us=71.0,
    tick_us=328.0,
    fsync_us=1100.0,
    fsync_cpu_us=200.0,
    network_message_us=200.0,
    network_byte_us=0.008,
)
LOOPBACK_US = 50.0  # the same model on one machine: loopback instead of a LAN


class LearnersPacedPerTick(RaftNode):
    """An experiment, not shipped: in replicate state the leader sends a learner at most
    one APPEND per tick, so everything committed within a tick reaches each learner in one
    message and one answer, however many Readies the leader made meanwhile. A learner then
    lags by up to a tick (50 ms at the shipped timing) plus a round trip."""

    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        super().__init__(config, storage, rng)
        self._learner_sent_tick: dict[int, int] = {}

    def _send_append(self, to: int, pr: Progress, send_if_empty: bool = True) -> bool:
        if (pr.is_learner and pr.state is ProgressState.REPLICATE
                and self._learner_sent_tick.get(to) == self._ticks):
            return False
        sent = super()._send_append(to, pr, send_if_empty)
        if sent and pr.is_learner:
            self._learner_sent_tick[to] = self._ticks
        return sent


EXPERIMENTS: dict[str, NodeFactory] = {
    "paced": LearnersPacedPerTick,  # one APPEND per learner per tick
}


@dataclass(frozen=True, slots=True)
class RealRun:
    """One real run: the client's figures and the leader's CPU per write."""

    load: LoadResult
    leader_cpu_us: float


def simulate(voters: int, learners: int, seeds: int, measure_us: float,
             shared_cores: int | None = None,
             node_factory: NodeFactory = RaftNode) -> list[CostResult]:
    model = CALIBRATED
    if shared_cores is not None:
        model = _replace_network(model, LOOPBACK_US)
    return [CostCluster(model, CostRun(voters=voters, learners=learners, in_flight=IN_FLIGHT,
                                       warmup_us=min(measure_us, 500_000.0),
                                       measure_us=measure_us, shared_cores=shared_cores,
                                       seed=seed), node_factory=node_factory).measure()
            for seed in range(1, seeds + 1)]


def _replace_network(model: CostModel, latency_us: float) -> CostModel:
    return replace(model, network_message_us=latency_us, network_byte_us=0.0)


def simulate_grid(seeds: int, measure_us: float) -> dict[tuple[int, int], list[CostResult]]:
    grid = {}
    for voters in VOTERS:
        for learners in LEARNERS:
            started = time.monotonic()
            results = grid[voters, learners] = simulate(voters, learners, seeds, measure_us)
            print(f"sim {voters} voters + {learners:>2} learners: {describe_sim(results)}  "
                  f"({time.monotonic() - started:.1f} s)", flush=True)
    return grid


def describe_sim(results: list[CostResult]) -> str:
    elections = sum(result.elections for result in results)
    return (f"{Spread.of([r.commits_per_s for r in results]).describe()} commits/s, "
            f"p99 {Spread.of([r.p99_ms for r in results]).describe(1)} ms, "
            f"leader CPU/commit {Spread.of([r.leader.cpu_us for r in results]).describe()} us, "
            f"leader messages/commit {median(r.leader.messages for r in results):.2f}, "
            f"elections {elections}")


def median(values: object) -> float:
    return statistics.median(list(values))  # type: ignore[call-overload]


# ---------------------------------------------------------------------------- real processes

def real_rounds(rounds: int, count: int, warmup: int) -> dict[int, list[RealRun]]:
    """Rounds over 0, 3 and 6 learners, rotated; fresh learners for each run."""
    results: dict[int, list[RealRun]] = defaultdict(list)
    with BenchCluster(3, DEFAULT_TIMING, cluster_id="warmd-membership") as cluster:
        cluster.start_all()
        leader = cluster.wait_for_leader(30)
        next_id = 4
        for number, order in enumerate(rotated(rounds, [str(n) for n in REAL_LEARNERS])):
            for learners in map(int, order):
                ids = list(range(next_id, next_id + learners))
                next_id += learners
                leader = add_learners(cluster, ids)
                try:
                    run = real_run(cluster, leader, count, warmup, f"m{number:x}{learners}")
                finally:
                    remove_learners(cluster, ids)
                results[learners].append(run)
                print(f"round {number + 1} real 3 voters + {learners} learners: "
                      f"{run.load.ops_s:6.0f} ops/s  p50 {run.load.p50_ms:6.1f} ms  "
                      f"p99 {run.load.p99_ms:6.1f} ms  failures {run.load.failures}  "
                      f"leader CPU/write {run.leader_cpu_us:4.0f} us", flush=True)
    return results


def add_learners(cluster: ProcessCluster, ids: list[int]) -> int:
    """Start fresh joiners, add each as a learner, wait until all have caught up."""
    for node_id in ids:
        cluster.add_joining_node(node_id)
        cluster.start(node_id)
    leader = cluster.wait_for_leader(30, among=[1, 2, 3])
    for node_id in ids:
        cluster.call(leader, "add-learner", timeout_s=60, node_id=node_id,
                     address=cluster.nodes[node_id].address)
    applied = int(cluster.status(leader)["applied_index"])  # type: ignore[index]
    for node_id in ids:
        cluster.wait_applied(node_id, applied, timeout_s=60)
    return leader


def remove_learners(cluster: ProcessCluster, ids: list[int]) -> None:
    leader = cluster.wait_for_leader(30, among=[1, 2, 3])
    for node_id in ids:
        cluster.call(leader, "remove", timeout_s=60, node_id=node_id)
        cluster.kill(node_id)


def real_run(cluster: ProcessCluster, leader: int, count: int, warmup: int, tag: str) -> RealRun:
    process = cluster.nodes[leader].process
    assert process is not None
    before_s = cpu_seconds([process.pid])
    load = client_load("warmd", str(cluster.nodes[leader].socket_path), count, IN_FLIGHT,
                       warmup, tag=tag)
    used_s = cpu_seconds([process.pid]) - before_s
    return RealRun(load, used_s / (count + warmup) * 1e6)


# ---------------------------------------------------------------------------- report

def write_plots(grid: dict[tuple[int, int], list[CostResult]], tried: Experiments) -> None:
    charts = {
        "membership-throughput.svg": ("Commit throughput (simulated, 64 writes in flight)",
                                      "commits/s", lambda r: r.commits_per_s),
        "membership-p99.svg": ("p99 commit latency (simulated)", "p99 ms", lambda r: r.p99_ms),
        "membership-leader-cpu.svg": ("Leader CPU per commit (simulated)", "us per commit",
                                      lambda r: r.leader.cpu_us),
    }
    for name, (title, y_label, figure) in charts.items():
        series = [Series(f"{voters} voters", [float(n) for n in LEARNERS],
                         [median(figure(r) for r in grid[voters, n]) for n in LEARNERS])
                  for voters in VOTERS]
        series += [Series(f"3 voters, experiment {name}", [0.0, 24.0],
                          [median(figure(r) for r in grid[3, 0]),
                           median(figure(r) for r in tried[name][3])])
                   for name in EXPERIMENTS]
        (DOCS / name).write_text(line_chart(title, "learners", y_label, series))


def real_median(runs: list[RealRun]) -> tuple[Spread, float, float]:
    return (Spread.of([run.load.ops_s for run in runs]),
            median(run.load.p99_ms for run in runs), median(run.leader_cpu_us for run in runs))


Experiments = dict[str, dict[int, list[CostResult]]]  # name -> voters -> results


def experiments(seeds: int, measure_us: float) -> Experiments:
    """3, 5 and 7 voters + 24 learners under each experimental leader (not shipped)."""
    results: Experiments = defaultdict(dict)
    for name, factory in EXPERIMENTS.items():
        for voters in VOTERS:
            runs = results[name][voters] = simulate(voters, 24, seeds, measure_us,
                                                    node_factory=factory)
            print(f"experiment {name} (not shipped), {voters} voters + 24 learners: "
                  f"{describe_sim(runs)}", flush=True)
    return results


def last_line(grid: dict[tuple[int, int], list[CostResult]], tried: Experiments,
              real: dict[int, list[RealRun]], shared: dict[int, list[CostResult]]) -> str:
    def sim(voters: int, learners: int, figure: str) -> float:
        return median(getattr(r, figure) for r in grid[voters, learners])

    ratio_24 = min(sim(v, 24, "commits_per_s") / sim(v, 0, "commits_per_s") for v in VOTERS)
    p99_ratio = max(sim(7, n, "p99_ms") / sim(3, n, "p99_ms") for n in LEARNERS)
    trial_24 = {name: min(median(r.commits_per_s for r in tried[name][v])
                          / sim(v, 0, "commits_per_s") for v in VOTERS) for name in EXPERIMENTS}
    line = (f"ratio_24_learners={ratio_24:.2f} p99_ratio_7_vs_3={p99_ratio:.2f} "
            f"sim_commits_s_3v={sim(3, 0, 'commits_per_s'):.0f} "
            f"sim_commits_s_3v_24l={sim(3, 24, 'commits_per_s'):.0f} "
            f"sim_leader_cpu_us_3v={sim(3, 0, 'leader_cpu_us_per_commit'):.0f} "
            f"sim_leader_cpu_us_3v_24l={sim(3, 24, 'leader_cpu_us_per_commit'):.0f}")
    line += "".join(f" experiment_{name}_ratio_24_learners={ratio:.2f}"
                    for name, ratio in trial_24.items())
    if real:
        base = real_median(real[0])[0].median
        for learners in REAL_LEARNERS:
            ops, p99, cpu = real_median(real[learners])
            line += (f" real_ops_s_{learners}l={ops.median:.0f} real_p99_ms_{learners}l={p99:.1f}"
                     f" real_leader_cpu_us_{learners}l={cpu:.0f}")
        six = real_median(real[6])[0].median
        predicted = (median(r.commits_per_s for r in shared[6])
                     / median(r.commits_per_s for r in shared[0]))
        line += f" real_ratio_6_learners={six / base:.2f} sim_ratio_6_learners={predicted:.2f}"
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds of 0.3 s simulated, 3 real rounds of 1,200 writes")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved real rounds")
    parser.add_argument("--seeds", type=int, default=5, help="simulated seeds per shape")
    parser.add_argument("--no-real", action="store_true", help="the simulator only")
    parser.add_argument("--no-plots", action="store_true", help="do not write docs/*.svg")
    parser.add_argument("--calibrate", action="store_true",
                        help="only the real measurement the cost model is fitted to")
    args = parser.parse_args()
    if args.calibrate:
        from _membership_calibration import calibrate

        calibrate(_replace_network(CALIBRATED, LOOPBACK_US), args.rounds)
        return 0
    seeds, measure_us = (2, 300_000.0) if args.quick else (args.seeds, 1_000_000.0)
    count, warmup = (1200, 200) if args.quick else (4000, 1000)
    grid = simulate_grid(seeds, measure_us)
    tried = experiments(seeds, measure_us)
    if not (args.no_plots or args.quick):  # the plots in docs/ come from full runs only
        write_plots(grid, tried)
    shared: dict[int, list[CostResult]] = {}
    real: dict[int, list[RealRun]] = {}
    if not args.no_real:
        for learners in REAL_LEARNERS:
            shared[learners] = simulate(3, learners, seeds, measure_us, shared_cores=2)
            print(f"sim, this machine's shape (2 shared cores, one disk), 3 voters + "
                  f"{learners} learners: {describe_sim(shared[learners])}", flush=True)
        real = real_rounds(args.rounds, count, warmup)
        for learners in REAL_LEARNERS:
            ops, p99, cpu = real_median(real[learners])
            print(f"real 3 voters + {learners} learners, medians over {args.rounds} rounds: "
                  f"{ops.describe()} ops/s, p99 {p99:.1f} ms, leader CPU/write {cpu:.0f} us",
                  flush=True)
    print(last_line(grid, tried, real, shared), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
