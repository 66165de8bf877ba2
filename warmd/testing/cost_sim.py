"""CostCluster: the seeded SimCluster with a cost model for CPU, disk and network.

SimCluster moves in lockstep ticks, which says nothing about how long work takes. Here
the same pure RaftNodes and the same Ready handling (persist, send, apply, advance, with
the safety checker watching) run on a discrete-event clock in microseconds: each host
is one event loop that handles its queued events and Readies one run at a time (as the
daemon's driver does), pays CPU per message, per entry and per byte, waits for its fsync
(requests that arrive meanwhile queue and travel together: the group commit), and sends
over links with per-message latency and per-byte bandwidth. A closed-loop client keeps
`in_flight` writes outstanding at the leader. Everything random comes from one seed.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from warmd.codec import encode_message
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.errors import NotLeader, ProposalDropped
from warmd.raft.types import Message, Ready, Role
from warmd.testing.cluster import ClusterOptions, NodeFactory, SimCluster, SimNode, Write
from warmd.testing.kvstore import PutCommand
from warmd.testing.network import SimNetwork

EVENTS_PER_RUN_MAX = 64  # as the driver: this many queued events, then the Readies
WRITE_BYTES = 100  # the entry size of bench/raft_throughput.py


@dataclass(frozen=True, slots=True)
class CostModel:
    """What work costs, in microseconds. CPU is charged to the host's one event loop;
    fsync is disk time (the loop waits for it, other hosts do not); network costs are
    per message (one-way latency) and per byte (the sender's link bandwidth)."""

    ready_us: float  # one turn of the driver over a Ready (bookkeeping, hand-offs)
    message_handled_us: float  # receive, decode and step one Raft message
    message_sent_us: float  # build, frame and write one Raft message
    byte_coded_us: float  # per byte of a message, at each end (encode, decode, copy)
    entry_appended_us: float  # write one entry's record to the log
    entry_applied_us: float  # decode, validate and apply one committed entry
    proposal_us: float  # the leader takes one client write in and answers it
    tick_us: float  # one Raft tick's own work
    fsync_us: float  # one group-committed fsync: the disk's latency
    fsync_cpu_us: float  # the CPU an fsync burns (kernel time, on the writer thread)
    network_message_us: float  # one-way latency per message
    network_byte_us: float  # per byte on the sender's link
    tick_interval_us: float = 50_000.0  # the shipped [raft] tick_interval_ms = 50
    network_jitter: float = 0.2  # each message's latency is drawn within +-this fraction

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.network_jitter >= 1:
            raise ValueError("network_jitter must be < 1")
        if self.tick_interval_us <= 0:
            raise ValueError("tick_interval_us must be > 0")


@dataclass(frozen=True, slots=True)
class CostRun:
    """One run's shape: the members, the load, how long, and the seed."""

    voters: int = 3
    learners: int = 0
    in_flight: int = 64
    warmup_us: float = 500_000.0
    measure_us: float = 1_000_000.0
    # None: every host has its own core and disk; N: all hosts share N cores and one disk
    # (real processes on one machine, as the real-process bench runs them).
    shared_cores: int | None = None
    seed: int = 1

    def __post_init__(self) -> None:
        if self.voters < 1 or self.learners < 0 or self.in_flight < 1:
            raise ValueError("need voters >= 1, learners >= 0, in_flight >= 1")
        if self.shared_cores is not None and self.shared_cores < 1:
            raise ValueError("shared_cores must be >= 1 or None")


@dataclass(frozen=True, slots=True)
class HostFigures:
    """One host's work per commit over the measured window (the calibration's unknowns
    multiply these counts)."""

    cpu_us: float
    readies: float
    messages: float  # sent and handled
    fsyncs: float
    entries: float  # appended (each is applied too)


@dataclass(frozen=True, slots=True)
class CostResult:
    """What the measured window showed (after the warm-up)."""

    commits: int
    commits_per_s: float
    p50_ms: float
    p99_ms: float
    leader: HostFigures
    follower: HostFigures | None  # a voter that is not the leader (None: a lone voter)
    learner: HostFigures | None  # None without learners
    elections: int  # leader changes after the first leader (0 in a healthy run)

    @property
    def leader_cpu_us_per_commit(self) -> float:
        return self.leader.cpu_us


class _Kind(Enum):
    ARRIVE = 0
    TICK = 1
    PROPOSE = 2
    WAKE = 3
    CAMPAIGN = 4


@dataclass(frozen=True, slots=True)
class _Arrival:
    """A message on its way in, with its encoded size (its receiver pays per byte)."""

    message: Message
    size_bytes: int


_Payload = _Arrival | PutCommand | None


@dataclass(slots=True)
class _Host:
    """One host's event loop: what waits for it, when it is free, what it has used."""

    inbox: deque[tuple[_Kind, _Payload]] = field(default_factory=deque)
    free_us: float = 0.0
    wake_pending: bool = False
    cpu_us: float = 0.0
    readies: int = 0
    messages: int = 0
    fsyncs: int = 0
    entries: int = 0  # appended and applied
    disk_free_us: float = 0.0
    link_free_us: float = 0.0


class _Wire(SimNetwork):
    """The cluster's network: a sent message leaves when the sender's run reaches it."""

    def __init__(self, cluster: CostCluster) -> None:
        super().__init__(random.Random(0))
        self._cluster = cluster

    def send(self, message: Message, now_ticks: int) -> None:
        self._cluster.transmit(message)


class CostCluster(SimCluster):
    """See the module docstring. `CostCluster(model, CostRun(...)).measure()`."""

    def __init__(self, model: CostModel, run: CostRun, raft: RaftConfig | None = None,
                 node_factory: NodeFactory = RaftNode) -> None:
        options = ClusterOptions(
            node_count=run.voters,
            raft=raft or RaftConfig(node_id=1, election_timeout_ticks=10, heartbeat_ticks=2),
            learner_ids=tuple(range(run.voters + 1, run.voters + run.learners + 1)),
            async_persist=False,  # the cost model charges the synchronous Ready loop
        )
        self.model, self.run_options = model, run
        self._events: list[tuple[float, int, int, _Kind, _Payload]] = []
        self._sequence = 0
        self._now_us = 0.0
        self._cursor_us = 0.0  # the running host's time as its run goes on
        self._charged_us = 0.0  # the running host's CPU on its loop in this run
        self._offloop_us = 0.0  # and on its writer thread (fsyncs)
        self._fsync_done_us = 0.0  # a leader's fsync: it sends first and waits at the end
        self._hosts: dict[int, _Host] = {}
        self._cores = [0.0] * (run.shared_cores or 0)
        self._latencies_us: list[float] = []
        self._sent_us: dict[tuple[int, int], float] = {}
        self._leaders: list[int] = []
        self._arrivals_us: dict[tuple[int, int], float] = {}  # a link delivers in order (TCP)
        super().__init__(random.Random(run.seed), options, node_factory)
        self.network = _Wire(self)
        self._jitter = random.Random(self.rng.getrandbits(64))
        for node_id in self.nodes:
            self._hosts[node_id] = _Host()
            self._push(self._jitter.uniform(0, model.tick_interval_us), node_id, _Kind.TICK, None)
        self._push(0.0, 1, _Kind.CAMPAIGN, None)

    # -- the event loop --------------------------------------------------------------

    def _push(self, at_us: float, node_id: int, kind: _Kind, payload: _Payload) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (at_us, self._sequence, node_id, kind, payload))

    def run_until_us(self, end_us: float) -> None:
        """Handle every event due before `end_us` (simulated microseconds)."""
        events = self._events
        while events and events[0][0] < end_us:
            at_us, _, node_id, kind, payload = heapq.heappop(events)
            self._now_us = at_us
            host = self._hosts[node_id]
            if kind is _Kind.TICK:
                self._push(at_us + self.model.tick_interval_us, node_id, _Kind.TICK, None)
            if kind is _Kind.WAKE:
                host.wake_pending = False
            else:
                host.inbox.append((kind, payload))
            if host.free_us > at_us:
                self._wake_later(node_id, host)
            else:
                self._run_host(node_id, host, at_us)
        self._now_us = end_us

    def _wake_later(self, node_id: int, host: _Host) -> None:
        if not host.wake_pending and host.inbox:
            host.wake_pending = True
            self._push(host.free_us, node_id, _Kind.WAKE, None)

    def _run_host(self, node_id: int, host: _Host, at_us: float) -> None:
        """One turn of the host's loop: its queued events, then every Ready they made."""
        start_us = at_us
        core = min(range(len(self._cores)), key=self._cores.__getitem__) if self._cores else -1
        if core >= 0:
            start_us = max(start_us, self._cores[core])
        self._cursor_us, self._charged_us = start_us, 0.0
        self._offloop_us = 0.0
        self._fsync_done_us = start_us
        node = self.nodes[node_id]
        for _ in range(min(len(host.inbox), EVENTS_PER_RUN_MAX)):
            kind, payload = host.inbox.popleft()
            self._handle(node, host, kind, payload)
        self._drain(node)
        self._cursor_us = max(self._cursor_us, self._fsync_done_us)
        host.cpu_us += self._charged_us + self._offloop_us
        host.free_us = self._cursor_us
        if core >= 0:
            self._cores[core] = start_us + self._charged_us + self._offloop_us
        self.observe()
        self._note_leader()
        self._wake_later(node_id, host)

    def _charge(self, cpu_us: float) -> None:
        self._cursor_us += cpu_us
        self._charged_us += cpu_us

    def _handle(self, node: SimNode, host: _Host, kind: _Kind, payload: _Payload) -> None:
        raft = node.raft
        if raft is None:
            return
        model = self.model
        if isinstance(payload, _Arrival):
            self._charge(model.message_handled_us + payload.size_bytes * model.byte_coded_us)
            host.messages += 1
            raft.step(payload.message)
        elif isinstance(payload, PutCommand):
            self._charge(model.proposal_us)
            self._propose(node.node_id, payload)
        elif kind is _Kind.TICK:
            self._charge(model.tick_us)
            raft.tick()
        elif kind is _Kind.CAMPAIGN:
            raft.campaign()

    def _propose(self, node_id: int, command: PutCommand) -> None:
        """Propose at the leader; a refused write retries a tick later (no leader yet)."""
        try:
            if self.nodes[node_id].raft is None or self.raft(node_id).role is not Role.LEADER:
                raise ProposalDropped(ProposalDropped.NO_LEADER, "not the leader")
            self.raft(node_id).propose(command.encode())
        except (NotLeader, ProposalDropped):
            target = self.leader_id() or node_id
            self._push(self._cursor_us + self.model.tick_interval_us, target, _Kind.PROPOSE,
                       command)

    # -- costs hooked into SimCluster's Ready handling ------------------------------

    def transmit(self, message: Message) -> None:
        """The running host sends `message`: its CPU, its link, then the wire."""
        model = self.model
        size_bytes = len(encode_message(message))
        self._charge(model.message_sent_us + size_bytes * model.byte_coded_us)
        sender = self._hosts[message.from_id]
        sender.messages += 1
        link = self._link(sender)
        leaves_us = max(self._cursor_us, link.link_free_us) + size_bytes * model.network_byte_us
        link.link_free_us = leaves_us
        if message.to not in self._hosts:
            return
        spread = model.network_jitter
        latency_us = model.network_message_us * self._jitter.uniform(1 - spread, 1 + spread)
        route = (message.from_id, message.to)
        arrives_us = max(leaves_us + latency_us, self._arrivals_us.get(route, 0.0))
        self._arrivals_us[route] = arrives_us
        self._push(arrives_us, message.to, _Kind.ARRIVE, _Arrival(message, size_bytes))

    def _link(self, sender: _Host) -> _Host:
        """Whose link and disk a host uses: its own, or the one shared machine's."""
        return self._hosts[min(self._hosts)] if self._cores else sender

    def _persist(self, node: SimNode, write: Write) -> None:
        super()._persist(node, write)
        ready = write.ready
        host = self._hosts.get(node.node_id)
        if host is None:
            return
        self._charge(self.model.ready_us)
        host.readies += 1
        if not (ready.entries or ready.must_sync):
            return
        self._charge(len(ready.entries) * self.model.entry_appended_us)
        host.fsyncs += 1
        host.entries += len(ready.entries)
        self._offloop_us += self.model.fsync_cpu_us
        disk = self._link(host)
        done_us = max(self._cursor_us, disk.disk_free_us) + self.model.fsync_us
        disk.disk_free_us = done_us
        if node.raft is not None and node.raft.role is Role.LEADER:
            self._fsync_done_us = max(self._fsync_done_us, done_us)  # it sends meanwhile
        else:
            self._cursor_us = done_us  # a follower answers once its log is durable

    def _apply(self, node: SimNode, ready: Ready) -> None:
        self._cursor_us = max(self._cursor_us, self._fsync_done_us)
        super()._apply(node, ready)
        if node.node_id not in self._hosts:
            return
        self._charge(len(ready.committed_entries) * self.model.entry_applied_us)
        if node.raft is None or node.raft.role is not Role.LEADER:
            return
        for entry in ready.committed_entries:
            if entry.data:
                self._answer(PutCommand.decode(entry.data))

    def _answer(self, command: PutCommand) -> None:
        """The leader applied a client's write: reply, and the client sends its next."""
        sent_us = self._sent_us.pop((command.client_id, command.sequence), None)
        if sent_us is None:
            return
        replied_us = self._cursor_us + self.model.network_message_us
        self._latencies_us.append(replied_us - sent_us)
        self._client_write(command.client_id, command.sequence + 1, replied_us)

    def _client_write(self, client_id: int, sequence: int, at_us: float) -> None:
        value = "v" * (WRITE_BYTES - 16)
        command = PutCommand(client_id, sequence, f"k{client_id}", value)
        self._sent_us[(client_id, sequence)] = at_us
        leader = self.leader_id() or 1
        self._push(at_us + self.model.network_message_us, leader, _Kind.PROPOSE, command)

    def _note_leader(self) -> None:
        leader = self.leader_id()
        if leader is not None and (not self._leaders or self._leaders[-1] != leader):
            self._leaders.append(leader)

    # -- the measurement -------------------------------------------------------------

    def measure(self) -> CostResult:
        """Elect, start the clients, warm up, then measure one window (once per cluster).

        Raises:
            RuntimeError: no leader within 20 ticks (the seed is in the message).
        """
        run = self.run_options
        self.run_until_us(20 * self.model.tick_interval_us)
        leader = self.leader_id()
        if leader is None:
            raise RuntimeError(f"seed {run.seed}: no leader after 20 ticks")
        start_us = self._now_us
        for client_id in range(1, run.in_flight + 1):
            self._client_write(client_id, 1, start_us)
        window_start_us = start_us + run.warmup_us
        self.run_until_us(window_start_us)
        leader = self.leader_id() or leader
        before = {node_id: _counts(host) for node_id, host in self._hosts.items()}
        self._latencies_us = []
        self.run_until_us(window_start_us + run.measure_us)
        latencies = sorted(self._latencies_us)
        commits = len(latencies)

        def figures(node_id: int) -> HostFigures:
            now = _counts(self._hosts[node_id])
            return HostFigures(*[(after - earlier) / max(commits, 1)
                                 for after, earlier in zip(now, before[node_id], strict=True)])

        follower = next((n for n in range(1, run.voters + 1) if n != leader), None)
        return CostResult(
            commits=commits,
            commits_per_s=commits / (run.measure_us / 1e6),
            p50_ms=_percentile(latencies, 0.50) / 1000,
            p99_ms=_percentile(latencies, 0.99) / 1000,
            leader=figures(leader),
            follower=None if follower is None else figures(follower),
            learner=figures(run.voters + 1) if run.learners else None,
            elections=max(0, len(self._leaders) - 1),
        )


def _counts(host: _Host) -> tuple[float, ...]:
    return (host.cpu_us, host.readies, host.messages, host.fsyncs, host.entries)


def _percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest rank; 0 for an empty list."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, int(fraction * len(sorted_values) + 0.999999) - 1))
    return sorted_values[rank]
