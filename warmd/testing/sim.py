"""The simulator command: many seeded faulty runs of a Raft cluster, each fully checked.

One `random.Random(seed)` derives everything of a run: Raft timeouts, the fault
schedule, the clients' operations. A run has a fault phase (`steps` ticks), then all
faults heal and a liveness phase must elect a leader and finish every pending
operation within a bound; then the client history must be linearizable. Safety
checkers watch every step. Replay one seed with the printed command or WARMD_SEED.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import msgpack

from warmd.errors import InvariantViolation
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.testing.checkers import SafetyViolation
from warmd.testing.cluster import ClusterOptions, NodeFactory, SimCluster, SimNode
from warmd.testing.linearizability import check_history
from warmd.testing.mutants import MUTANTS
from warmd.testing.nemesis import Nemesis, SwarmProfile
from warmd.testing.network import LinkFaults
from warmd.testing.workload import Workload, WorkloadOptions

DEFAULT_STEPS = 600
LIVENESS_ELECTION_TIMEOUTS = 30  # after healing, this many election timeouts at most
CATCH_UP_TICKS_PER_ENTRY = 4  # a lagging member may take this long per missing entry
PROMPT_TICKS = 40  # with Raft clocks stopped, a write or read on a voter completes by then
PROMPT_CLIENT_ID = 1 << 20  # the promptness probe's client: no workload client has it


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What every seed of a batch shares."""

    node_count: int = 5
    steps: int = DEFAULT_STEPS
    node_factory: NodeFactory = field(default=RaftNode)

    def __post_init__(self) -> None:
        if self.node_count < 1 or self.steps < 0:
            raise ValueError("node_count must be >= 1 and steps >= 0")


@dataclass(frozen=True, slots=True)
class SeedResult:
    """The outcome of one seed; `violation` is None when every check passed."""

    seed: int
    violation: str | None
    ticks: int
    operations: int
    committed: int
    events: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.violation is None


def replay_command(seed: int, options: SimulationOptions) -> str:
    """The exact command line that reruns one seed."""
    mutant = next((f" --mutant {name}" for name, factory in MUTANTS.items()
                   if factory is options.node_factory), "")
    return (f"WARMD_SEED={seed} python -m warmd.raft.sim --nodes {options.node_count} "
            f"--seeds 1 --seed-start {seed} --steps {options.steps}{mutant}")


def build_run(seed: int, options: SimulationOptions) -> tuple[SimCluster, Nemesis, Workload]:
    """Derive one run's cluster, clients and nemesis from its seed."""
    rng = random.Random(seed)
    election_timeout_ticks = rng.randint(8, 16)
    raft = RaftConfig(
        node_id=1,
        election_timeout_ticks=election_timeout_ticks,
        heartbeat_ticks=rng.randint(1, 3),
        max_entries_per_message=rng.choice((1, 1, 4, 64)),
        max_inflight_messages=rng.choice((1, 4, 16)),
        snapshot_chunk_bytes=rng.choice((16, 64, 1024)),
        pre_vote=rng.random() < 0.75,
        check_quorum=rng.random() < 0.75,
        learner_lag_entries_max=rng.choice((0, 4, 64)),
    )
    profile = SwarmProfile.draw(rng, options.node_count)
    cluster_options = ClusterOptions(
        node_count=options.node_count,
        raft=raft,
        compact_every_entries=rng.choice((0, 8, 30)),
        tick_rates=profile.tick_rates,
        lose_unsynced_on_crash=profile.lose_unsynced_on_crash,
    )
    workload = Workload(random.Random(rng.getrandbits(64)), WorkloadOptions(
        client_count=rng.randint(2, 5),
        key_count=rng.randint(1, 3),
        start_probability=rng.choice((0.1, 0.3, 0.6)),
        retry_ticks=2 * election_timeout_ticks,
    ))
    faults = LinkFaults(delay_ticks_min=1, delay_ticks_max=rng.randint(1, 3))
    cluster = SimCluster(random.Random(rng.getrandbits(64)), cluster_options,
                         options.node_factory, workload, faults)
    nemesis = Nemesis(random.Random(rng.getrandbits(64)), cluster, profile)
    return cluster, nemesis, workload


def run_seed(seed: int, options: SimulationOptions) -> SeedResult:
    """Run one seed to the end and report the first violation, if any."""
    cluster, nemesis, workload = build_run(seed, options)
    violation: str | None = None
    try:
        for _ in range(options.steps):
            nemesis.maybe_act()
            cluster.tick()
        violation = _heal_and_check_liveness(cluster, nemesis, workload)
        if violation is None:
            result = check_history(workload.final_history())
            if not result.linearizable:
                violation = "linearizability: " + result.describe()
    except (SafetyViolation, InvariantViolation) as broken:
        violation = str(broken) if isinstance(broken, SafetyViolation) else f"invariant: {broken}"
    return SeedResult(
        seed=seed,
        violation=violation,
        ticks=cluster.now_ticks,
        operations=workload.completed_count(),
        committed=len(cluster.checker.committed),
        events=(nemesis.profile.describe(), *nemesis.events) if violation else (),
    )


def _heal_and_check_liveness(cluster: SimCluster, nemesis: Nemesis,
                             workload: Workload) -> str | None:
    """After healing: a leader and every pending operation answered within a bound, then
    every member caught up within a bound that grows with how far behind it is."""
    nemesis.heal()
    workload.issuing = False
    bound_ticks = LIVENESS_ELECTION_TIMEOUTS * cluster.options.raft.election_timeout_ticks

    def answered() -> bool:
        return cluster.leader_id() is not None and workload.pending_count() == 0

    if not cluster.run_until(answered, bound_ticks):
        return (f"liveness: {bound_ticks} ticks after healing, leader={cluster.leader_id()}, "
                f"{workload.pending_count()} operations pending")
    lag_entries = max(_lags(cluster).values(), default=0)
    catch_up_ticks = bound_ticks + CATCH_UP_TICKS_PER_ENTRY * lag_entries
    if not cluster.run_until(lambda: cluster.leader_id() is not None
                             and max(_lags(cluster).values(), default=0) == 0, catch_up_ticks):
        return (f"liveness: members still behind the leader {catch_up_ticks} ticks after "
                f"answering: lag={_lags(cluster)}")
    return _check_prompt_answers(cluster)


def _check_prompt_answers(cluster: SimCluster) -> str | None:
    """With every Raft clock stopped, a write proposed on each voter is applied there and
    a read asked there is served within PROMPT_TICKS: the leader tells a member the commit
    something on it waits for at once, never only with a later heartbeat. (A learner's
    entries wait for the leader's next tick by design, so learners are left out.)"""
    leader = cluster.leader_id()
    if leader is None:
        return None
    voters = sorted(cluster.raft(leader).conf_state.voters)
    cluster.raft_clocks_stopped = True
    try:
        for number, node_id in enumerate(voters, start=1):
            put = cluster.put(node_id, f"prompt-{node_id}", "v", client_id=PROMPT_CLIENT_ID)
            context = msgpack.packb((PROMPT_CLIENT_ID, number))
            if cluster.submit_read(node_id, context) is not None:
                return f"promptness: node {node_id} refused a read (leader {leader})"
            node = cluster.nodes[node_id]

            def done(node: SimNode = node, key: str = put.key, context: bytes = context) -> bool:
                served = any(state.context == context for state in node.read_states)
                return node.machine.values.get(key) == "v" and served and not node.read_waiting

            if not cluster.run_until(done, PROMPT_TICKS):
                return (f"promptness: with Raft clocks stopped, a write and a read on node "
                        f"{node_id} (leader {leader}) did not complete within {PROMPT_TICKS} "
                        f"ticks: applied={cluster.applied_index(node_id)}, commit on the "
                        f"leader={cluster.raft(leader).log.committed}")
    finally:
        cluster.raft_clocks_stopped = False
    return None


def _lags(cluster: SimCluster) -> dict[int, int]:
    """How many committed entries each member of the leader's configuration has not applied."""
    leader = cluster.leader_id()
    if leader is None:
        return {}
    raft = cluster.raft(leader)
    members = {*raft.conf_state.voters, *raft.conf_state.learners}
    return {member: max(0, raft.log.committed - cluster.applied_index(member))
            for member in sorted(members)}


def run_seeds(seeds: Sequence[int], options: SimulationOptions,
              workers: int = 1) -> Iterator[SeedResult]:
    """Yield each seed's result, in seed order; `workers` > 1 fans out over processes."""
    if workers <= 1 or len(seeds) <= 1:
        for seed in seeds:
            yield run_seed(seed, options)
        return
    chunk = max(1, min(32, len(seeds) // (workers * 8)))
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(_run_seed_star, [(seed, options) for seed in seeds], chunk)


def _run_seed_star(arguments: tuple[int, SimulationOptions]) -> SeedResult:
    return run_seed(*arguments)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m warmd.raft.sim",
        description="Run seeded fault-injection simulations of the Raft core.",
    )
    parser.add_argument("--nodes", type=int, default=None,
                        help="voters per cluster (default 5; the kill table runs 3 and 5)")
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds to run")
    parser.add_argument("--seed-start", type=int, default=1, help="the first seed")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"fault-phase ticks per seed (default {DEFAULT_STEPS})")
    parser.add_argument("--workers", type=int, default=1, help="processes to fan seeds out to")
    parser.add_argument("--verbose", action="store_true",
                        help="print the fault schedule of each failing seed")
    parser.add_argument("--mutant", choices=sorted(MUTANTS),
                        help="run a deliberately broken core, to see the checkers fire")
    parser.add_argument("--kill-table", action="store_true",
                        help="run every mutant on 3 and 5 nodes (or --nodes if given) and "
                             "print which seeds caught each")
    return parser


def _print_kill_table(seeds: Sequence[int], node_counts: Sequence[int], steps: int,
                      workers: int) -> int:
    """Print the kill table; exit status 0 exactly when every mutant was caught."""
    from warmd.testing.kill_table import HEADER, kill_table  # it imports this module

    started = time.monotonic()
    print(HEADER, flush=True)
    rows = []
    for row in kill_table(seeds, node_counts, steps, workers):
        rows.append(row)
        print(row.render(), flush=True)
    caught = sum(1 for row in rows if row.caught)
    print(f"seeds={len(seeds)} steps={steps} elapsed_s={time.monotonic() - started:.1f}")
    print(f"mutants={len(rows)} caught={caught}", flush=True)
    return 0 if caught == len(rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the seeds; prints failing seeds, then `seeds=<N> violations=<K>` last."""
    arguments = _parser().parse_args(argv)
    if arguments.nodes is None and not arguments.kill_table:
        arguments.nodes = 5
    bad_nodes = arguments.nodes is not None and arguments.nodes < 1
    if bad_nodes or arguments.seeds < 0 or arguments.steps < 0 or arguments.workers < 1:
        print("error: --nodes and --workers must be >= 1, --seeds and --steps >= 0",
              file=sys.stderr)
        return 2
    seed_start, seed_count = arguments.seed_start, arguments.seeds
    if os.environ.get("WARMD_SEED"):
        try:
            seed_start, seed_count = int(os.environ["WARMD_SEED"]), 1
        except ValueError:
            print(f"error: WARMD_SEED must be an integer, got {os.environ['WARMD_SEED']!r}",
                  file=sys.stderr)
            return 2
    seeds = range(seed_start, seed_start + seed_count)
    if arguments.kill_table:
        node_counts = [arguments.nodes] if arguments.nodes else [3, 5]
        return _print_kill_table(seeds, node_counts, arguments.steps, arguments.workers)
    node_factory = MUTANTS[arguments.mutant] if arguments.mutant else RaftNode
    options = SimulationOptions(node_count=arguments.nodes, steps=arguments.steps,
                                node_factory=node_factory)
    started = time.monotonic()
    violations = ticks = operations = 0
    for result in run_seeds(seeds, options, arguments.workers):
        ticks += result.ticks
        operations += result.operations
        if not result.ok:
            violations += 1
            headline, *details = str(result.violation).splitlines()
            print(f"seed={result.seed} violation={headline} "
                  f"replay: {replay_command(result.seed, options)}", flush=True)
            if arguments.verbose:
                for line in [*details, *result.events]:
                    print(f"    {line}")
    elapsed_s = time.monotonic() - started
    print(f"nodes={arguments.nodes} steps={arguments.steps} ticks={ticks} "
          f"operations={operations} elapsed_s={elapsed_s:.1f}")
    print(f"seeds={seed_count} violations={violations}", flush=True)
    return 0 if violations == 0 else 1
