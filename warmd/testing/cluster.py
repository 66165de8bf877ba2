"""SimCluster: N pure RaftNodes driven tick by tick over a SimNetwork, with crashes.

The driver follows the Ready contract for each node as the real driver does, with
asynchronous storage writes: at once it sends the Ready's early messages and applies its
committed entries; the write into the node's MemoryStorage (which plays the disk)
completes later, at a seeded random moment, in order, and only then are the other
messages sent and the Ready advanced. A Ready that installs a snapshot or overwrites
entries in flight waits for the writes before it and completes at once. A crash drops
the RaftNode, the machine and the writes still in flight and keeps only the storage, so
whatever was not persisted is lost; a restart builds a new RaftNode on that storage. The
safety checker watches every persisted, applied and observed fact.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import Enum

import msgpack

from warmd.raft.confchange import decode_conf_change
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.errors import Compacted, NotLeader, ProposalDropped, Unavailable
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    LostEntries,
    Message,
    MessageType,
    ReadState,
    Ready,
    Role,
)
from warmd.testing.checkers import NodeView, SafetyChecker, SafetyViolation
from warmd.testing.clock import VirtualClock
from warmd.testing.kvstore import KeyValueMachine, PutCommand
from warmd.testing.network import LinkFaults, SimNetwork
from warmd.testing.workload import Workload

NodeFactory = Callable[[RaftConfig, MemoryStorage, random.Random], RaftNode]
# Decides, when a Ready is made, whether the node dies once it is persisted, unsent.
CrashHook = Callable[["SimNode", Ready], bool]


READY_ROUNDS_MAX = 10_000  # a core whose has_ready() never settles is a bug, not a hang
CAMPAIGN_RETRY_TICKS = 4  # elect(): a candidate without a result after this long tries again
PERSIST_NOW_CHANCE = 0.5  # a write in flight completes at each chance with this probability
PERSIST_TICKS_MAX = 2  # and surely once it is this many ticks old (a disk that answers)
_KEEPS_TERM = frozenset({MessageType.PRE_VOTE})  # carries a future term without raising ours


class CrashPoint(Enum):
    """Where inside the Ready handling an armed node dies (the dangerous instants)."""

    NONE = "none"
    AFTER_PERSIST = "after-persist"  # the disk has the Ready, the network saw nothing
    AFTER_VOTE = "after-vote"  # it just sent a vote grant (it must remember that vote)
    AFTER_ELECTED = "after-elected"  # it just won, persisted its no-op, sent nothing


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    """The shape of a simulated cluster; every node gets the same Raft settings."""

    node_count: int = 3
    raft: RaftConfig = field(default_factory=lambda: RaftConfig(node_id=1))
    compact_every_entries: int = 0  # hand the core a snapshot this often (0: never)
    learner_ids: tuple[int, ...] = ()  # extra nodes that start as learners
    # Clock skew: node i ticks tick_rates[i - 1] times per simulated tick on average
    # (e.g. 0.7: a slow clock); nodes past the tuple tick at rate 1.
    tick_rates: tuple[float, ...] = ()
    # A crash also loses what was written without a sync (a commit-only hard state:
    # Ready.must_sync was False), as a disk with a volatile write cache does.
    lose_unsynced_on_crash: bool = False
    # Storage writes complete after the Ready, in a seeded order (the real driver's
    # asynchronous writes); False: each Ready is persisted before the next is made.
    async_persist: bool = True

    def __post_init__(self) -> None:
        if self.node_count < 1:
            raise ValueError(f"node_count must be >= 1, got {self.node_count}")
        if self.compact_every_entries < 0:
            raise ValueError("compact_every_entries must be >= 0")
        if any(not 0.0 < rate <= 4.0 for rate in self.tick_rates):
            raise ValueError(f"tick rates must be within (0, 4], got {self.tick_rates}")

    def config_for(self, node_id: int) -> RaftConfig:
        config = replace(self.raft, node_id=node_id)
        config.validate()
        return config


@dataclass(frozen=True, slots=True)
class Write:
    """A Ready handed out whose write has not completed: the tick it started, whether its
    early messages went and its entries were applied at once, and the node's terms when
    it was made (the checker judges the write by those, not by a term reached since)."""

    ready: Ready
    started_ticks: int
    early: bool
    writing_term: int  # the term of the leader the entries came from
    term: int
    doomed: bool  # the crash hook chose it: the node dies once it is written, unsent


class SimNode:
    """One simulated server: its disk (storage) survives a crash, the rest does not."""

    def __init__(self, node_id: int, storage: MemoryStorage) -> None:
        self.node_id = node_id
        self.storage = storage
        self.raft: RaftNode | None = None
        self.machine = KeyValueMachine()
        self.lifetime = 0
        self.read_waiting: list[ReadState] = []
        self.snapshot_index = 0
        self.crash_point = CrashPoint.NONE  # armed by a test or the nemesis
        self.last_seen: tuple[int, Role, int, int] | None = None  # what the checker saw last
        self.read_states: list[ReadState] = []  # every ReadIndex answer of this lifetime
        self.synced_hard_state = storage.hard_state  # what a crash cannot take away
        self.tick_rate = 1.0
        self.tick_credit = 0.0  # ticks owed to this node at its rate
        self.commit_reported = 0  # the highest commit this node, leading, told the checker
        # CPU starvation: until this tick the node runs nothing; what arrives waits in
        # `held`, and on waking it takes all of it and one tick (a starved driver's timer
        # fires once however long it slept).
        self.stalled_until = 0
        self.held: list[Message] = []
        self.term_heard = 0  # the highest term a message that may raise terms brought it
        # The lowest term the node held right after taking an APPEND since its last Ready:
        # the term it wrote those entries in (it may rise again before the Ready).
        self.append_term: int | None = None
        self.in_flight: deque[Write] = deque()  # Readys whose writes have not completed
        self.last_handed = storage.last_index()  # the last entry given to a write

    @property
    def up(self) -> bool:
        return self.raft is not None

    def step(self, message: Message) -> None:
        """Hand a delivered message to the running node, noting the term it may adopt."""
        raft = self.raft
        if raft is None:
            return
        if message.type not in _KEEPS_TERM and not (
                message.type is MessageType.PRE_VOTE_RESPONSE and not message.reject):
            self.term_heard = max(self.term_heard, message.term)
        raft.step(message)
        if message.type is MessageType.APPEND:
            term = raft.term
            self.append_term = term if self.append_term is None else min(self.append_term, term)

    def term_at(self, index: int) -> int | None:
        """The persisted log term at `index`: None if compacted, 0 if past the end."""
        try:
            return self.storage.term(index)
        except Compacted:
            return None
        except Unavailable:
            return 0


class SimCluster:
    """Runs a whole cluster deterministically from one `random.Random`."""

    def __init__(
        self,
        rng: random.Random,
        options: ClusterOptions | None = None,
        node_factory: NodeFactory = RaftNode,
        workload: Workload | None = None,
        faults: LinkFaults | None = None,
    ) -> None:
        self.options = options or ClusterOptions()
        self.rng = rng
        self.node_factory = node_factory
        self.clock = VirtualClock()
        self.network = SimNetwork(random.Random(rng.getrandbits(64)), faults)
        self._disk_rng = random.Random(rng.getrandbits(64))  # when writes in flight complete
        self.checker = SafetyChecker()
        self.workload = workload
        self._scenario_sequences: dict[int, int] = {}
        conf_state = self._founding_conf_state()
        self.nodes: dict[int, SimNode] = {}
        self.lost_entries: list[tuple[int, LostEntries]] = []  # (tick, report) from leaders
        self.crash_hook: CrashHook | None = None  # e.g. the nemesis's crash rates
        self._read_floors: dict[bytes, int] = {}  # read context -> commit when first asked
        # While True the Raft nodes get no tick (no heartbeat, election or learner batch):
        # messages, disks and clients still move. What completes then needs no timer.
        self.raft_clocks_stopped = False
        rates = self.options.tick_rates
        self._skewed = any(rate != 1.0 for rate in rates)
        for node_id in (*conf_state.voters, *conf_state.learners):
            node = self.nodes[node_id] = SimNode(node_id, _new_storage(conf_state))
            if node_id <= len(rates):
                node.tick_rate = rates[node_id - 1]
            self.start(node_id)

    @property
    def now_ticks(self) -> int:
        return self.clock.now_ticks

    # -- lifecycle -------------------------------------------------------------------

    def add_node(self, node_id: int) -> SimNode:
        """Make a blank server that joins once a conf change names it.

        Its disk starts with the founding configuration and an empty log (the
        LogStorage contract): the log's conf changes then replay on top of it.
        """
        if node_id in self.nodes:
            raise ValueError(f"node {node_id} already exists")
        node = self.nodes[node_id] = SimNode(node_id, _new_storage(self._founding_conf_state()))
        self.start(node_id)
        return node

    def _founding_conf_state(self) -> ConfState:
        return ConfState(voters=tuple(range(1, self.options.node_count + 1)),
                         learners=self.options.learner_ids)

    def start(self, node_id: int) -> None:
        """Boot (or reboot) a node from what its storage persisted."""
        node = self.nodes[node_id]
        if node.up:
            raise ValueError(f"node {node_id} is already running")
        hard_state, _conf_state = node.storage.initial_state()
        if node.lifetime > 0:
            self.checker.observe_restart(node_id, hard_state, node.term_at)
        snapshot = node.storage.snapshot()
        node.machine = KeyValueMachine.restore(snapshot.data)
        node.snapshot_index = snapshot.meta.index
        self.checker.observe_snapshot_applied(node_id, snapshot.meta.index)
        node.read_waiting = []
        node.last_handed = node.storage.last_index()
        node.raft = self.node_factory(
            self.options.config_for(node_id), node.storage, random.Random(self.rng.getrandbits(64))
        )
        self._drain(node)

    def crash(self, node_id: int) -> None:
        """Kill a node: volatile state and unsent work are gone, the disk stays."""
        node = self.nodes[node_id]
        node.raft = None
        if self.options.lose_unsynced_on_crash and node.storage.hard_state != node.synced_hard_state:
            node.storage.set_hard_state(node.synced_hard_state)
            self.checker.observe_unsynced_loss(node_id, node.synced_hard_state)
        node.machine = KeyValueMachine()
        node.read_waiting = []
        node.read_states = []
        node.lifetime += 1
        node.crash_point = CrashPoint.NONE
        node.stalled_until, node.held = 0, []
        node.in_flight.clear()  # never written

    def restart(self, node_id: int) -> None:
        """Crash (if up) and boot again from disk."""
        if self.nodes[node_id].up:
            self.crash(node_id)
        self.start(node_id)

    def lose_log_tail(self, node_id: int, count: int) -> int:
        """Crash a node whose disk then loses its newest `count` entries, even synced ones.

        Its commit mark drops to what is left; term and vote survive (a truncated log).
        The node stays down; returns its new last index.
        """
        if self.nodes[node_id].up:
            self.crash(node_id)
        storage = self.nodes[node_id].storage
        last_index = max(storage.first_index() - 1, storage.last_index() - count)
        storage.drop_entries_after(last_index)
        hard_state = storage.hard_state
        if hard_state.commit > last_index:
            storage.set_hard_state(replace(hard_state, commit=last_index))
        self.nodes[node_id].synced_hard_state = storage.hard_state
        self.checker.observe_disk_loss(node_id, storage.hard_state)
        return last_index

    def wipe(self, node_id: int) -> None:
        """Crash a node and give it a blank disk under the same id: log, term and vote are gone.

        The node stays down; it boots, when started, as a founding member would.
        """
        if self.nodes[node_id].up:
            self.crash(node_id)
        node = self.nodes[node_id]
        node.storage = _new_storage(self._founding_conf_state())
        node.synced_hard_state = node.storage.hard_state
        self.checker.observe_disk_loss(node_id, node.storage.hard_state)

    def live_node_ids(self) -> list[int]:
        return [node_id for node_id, node in self.nodes.items() if node.up]

    # -- client port (see workload.ClientPort) --------------------------------------

    def client_targets(self) -> list[int]:
        """Live members of the current configuration (clients know the member list)."""
        conf = self.conf_state()
        members = {*conf.voters, *conf.learners}
        return [node_id for node_id, node in self.nodes.items()
                if node.raft is not None and node_id in members]

    def submit_write(self, node_id: int, data: bytes) -> int | None:
        """Propose `data` on a node: None when taken, else a leader hint (0: none known)."""
        raft = self.nodes[node_id].raft
        if raft is None or self.nodes[node_id].stalled_until > self.now_ticks:
            return 0
        try:
            raft.propose(data)
        except NotLeader as refusal:
            return refusal.leader_id
        except ProposalDropped:
            return 0
        self._drain(self.nodes[node_id])
        return None

    def submit_read(self, node_id: int, context: bytes) -> int | None:
        """Ask a node for a ReadIndex: None when taken, else a leader hint (0: none known)."""
        raft = self.nodes[node_id].raft
        if raft is None or self.nodes[node_id].stalled_until > self.now_ticks:
            return 0
        try:
            raft.read_index(context)
        except NotLeader as refusal:
            return refusal.leader_id
        except ProposalDropped:
            return 0
        # What was committed when the read was first asked: its answer must cover it.
        self._read_floors.setdefault(context, self.checker.committed_high)
        self._drain(self.nodes[node_id])
        return None

    # -- time ------------------------------------------------------------------------

    def tick(self) -> None:
        """One step: deliver due messages, tick every live node, let clients act, check."""
        now_ticks = self.clock.advance()
        self.checker.now_ticks = now_ticks
        nodes = self.nodes
        self._wake_stalled(now_ticks)
        for node in nodes.values():
            if node.in_flight and node.stalled_until <= now_ticks:
                self._complete_writes(node, everything=False)
        for message in self.network.deliver_due(now_ticks):
            target = nodes.get(message.to)
            if target is None or target.raft is None:
                continue
            if target.stalled_until > now_ticks:
                target.held.append(message)
            else:
                target.step(message)
        if not self.raft_clocks_stopped:
            self._tick_rafts(now_ticks)
        if self.workload is not None:
            self.workload.step(self, now_ticks)
        for node in nodes.values():
            if node.raft is not None and node.stalled_until <= now_ticks:
                self._drain(node)
        self.observe()

    def _tick_rafts(self, now_ticks: int) -> None:
        if self._skewed:
            self._tick_skewed()
            return
        for node in self.nodes.values():
            if node.raft is not None and node.stalled_until <= now_ticks:
                node.raft.tick()

    def stall(self, node_id: int, ticks: int) -> None:
        """Starve a node of CPU for `ticks` ticks: it steps, ticks and sends nothing;
        messages for it wait, and when it wakes it steps them all in one burst and gets
        one tick for the whole stall (the real driver's ticker coalesces a stall so)."""
        if ticks < 1:
            raise ValueError(f"a stall lasts at least one tick, got {ticks}")
        node = self.nodes[node_id]
        node.stalled_until = max(node.stalled_until, self.now_ticks + ticks + 1)

    def _wake_stalled(self, now_ticks: int) -> None:
        """A node whose stall ends now steps what it was sent meanwhile, then ticks once."""
        for node in self.nodes.values():
            if node.stalled_until != now_ticks:
                continue
            held, node.held = node.held, []
            if node.raft is None:
                continue
            for message in held:
                node.step(message)

    def calm_clocks(self) -> None:
        """End the clock skew: every node ticks at rate 1 from now on."""
        self._skewed = False
        for node in self.nodes.values():
            node.tick_rate, node.tick_credit = 1.0, 0.0

    def _tick_skewed(self) -> None:
        """Each node ticks at its own rate: whole ticks as its credit allows."""
        now_ticks = self.now_ticks
        for node in self.nodes.values():
            if node.stalled_until > now_ticks:
                continue
            node.tick_credit += node.tick_rate
            while node.tick_credit >= 1.0:
                node.tick_credit -= 1.0
                if node.raft is not None:
                    node.raft.tick()

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.tick()

    def run_until(self, predicate: Callable[[], bool], max_ticks: int) -> bool:
        """Tick until `predicate()` holds; returns False if `max_ticks` ran out first."""
        for _ in range(max_ticks):
            if predicate():
                return True
            self.tick()
        return predicate()

    def observe(self) -> None:
        """Hand every live node's volatile state to the checker (when it changed)."""
        checker = self.checker
        for node in self.nodes.values():
            raft = node.raft
            if raft is None:
                continue
            seen = (raft.term, raft.role, raft.log.committed, node.lifetime)
            if seen != node.last_seen:
                node.last_seen = seen
                checker.observe_node(NodeView(node.node_id, *seen), node.term_at)

    # -- the Ready contract ----------------------------------------------------------

    def _drain(self, node: SimNode) -> None:
        raft = node.raft
        rounds = 0
        while raft is not None and node.raft is raft and raft.has_ready():
            rounds += 1
            if rounds > READY_ROUNDS_MAX:
                raise SafetyViolation("ready loop", f"node {node.node_id} still has a Ready "
                                      f"after {READY_ROUNDS_MAX} rounds in one step")
            ready = raft.ready()
            if ready.lost_entries:
                self.lost_entries.extend((self.clock.now_ticks, lost) for lost in ready.lost_entries)
            if ready.hard_state is not None and raft.role is Role.LEADER:
                self._observe_leader_commit(node, raft, ready.hard_state.commit)
            barrier = ready.snapshot is not None or (
                bool(ready.entries) and ready.entries[0].index <= node.last_handed)
            if barrier:  # the real driver settles the writes before it first
                self._complete_writes(node, everything=True)
                if node.raft is not raft:
                    return
            if ready.entries:
                node.last_handed = ready.entries[-1].index
            elif ready.snapshot is not None:
                node.last_handed = ready.snapshot.meta.index
            # A scripted crash point names an instant of the synchronous order (e.g. "won,
            # persisted its no-op, sent nothing"): such a node persists each Ready at once.
            # So does one the crash hook dooms now ("a leader dies right after appending,
            # before replicating": its early messages never leave, as if all were lost).
            doomed = self.crash_hook is not None and self.crash_hook(node, ready)
            early = (self.options.async_persist and ready.snapshot is None
                     and node.crash_point is CrashPoint.NONE and not doomed)
            if early:  # what the driver does before the write completes
                self._send(node, ready.early_messages)
                self._apply(node, ready)
            writing_term, node.append_term = node.append_term, None
            node.in_flight.append(Write(ready, self.clock.now_ticks, early,
                                        raft.term if writing_term is None else writing_term,
                                        raft.term, doomed))
            self._complete_writes(node, everything=barrier or not early)

    def _complete_writes(self, node: SimNode, everything: bool) -> None:
        """Complete writes in flight, oldest first: all of them, or each with
        PERSIST_NOW_CHANCE (surely once PERSIST_TICKS_MAX old), stopping at the first
        that stays in flight (the writer is one thread, in order)."""
        raft = node.raft
        while node.in_flight and node.raft is raft and raft is not None:
            write = node.in_flight[0]
            if not (everything or self.clock.now_ticks - write.started_ticks >= PERSIST_TICKS_MAX
                    or self._disk_rng.random() < PERSIST_NOW_CHANCE):
                return
            node.in_flight.popleft()
            self._finish_ready(node, raft, write)

    def _finish_ready(self, node: SimNode, raft: RaftNode, write: Write) -> None:
        """The write completed: persist, maybe crash, send the rest, (apply,) advance."""
        ready, early = write.ready, write.early
        self._persist(node, write)
        if node.crash_point is not CrashPoint.NONE and self._crash_now(node, ready, sent=False):
            return
        if write.doomed:
            self.crash(node.node_id)
            return
        if early:
            sent = {id(message) for message in ready.early_messages}
            self._send(node, [m for m in ready.messages if id(m) not in sent])
        else:
            self._send(node, ready.messages)
        if node.crash_point is CrashPoint.AFTER_VOTE and self._crash_now(node, ready, sent=True):
            return
        if not early:
            self._apply(node, ready)
        raft.advance(ready)
        self._maybe_compact(node)

    def _send(self, node: SimNode, messages: Iterable[Message]) -> None:
        now_ticks = self.clock.now_ticks
        for message in messages:
            self.network.send(message, now_ticks)
            if message.type is MessageType.APPEND_RESPONSE and not message.reject:
                self.checker.observe_acknowledged(node.node_id, message.term, message.index,
                                                  message.to)

    def _observe_leader_commit(self, node: SimNode, raft: RaftNode, commit: int) -> None:
        """A leader's commit index is a decision: hand the entries it covers to the checker
        now, so a crash before anyone applies them cannot hide a wrong commit (Figure 8)."""
        reported = node.commit_reported
        if commit <= reported:
            return
        node.commit_reported = commit
        lo = max(reported + 1, raft.log.first_index())
        if lo <= commit:
            self.checker.observe_leader_commit(node.node_id, raft.term,
                                               raft.log.slice(lo, commit + 1))

    def _crash_now(self, node: SimNode, ready: Ready, sent: bool) -> bool:
        """Crash an armed node if this Ready is its instant; returns whether it died."""
        point = node.crash_point
        if sent:
            due = any(message.type is MessageType.VOTE_RESPONSE and not message.reject
                      for message in ready.messages)
        elif point is CrashPoint.AFTER_PERSIST:
            due = True
        elif point is CrashPoint.AFTER_ELECTED:
            soft = ready.soft_state
            due = soft is not None and soft.role is Role.LEADER
        else:
            due = False
        if due:
            self.crash(node.node_id)
        return due

    def _persist(self, node: SimNode, write: Write) -> None:
        storage = node.storage
        checker = self.checker
        ready = write.ready
        if ready.snapshot is not None and ready.snapshot.meta.index > 0:
            storage.apply_snapshot(ready.snapshot)
        if ready.entries:
            # A leader writes its own entries in its term (writing_term is then its term).
            checker.observe_persisted_entries(node.node_id, ready.entries, node.term_at,
                                              write.writing_term)
            storage.append(list(ready.entries))
            self._check_conf_changes(node, ready.entries)
        if ready.entries or ready.snapshot is not None:
            first_written = ready.entries[0].index if ready.entries else 0
            checker.observe_log_end(node.node_id, write.term, storage.last_index(),
                                    first_written)
        soft = ready.soft_state
        if soft is not None and soft.role is Role.PRE_CANDIDATE:
            checker.observe_pre_candidate(node.node_id, ready.hard_state, node.term_heard)
        if ready.hard_state is not None:
            checker.observe_hard_state(node.node_id, ready.hard_state)
            storage.set_hard_state(ready.hard_state)
        if ready.must_sync:
            node.synced_hard_state = storage.hard_state  # the sync covers earlier writes too
        if ready.compaction is not None:
            storage.save_compaction(ready.compaction)

    def _check_conf_changes(self, node: SimNode, entries: tuple[Entry, ...]) -> None:
        """Hand every configuration change a leader appends to the checker: it must be the
        only uncommitted one in the leader's log (§4.1), and a promotion must find the
        learner's own disk caught up (§4.2.1)."""
        raft = node.raft
        if raft is None or raft.role is not Role.LEADER:
            return
        for entry in entries:
            if entry.type is not EntryType.CONF_CHANGE or entry.term != raft.term:
                continue
            self.checker.observe_conf_change_appended(
                node.node_id, entry.index, self._earlier_conf_index(raft, entry.index),
                raft.log.committed)
            change = decode_conf_change(entry.data)
            learner = self.nodes.get(change.node_id)
            if change.type is ConfChangeType.ADD_VOTER and learner is not None:
                self.checker.observe_promotion(
                    node.node_id, change.node_id, learner.storage.last_index(),
                    raft.log.committed, raft.config.learner_lag_entries_max)

    @staticmethod
    def _earlier_conf_index(raft: RaftNode, index: int) -> int:
        """The latest configuration entry before `index` that is not committed (0: none)."""
        lo = max(raft.log.committed + 1, raft.log.first_index())
        earlier = [entry.index for entry in raft.log.slice(lo, index)
                   if entry.type is EntryType.CONF_CHANGE] if lo < index else []
        return max(earlier, default=0)

    def _apply(self, node: SimNode, ready: Ready) -> None:
        checker = self.checker
        if ready.snapshot is not None and ready.snapshot.meta.index > 0:
            node.machine = KeyValueMachine.restore(ready.snapshot.data)
            node.snapshot_index = ready.snapshot.meta.index
            checker.observe_snapshot_applied(node.node_id, ready.snapshot.meta.index)
        term = node.raft.term if node.raft is not None else 0
        for entry in ready.committed_entries:
            if entry.index <= node.machine.applied_index:
                continue  # already inside a restored snapshot
            checker.observe_applied(node.node_id, entry, term)
            checker.observe_applied_from_disk(node.node_id, entry, node.term_at(entry.index))
            applied = node.machine.apply(entry)
            if applied is not None and self.workload is not None:
                self.workload.on_write_applied(applied.command, self.clock.now_ticks,
                                               node.node_id)
        if ready.read_states:
            for read_state in ready.read_states:
                checker.observe_read_index(node.node_id, read_state.index,
                                           self._read_floors.get(read_state.context, 0))
            node.read_states.extend(ready.read_states)
            node.read_waiting.extend(ready.read_states)
        if node.read_waiting:
            self._serve_reads(node)

    def _serve_reads(self, node: SimNode) -> None:
        applied_index = node.machine.applied_index
        waiting = []
        for read_state in node.read_waiting:
            if read_state.index > applied_index:
                waiting.append(read_state)
            elif self.workload is not None:
                key = _read_key(self.workload, read_state.context)
                value = node.machine.values.get(key) if key is not None else None
                self.workload.on_read_served(read_state.context, value, self.clock.now_ticks)
        node.read_waiting = waiting

    def _maybe_compact(self, node: SimNode) -> None:
        every = self.options.compact_every_entries
        if not every or node.raft is None:
            return
        applied_index = node.machine.applied_index
        if applied_index - node.snapshot_index >= every:
            node.raft.compact(applied_index, node.machine.snapshot())
            node.snapshot_index = applied_index

    # -- queries ---------------------------------------------------------------------

    def leader_id(self) -> int | None:
        """The live leader of the highest term, if any."""
        best: tuple[int, int] | None = None
        for node in self.nodes.values():
            raft = node.raft
            if raft is not None and raft.role is Role.LEADER and (
                best is None or raft.term > best[0]
            ):
                best = (raft.term, node.node_id)
        return None if best is None else best[1]

    def conf_state(self) -> ConfState:
        """The configuration as the leader (else the most advanced live node) sees it."""
        leader = self.leader_id()
        if leader is not None:
            return self.raft(leader).conf_state
        live = [node.raft for node in self.nodes.values() if node.raft is not None]
        if not live:
            return self.nodes[min(self.nodes)].storage.initial_state()[1]
        return max(live, key=lambda raft: (raft.term, raft.log.last_index())).conf_state

    def raft(self, node_id: int) -> RaftNode:
        """The running RaftNode of `node_id` (ValueError when it is down)."""
        raft = self.nodes[node_id].raft
        if raft is None:
            raise ValueError(f"node {node_id} is down")
        return raft

    def log_entries(self, node_id: int) -> list[Entry]:
        """The persisted log of a node after its snapshot."""
        storage = self.nodes[node_id].storage
        first, last = storage.first_index(), storage.last_index()
        return list(storage.entries(first, last + 1, 1 << 62)) if last >= first else []

    def hard_state(self, node_id: int) -> HardState:
        return self.nodes[node_id].storage.initial_state()[0]

    # -- scenario helpers ------------------------------------------------------------

    def wait_for_leader(self, max_ticks: int = 300, among: Iterable[int] | None = None) -> int:
        """Tick until a live node (of `among`, if given) leads; returns its id.

        Raises:
            TimeoutError: no such leader within `max_ticks`.
        """
        allowed = set(among) if among is not None else None

        def found() -> bool:
            leader = self.leader_id()
            return leader is not None and (allowed is None or leader in allowed)

        if not self.run_until(found, max_ticks):
            raise TimeoutError(f"no leader among {allowed or 'all'} within {max_ticks} ticks")
        return self.leader_id()  # type: ignore[return-value]

    def elect(self, node_id: int, max_ticks: int = 100) -> None:
        """Make `node_id` campaign (again after each lost round) until it leads.

        Raises:
            TimeoutError: it did not win within `max_ticks`.
        """
        node = self.nodes[node_id]
        campaign_ticks = -CAMPAIGN_RETRY_TICKS
        for tick_number in range(max_ticks):
            raft = node.raft
            if raft is None:
                break
            if raft.role is Role.LEADER:
                return
            stuck = tick_number - campaign_ticks >= CAMPAIGN_RETRY_TICKS
            if raft.role in (Role.FOLLOWER, Role.LEARNER) or stuck:
                campaign_ticks = tick_number
                raft.campaign()
                self._drain(node)
            self.tick()
        raise TimeoutError(f"node {node_id} did not win within {max_ticks} ticks")

    def put(self, node_id: int, key: str, value: str, client_id: int = 1) -> PutCommand:
        """Propose a write on `node_id` as the next command of `client_id`."""
        sequence = self._scenario_sequences.get(client_id, 0) + 1
        self._scenario_sequences[client_id] = sequence
        command = PutCommand(client_id, sequence, key, value)
        self.raft(node_id).propose(command.encode())
        self._drain(self.nodes[node_id])
        return command

    def propose_conf_change(self, node_id: int, change: ConfChange) -> None:
        """Propose a membership change on `node_id` (raises as RaftNode does)."""
        self.raft(node_id).propose_conf_change(change)
        self._drain(self.nodes[node_id])

    def transfer_leadership(self, node_id: int, target_id: int) -> None:
        """Ask `node_id` to hand leadership to `target_id` (raises as RaftNode does)."""
        self.raft(node_id).transfer_leadership(target_id)
        self._drain(self.nodes[node_id])

    def applied_index(self, node_id: int) -> int:
        return self.nodes[node_id].machine.applied_index

    def wait_applied(self, index: int, node_ids: Iterable[int], max_ticks: int = 300) -> None:
        """Tick until every node in `node_ids` has applied `index` (TimeoutError otherwise)."""
        wanted = list(node_ids)
        if not self.run_until(
            lambda: all(self.applied_index(node_id) >= index for node_id in wanted), max_ticks
        ):
            applied = {node_id: self.applied_index(node_id) for node_id in wanted}
            raise TimeoutError(f"index {index} not applied within {max_ticks} ticks: {applied}")

    def deliver(self, messages: Iterable[Message]) -> None:
        """Hand messages to their targets right now (scenario tests)."""
        for message in messages:
            target = self.nodes.get(message.to)
            if target is not None and target.raft is not None:
                target.step(message)
                self._drain(target)


def _new_storage(conf_state: ConfState) -> MemoryStorage:
    return MemoryStorage(conf_state=conf_state)


def _read_key(workload: Workload, context: bytes) -> str | None:
    client_id, _sequence = msgpack.unpackb(context)
    return workload.pending_read_key(client_id)
