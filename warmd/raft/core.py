"""RaftNode: the pure Raft protocol (etcd's raft.go + rawnode.go), tick/step/propose in, Ready out.

Nothing here does I/O or reads a clock: time is `tick()`, randomness comes from the
injected `random.Random`, and every effect leaves through `ready()`. The driver
persists a Ready's hard state, snapshot and entries, then sends its messages,
then applies its committed entries, then calls `advance()`.

A driver may also keep stepping, ticking and calling `ready()` while earlier Readys are
being persisted (etcd's asynchronous storage writes), as long as it persists them in
order and advances them in order. Safety then rests on four rules kept here: a Ready
never repeats what an earlier one handed out; its committed entries are durable on this
node already (so they may be applied at once); only its `early_messages` may leave
before the Ready is persisted (never an acknowledgement, vote or vote request, and
nothing at all while a new term or vote is not yet durable); and a leader counts itself
toward commit only for what `advance` has told it is durable.

Membership: a configuration takes effect on every node as soon as its CONF_CHANGE
entry is APPENDED to the node's log (Raft dissertation §4.1), and is reverted if
that entry is truncated. The leader appends a change only after it has committed
an entry of its own term and only when no other change is uncommitted.
"""

from __future__ import annotations

import contextlib
import random
from collections import deque
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

from warmd.errors import invariant
from warmd.raft import quorum
from warmd.raft.confchange import (
    apply_conf_change,
    check_conf_change,
    decode_conf_change,
    encode_conf_change,
)
from warmd.raft.config import RaftConfig
from warmd.raft.errors import (
    Compacted,
    LogLost,
    NotLeader,
    PromotionCheck,
    PromotionRefused,
    ProposalDropped,
    SnapshotOutOfDate,
    Unavailable,
)
from warmd.raft.log import RaftLog
from warmd.raft.progress import Decrease, Progress
from warmd.raft.readonly import ReadOnly, ReadRequest
from warmd.raft.storage import LogStorage
from warmd.raft.types import (
    NO_NODE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    LostEntries,
    Message,
    MessageType,
    PeerStatus,
    ProgressState,
    RaftStatus,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SoftState,
    make_entry,
)

CAMPAIGN_TRANSFER = b"transfer"  # vote context: a leadership transfer overrides the leader lease
UNCONFIGURED = b"unconfigured"  # APPEND_RESPONSE context: a blank joiner asks for the configuration
# APPEND context: an empty APPEND that only raises the commit index of a replicating member;
# accepted, it needs no answer (a rejection is always answered; see `_handle_append`).
COMMIT_ONLY = b"commit"
_FORWARDED = frozenset({MessageType.PROPOSE, MessageType.READ_INDEX, MessageType.TRANSFER_LEADER})
# A leader's replication and answers: they claim nothing about the sender's disk (its
# followers persist in parallel with it; it counts itself toward commit only for what
# is durable), so they may leave before the Ready that made them is persisted, once the
# leader's term and vote are durable. Everything else speaks for this node's log or vote.
_LEADER_EARLY = frozenset({MessageType.APPEND, MessageType.HEARTBEAT, MessageType.SNAPSHOT,
                           MessageType.TIMEOUT_NOW, MessageType.READ_INDEX_RESPONSE})
_KNOWN_TYPES = frozenset(MessageType)
_KNOWN_ENTRY_TYPES = frozenset(EntryType)


class _Reply(TypedDict, total=False):
    """The fields of an APPEND_RESPONSE besides its context."""

    index: int
    reject: bool
    reject_hint: int
    reject_term: int


class _Fields(_Reply, total=False):
    """The `Message` fields a send fills in besides type, sender, receiver and term."""

    log_term: int
    entries: tuple[Entry, ...]
    commit: int
    context: bytes
    snapshot_meta: SnapshotMeta | None
    chunk_offset: int
    chunk_data: bytes
    chunk_done: bool
_FROM_LEADER = frozenset({MessageType.APPEND, MessageType.HEARTBEAT, MessageType.SNAPSHOT})
_STALLED_HEARTBEATS = 3  # snapshot chunks are re-sent after this many heartbeats without an ack


@dataclass(slots=True)
class _SnapshotReceive:
    """A follower's partly received InstallSnapshot."""

    meta: SnapshotMeta
    from_id: int  # chunks from another leader may encode the same state differently
    received: int = 0
    chunks: list[bytes] = field(default_factory=list)


class RaftNode:
    """One Raft peer as a pure state machine (see the module docstring for the contract)."""

    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        """Build the node on what `storage` persisted.

        Raises:
            ConfigError: `config` is out of range.
            LogLost: the persisted commit index is past the log's last index.
        """
        config.validate()
        self.config = config
        self.id = config.node_id
        self._rng = rng
        self.log = RaftLog(storage)
        hard_state, conf_state = storage.initial_state()
        if hard_state.commit > self.log.last_index():
            raise LogLost(
                f"node {self.id}: the persisted commit index {hard_state.commit} is past the "
                f"last log index {self.log.last_index()}: the disk lost entries this node knew "
                "were committed. Remove the node (warmctl remove) and rejoin it under a new id "
                "with an empty data directory (docs/operations.md, 'Replacing a damaged node')"
            )
        self._term = hard_state.term
        self._vote = hard_state.vote
        self.log.commit_to(hard_state.commit)
        self._restore_applied(config.applied_index)
        self._conf_history: list[tuple[int, ConfState]] = [(self.log.first_index() - 1, conf_state)]
        self._replay_conf_changes(self.log.first_index())
        self._conf = self._conf_history[-1][1]
        self._voters: frozenset[int] = frozenset(self._conf.voters)
        self._learners: frozenset[int] = frozenset(self._conf.learners)
        self._role = Role.FOLLOWER
        self._leader_id = NO_NODE
        self._progress: dict[int, Progress] = {}
        self._votes: dict[int, bool] = {}
        self._messages: list[Message] = []
        self._forwarding: list[Entry] = []  # proposals for the leader, sent at ready()
        self._read_states: list[ReadState] = []
        self._lost_entries: list[LostEntries] = []
        self._ticks = 0  # ticks since this node started: when members last answered
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_timeout = config.election_timeout_ticks
        self._lead_transferee = NO_NODE
        self._pending_conf_index = 0
        self._read_only = ReadOnly()
        self._reads_waiting_for_commit: list[tuple[bytes, int]] = []
        self._snapshot_receive: _SnapshotReceive | None = None
        self._broadcast_pending = False
        self._commit_broadcast_pending = False
        self._compaction: Snapshot | None = None
        self._prev_soft = SoftState()
        self._prev_hard = hard_state
        # Readys handed out and not yet advanced, oldest first, each with whether it
        # changes the term or vote (no early message leaves until that is durable).
        self._readys_outstanding: deque[tuple[Ready, bool]] = deque()
        self._vote_changes_outstanding = 0
        self._become_follower(self._term, NO_NODE)

    def _restore_applied(self, applied_index: int) -> None:
        if applied_index == 0:
            return
        if not self.log.first_index() - 1 <= applied_index <= self.log.committed:
            raise ValueError(
                f"applied_index {applied_index} must lie between the snapshot index "
                f"{self.log.first_index() - 1} and the commit index {self.log.committed}"
            )
        self.log.applied = self.log.applying = applied_index

    def _replay_conf_changes(self, lo: int) -> None:
        """Record the CONF_CHANGE entries of the log from `lo` on into the history."""
        last = self.log.last_index()
        while lo <= last:
            page = self.log.slice(lo, last + 1, 1 << 24)
            self._record_conf_entries(page)
            lo = page[-1].index + 1

    # ------------------------------------------------------------------ read-only API

    @property
    def role(self) -> Role:
        if self._role == Role.FOLLOWER and self.id in self._learners:
            return Role.LEARNER
        return self._role

    @property
    def leader_id(self) -> int:
        return self._leader_id

    @property
    def term(self) -> int:
        return self._term

    @property
    def conf_state(self) -> ConfState:
        return self._conf

    def status(self) -> RaftStatus:
        """A frozen picture of this node; `progress` is filled on the leader only."""
        peers: tuple[PeerStatus, ...] = ()
        if self._role == Role.LEADER:
            peers = tuple(
                PeerStatus(
                    node_id=node_id, match=pr.match, next=pr.next, state=pr.state,
                    inflight=len(pr.inflights), recent_active=pr.recent_active,
                    is_learner=pr.is_learner,
                )
                for node_id, pr in sorted(self._progress.items())
            )
        return RaftStatus(
            node_id=self.id, term=self._term, vote=self._vote, role=self.role,
            leader_id=self._leader_id, commit=self.log.committed, applied=self.log.applied,
            last_index=self.log.last_index(), conf_state=self._conf, progress=peers,
            lead_transferee=self._lead_transferee,
        )

    # ------------------------------------------------------------------ local API

    def tick(self) -> None:
        """Advance logical time by one tick."""
        self._ticks += 1
        if self._role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now (pre-vote first when configured); a no-op for non-voters."""
        self._hup(transfer=False)

    def propose(self, data: bytes) -> None:
        """Propose an application command.

        Raises:
            ProposalDropped: no leader is known, a transfer is in progress, this node
                is not a member, or `data` is over `max_entry_bytes`.
            NotLeader: this node is a follower and `forward_proposals` is off.
        """
        if not isinstance(data, bytes):
            raise TypeError(f"a proposal must be bytes, not {type(data).__name__}")
        self._check_entry_size(data)
        self._propose(EntryType.NORMAL, data)

    def _check_entry_size(self, data: bytes) -> None:
        if len(data) > self.config.max_entry_bytes:
            raise ProposalDropped(ProposalDropped.ENTRY_TOO_LARGE,
                                  f"{len(data)} bytes, the cap is {self.config.max_entry_bytes}")

    def propose_conf_change(self, change: ConfChange) -> None:
        """Propose adding a voter or learner, promoting a learner, or removing a node.

        Raises:
            ProposalDropped: as for propose(), or the leader has not committed an entry
                of its term, another change is pending, the change is invalid, or the
                learner to promote lags more than `learner_lag_entries_max` entries.
        """
        if not isinstance(change, ConfChange) or change.type not in set(ConfChangeType):
            raise TypeError(f"expected a ConfChange, got {change!r}")
        if not isinstance(change.node_id, int) or change.node_id <= 0:
            raise ProposalDropped(ProposalDropped.INVALID_CONF_CHANGE, f"node id {change.node_id!r}")
        self._propose(EntryType.CONF_CHANGE, encode_conf_change(change))

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; the answer comes as a Ready.read_states item.

        `context` comes back unchanged in the ReadState (e.g. a request id).

        Raises:
            ProposalDropped: no leader is known.
            NotLeader: this node is a follower and `forward_proposals` is off.
        """
        if not isinstance(context, bytes) or not context:
            raise TypeError("a read context must be non-empty bytes")
        if self._role == Role.LEADER:
            self._leader_read_index(context, self.id)
            return
        self._forward(MessageType.READ_INDEX, context=context)

    def transfer_leadership(self, target_id: int) -> None:
        """Hand leadership to voter `target_id` once it is caught up (aborts after an election timeout).

        Raises:
            ProposalDropped: the target is not a voter, or no leader is known.
        """
        if self._role == Role.LEADER:
            self._transfer_to(target_id)
            return
        self._forward(MessageType.TRANSFER_LEADER, index=target_id)

    def compact(self, index: int, data: bytes) -> Snapshot | None:
        """Hand in the application's snapshot of its state at `index` (<= applied).

        The snapshot goes out in Ready.compaction; once the driver persists it, the
        log before `index` may be dropped and lagging followers get the snapshot.
        A blank joiner that has not learned its configuration yet keeps its log and
        returns None (its snapshot could not say which configuration it holds).

        Raises:
            SnapshotOutOfDate: a snapshot at or after `index` exists already.
            ValueError: `index` is past the applied index.
        """
        if not isinstance(data, bytes) or not isinstance(index, int):
            raise TypeError("compact() takes an int index and bytes data")
        if not self._configured() or index < self._conf_history[0][0]:
            return None  # the configuration at `index` is unknown to this node
        newest = self.log.first_index() - 1
        if self._compaction is not None:
            newest = max(newest, self._compaction.meta.index)
        if index <= newest:
            raise SnapshotOutOfDate(f"a snapshot at {newest} already covers index {index}")
        # `applying`, not `applied`: an asynchronous driver applies a Ready's entries at
        # once and advances it after its fsync, so its state may be ahead of `applied`.
        if index > self.log.applying:
            raise ValueError(f"cannot snapshot at {index}: only {self.log.applying} is applied")
        meta = SnapshotMeta(index=index, term=self.log.term(index), conf_state=self._conf_at(index))
        self._compaction = Snapshot(meta=meta, data=data)
        self._prune_conf_history(index)
        return self._compaction

    # ------------------------------------------------------------------ Ready / advance

    def has_ready(self) -> bool:
        """Whether ready() would return any work."""
        if (self._broadcast_pending or self._messages or self._forwarding or self._read_states
                or self._lost_entries):
            return True
        log = self.log
        if log.has_unhanded() or self._compaction is not None:
            return True
        if log.has_next_committed():
            return True
        hard, soft = self._prev_hard, self._prev_soft  # compared field by field: a hot path
        if (self._term, self._vote, log.committed) != (hard.term, hard.vote, hard.commit):
            return True
        return (self._leader_id, self.role) != (soft.leader_id, soft.role)

    def ready(self) -> Ready:
        """The next batch of work. Earlier Readys may still be outstanding: persist and
        advance them in the order ready() returned them (see the module docstring)."""
        self._flush_broadcast()
        self._flush_forwarding()
        hard, soft = self._hard_state(), self._soft_state()
        entries, snapshot = self.log.hand_out()
        hard_changed = hard != self._prev_hard
        vote_changed = hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote
        messages = tuple(self._messages)
        compaction = self._compaction
        if compaction is not None and snapshot is not None and (
                compaction.meta.index <= snapshot.meta.index):
            compaction = None  # the leader's snapshot, installed since, covers ours
        ready = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard_changed else None,
            entries=entries,
            snapshot=snapshot,
            committed_entries=tuple(
                self.log.next_committed(self.config.max_committed_bytes_per_ready)
            ),
            messages=messages,
            early_messages=self._early_messages(messages, vote_changed),
            read_states=tuple(self._read_states),
            must_sync=bool(entries) or snapshot is not None or vote_changed,
            compaction=compaction,
            lost_entries=tuple(self._lost_entries),
        )
        self._messages = []
        self._read_states = []
        self._lost_entries = []
        self._compaction = None
        self._prev_hard, self._prev_soft = hard, soft
        self._readys_outstanding.append((ready, vote_changed))
        self._vote_changes_outstanding += vote_changed
        return ready

    def _early_messages(self, messages: tuple[Message, ...],
                        vote_changed: bool) -> tuple[Message, ...]:
        """The messages that may leave before their Ready is durable: forwarded requests
        (they claim nothing) and, once this node's term and vote are on disk, a leader's
        replication. A leader whose term is not yet durable could, restarted, win the same
        term again and send other entries under it."""
        term_durable = not vote_changed and not self._vote_changes_outstanding
        return tuple(message for message in messages
                     if message.type in _FORWARDED
                     or (term_durable and self._sends_before_persist(message)))

    def _sends_before_persist(self, message: Message) -> bool:
        """Whether `message` claims nothing about this node's disk (see _LEADER_EARLY)."""
        return message.type in _LEADER_EARLY

    def advance(self, ready: Ready) -> None:
        """The driver has persisted, sent and applied `ready` (the oldest outstanding one)."""
        outstanding = self._readys_outstanding
        invariant(bool(outstanding) and ready is outstanding[0][0],
                  "advance() must get the oldest Ready not yet advanced")
        self._vote_changes_outstanding -= outstanding.popleft()[1]
        log = self.log
        if ready.snapshot is not None:
            log.stable_snapshot_to(ready.snapshot.meta.index)
            log.applied_to(max(log.applied, ready.snapshot.meta.index))
        if ready.entries:
            last = ready.entries[-1]
            log.stable_to(last.index, last.term)
        if ready.committed_entries:
            log.applied_to(ready.committed_entries[-1].index)
        if self._role == Role.LEADER:
            own = self._progress.get(self.id)
            if own is not None and own.maybe_update(log.stable_index()):
                self._maybe_commit()

    def _hard_state(self) -> HardState:
        return HardState(term=self._term, vote=self._vote, commit=self.log.committed)

    def _soft_state(self) -> SoftState:
        return SoftState(leader_id=self._leader_id, role=self.role)

    # ------------------------------------------------------------------ role changes

    def _promotable(self) -> bool:
        """A voter may campaign; so may a node whose own removal is not yet committed.

        Without the second rule a leader that appended its own removal and then lost
        leadership could deadlock the cluster: its longer log denies the others a
        majority while it refuses to campaign. Elected, it commits the removal under
        the new configuration and steps down (§4.2.2).
        """
        if self.id in self._voters:
            return True
        return self.id in self._conf_at(self.log.committed).voters

    def _reset(self, term: int) -> None:
        if term != self._term:
            self._term = term
            self._vote = NO_NODE
        self._leader_id = NO_NODE
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        timeout = self.config.election_timeout_ticks
        self._randomized_election_timeout = timeout + self._rng.randrange(timeout)
        self._lead_transferee = NO_NODE
        self._votes = {}
        self._progress = {}
        self._pending_conf_index = 0
        self._read_only = ReadOnly()
        self._reads_waiting_for_commit = []
        self._broadcast_pending = False
        self._commit_broadcast_pending = False
        self._commit_wanted_by_all = 0  # a leader's own proposals: every member may wait for them
        self._uncommitted: deque[tuple[int, int]] = deque()  # (index, data bytes) of proposals
        self._uncommitted_bytes = 0

    def _become_follower(self, term: int, leader_id: int) -> None:
        self._reset(term)
        self._role = Role.FOLLOWER
        self._leader_id = leader_id

    def _adopt_term(self, term: int) -> None:
        """Follow a higher term heard from a node that is not its leader, clock running.

        Only a leader's message or a vote we grant restarts the election clock (Raft
        paper, Figure 2). Were a rejected vote request to restart it too, a node whose
        log is the most up to date could be held a follower for ever by the candidacies
        it rejects, while the nodes with shorter logs fail to win among themselves
        (the 30 s stall of the soak under CPU starvation). A deposed leader starts afresh.
        """
        elapsed = 0 if self._role == Role.LEADER else self._election_elapsed
        self._become_follower(term, NO_NODE)
        self._election_elapsed = elapsed

    def _become_pre_candidate(self) -> None:
        # Pre-vote changes neither term nor vote (§9.6), so a failed round costs nothing.
        invariant(self._role != Role.LEADER, "a leader cannot become a pre-candidate")
        self._votes = {}
        self._role = Role.PRE_CANDIDATE
        self._leader_id = NO_NODE

    def _become_candidate(self) -> None:
        invariant(self._role != Role.LEADER, "a leader cannot become a candidate")
        self._reset(self._term + 1)
        self._vote = self.id
        self._role = Role.CANDIDATE

    def _become_leader(self) -> None:
        invariant(self._role == Role.CANDIDATE, "only a candidate can become leader")
        self._reset(self._term)
        self._role = Role.LEADER
        self._leader_id = self.id
        last = self.log.last_index()
        for node_id in self._voters | self._learners:
            self._progress[node_id] = self._new_progress(node_id, last + 1)
        # Every change still in the log is uncommitted as far as we know (§4.1), and any
        # member may wait for anything in it (proposals it forwarded to an earlier leader).
        self._pending_conf_index = last
        self._commit_wanted_by_all = last + 1
        # §5.4.2 / §8: an empty entry of our term lets us commit everything before it.
        self._append_entries([Entry(term=self._term, index=last + 1)])

    def _new_progress(self, node_id: int, next_index: int) -> Progress:
        pr = Progress(next=next_index, max_inflight=self.config.max_inflight_messages)
        pr.is_learner = node_id in self._learners
        if node_id == self.id:
            pr.match = self.log.stable_index()
            pr.recent_active = True
        return pr

    # ------------------------------------------------------------------ elections

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._promotable() and self._election_elapsed >= self._randomized_election_timeout:
            self._election_elapsed = 0
            self._hup(transfer=False)

    def _hup(self, transfer: bool) -> None:
        if self._role == Role.LEADER or not self._promotable():
            return
        self._campaign(pre_vote=self.config.pre_vote and not transfer, transfer=transfer)

    def _campaign(self, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._become_pre_candidate()
            vote_type, vote_term = MessageType.PRE_VOTE, self._term + 1
        else:
            self._become_candidate()
            vote_type, vote_term = MessageType.VOTE, self._term
        self._votes[self.id] = True
        if quorum.vote_result(self._voters, self._votes) == quorum.VoteResult.WON:
            if pre_vote:
                self._campaign(pre_vote=False, transfer=transfer)
            else:
                self._become_leader()
            return
        last_index = self.log.last_index()
        last_term = self.log.last_term()
        context = CAMPAIGN_TRANSFER if transfer else b""
        for voter in sorted(self._voters):
            if voter != self.id:
                self._send(
                    vote_type, voter, term=vote_term, index=last_index, log_term=last_term,
                    context=context,
                )

    def _in_lease(self) -> bool:
        """§4.2.3 / §9.6: a node that heard from a leader recently ignores (pre-)votes."""
        return (
            self.config.check_quorum
            and self._leader_id != NO_NODE
            and self._election_elapsed < self.config.election_timeout_ticks
        )

    def _handle_vote_request(self, message: Message) -> None:
        pre_vote = message.type == MessageType.PRE_VOTE
        can_vote = (
            self._vote == message.from_id
            or (self._vote == NO_NODE and self._leader_id == NO_NODE)
            or (pre_vote and message.term > self._term)
        )
        response = MessageType.PRE_VOTE_RESPONSE if pre_vote else MessageType.VOTE_RESPONSE
        # §5.4.1: grant only to a candidate whose log is at least as up to date as ours.
        if can_vote and self.log.is_up_to_date(message.index, message.log_term):
            self._send(response, message.from_id, term=message.term)
            if not pre_vote:
                self._election_elapsed = 0
                self._vote = message.from_id
        else:
            self._send(response, message.from_id, reject=True)

    def _handle_vote_response(self, message: Message) -> None:
        expected = (
            MessageType.PRE_VOTE_RESPONSE if self._role == Role.PRE_CANDIDATE
            else MessageType.VOTE_RESPONSE
        )
        if message.type != expected:
            return
        self._votes[message.from_id] = not message.reject
        result = quorum.vote_result(self._voters, self._votes)
        if result == quorum.VoteResult.WON:
            if self._role == Role.PRE_CANDIDATE:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
        elif result == quorum.VoteResult.LOST:
            self._become_follower(self._term, NO_NODE)

    # ------------------------------------------------------------------ step

    def step(self, message: Message) -> None:
        """Feed one message from the network; stale or malformed messages are ignored."""
        if not self._acceptable(message):
            return
        term = message.term
        if term > self._term:
            is_vote = message.type in (MessageType.VOTE, MessageType.PRE_VOTE)
            if is_vote and message.context != CAMPAIGN_TRANSFER and self._in_lease():
                return
            if message.type == MessageType.PRE_VOTE or (
                message.type == MessageType.PRE_VOTE_RESPONSE and not message.reject
            ):
                pass  # pre-vote traffic carries a future term without raising ours
            elif message.type in _FROM_LEADER:
                self._become_follower(term, message.from_id)
            else:
                self._adopt_term(term)
        elif 0 < term < self._term:
            self._answer_stale(message)
            return
        if message.type in (MessageType.VOTE, MessageType.PRE_VOTE):
            self._handle_vote_request(message)
        elif self._role == Role.LEADER:
            self._step_leader(message)
        elif self._role in (Role.PRE_CANDIDATE, Role.CANDIDATE):
            self._step_candidate(message)
        else:
            self._step_follower(message)

    def _acceptable(self, message: Message) -> bool:
        if not isinstance(message, Message):
            raise TypeError(f"step() takes a Message, not {type(message).__name__}")
        if message.to != self.id or message.from_id <= 0 or message.from_id == self.id:
            return False
        if message.type not in _KNOWN_TYPES:
            return False
        if message.type in _FORWARDED:
            if message.term != 0:
                return False
        elif message.term == 0 and message.type != MessageType.PRE_VOTE_RESPONSE:
            return False  # only a pre-vote rejection may come from a node still at term 0
        if min(message.term, message.index, message.log_term, message.commit) < 0:
            return False
        if not isinstance(message.context, bytes) or not isinstance(message.chunk_data, bytes):
            return False
        meta = message.snapshot_meta
        if meta is not None and not (
            isinstance(meta, SnapshotMeta) and isinstance(meta.conf_state, ConfState)
            and meta.index >= 0 and meta.term >= 0 and message.chunk_offset >= 0
        ):
            return False
        return not message.entries or self._entries_well_formed(message)

    @staticmethod
    def _entries_well_formed(message: Message) -> bool:
        previous_term = message.log_term
        expected_index = message.index + 1
        check_order = message.type == MessageType.APPEND
        for entry in message.entries:
            if not isinstance(entry, Entry) or not isinstance(entry.data, bytes):
                return False
            if entry.type not in _KNOWN_ENTRY_TYPES:
                return False
            if check_order:
                if entry.index != expected_index or not previous_term <= entry.term <= message.term:
                    return False
                expected_index += 1
                previous_term = entry.term
        return True

    def _answer_stale(self, message: Message) -> None:
        """A message from an older term: tell a stale leader or pre-candidate about our term."""
        if message.type in (MessageType.APPEND, MessageType.HEARTBEAT):
            if self.config.check_quorum or self.config.pre_vote:
                # Without this, a leader partitioned away would never learn it was deposed
                # (its followers ignore it; with pre-vote nobody raises its term).
                self._send(MessageType.APPEND_RESPONSE, message.from_id)
        elif message.type == MessageType.PRE_VOTE:
            self._send(MessageType.PRE_VOTE_RESPONSE, message.from_id, reject=True)

    def _step_candidate(self, message: Message) -> None:
        kind = message.type
        if kind in _FROM_LEADER:
            self._become_follower(message.term, message.from_id)
            self._step_follower(message)
        elif kind in (MessageType.VOTE_RESPONSE, MessageType.PRE_VOTE_RESPONSE):
            self._handle_vote_response(message)

    def _step_follower(self, message: Message) -> None:
        kind = message.type
        if kind in _FROM_LEADER:
            self._election_elapsed = 0
            self._leader_id = message.from_id
            if kind == MessageType.APPEND:
                self._handle_append(message)
            elif kind == MessageType.HEARTBEAT:
                self._handle_heartbeat(message)
            else:
                self._handle_snapshot_chunk(message)
        elif kind == MessageType.TIMEOUT_NOW:
            self._hup(transfer=True)
        elif kind == MessageType.READ_INDEX_RESPONSE:
            self._read_states.append(ReadState(index=message.index, context=message.context))

    def _step_leader(self, message: Message) -> None:
        kind = message.type
        if kind == MessageType.PROPOSE:
            self._propose_forwarded(message)
            return
        if kind == MessageType.READ_INDEX:
            if message.context:
                self._leader_read_index(message.context, message.from_id)
            return
        if kind == MessageType.TRANSFER_LEADER:
            with contextlib.suppress(ProposalDropped):  # the requester may ask again
                self._transfer_to(message.index)
            return
        pr = self._progress.get(message.from_id)
        if pr is None:
            return
        if kind == MessageType.APPEND_RESPONSE:
            self._handle_append_response(message, pr)
        elif kind == MessageType.HEARTBEAT_RESPONSE:
            self._handle_heartbeat_response(message, pr)
        elif kind == MessageType.SNAPSHOT_RESPONSE:
            self._handle_snapshot_response(message, pr)

    # ------------------------------------------------------------------ proposals

    def _propose(self, kind: EntryType, data: bytes) -> None:
        if self._role == Role.LEADER:
            self._leader_propose(kind, data)
            return
        self._check_forwarding()
        self._forwarding.append(make_entry(0, 0, kind, data))

    def _flush_forwarding(self) -> None:
        """Send the proposals made since the last Ready to the leader, as few PROPOSE
        messages as the size limit allows: one per proposal cost the follower and the
        leader a message each (profiled). A leader lost meanwhile drops them, as it drops
        a forwarded message: the proposers time out and may retry."""
        if not self._forwarding:
            return
        pending, self._forwarding = self._forwarding, []
        if self._leader_id == NO_NODE or self._role != Role.FOLLOWER:
            return
        limit, size = self.config.max_size_per_message_bytes, 0
        batch: list[Entry] = []
        for entry in pending:
            if batch and size + len(entry.data) > limit:
                self._send(MessageType.PROPOSE, self._leader_id, term=0, entries=tuple(batch))
                batch, size = [], 0
            batch.append(entry)
            size += len(entry.data)
        self._send(MessageType.PROPOSE, self._leader_id, term=0, entries=tuple(batch))

    def _forward(self, kind: MessageType, **fields: Unpack[_Fields]) -> None:
        """Send a local request to the leader (term 0), or raise when that is impossible."""
        self._check_forwarding()
        self._send(kind, self._leader_id, term=0, **fields)

    def _check_forwarding(self) -> None:
        if self._leader_id == NO_NODE or self._role != Role.FOLLOWER:
            raise ProposalDropped(ProposalDropped.NO_LEADER)
        if not self.config.forward_proposals:
            raise NotLeader(self._leader_id)

    def _leader_propose(self, kind: EntryType, data: bytes,
                        forwarded_by: Progress | None = None) -> None:
        if self._lead_transferee != NO_NODE:
            raise ProposalDropped(ProposalDropped.TRANSFER_IN_PROGRESS, f"to {self._lead_transferee}")
        if self.id not in self._progress:
            raise ProposalDropped(ProposalDropped.NOT_MEMBER)
        self._check_entry_size(data)  # a forwarded proposal is checked here
        size = len(data)
        pending = self._uncommitted_bytes
        if pending and pending + size > self.config.max_uncommitted_bytes:
            raise ProposalDropped(
                ProposalDropped.TOO_MUCH_UNCOMMITTED, f"{self._uncommitted_bytes} bytes pending"
            )
        index = self.log.last_index() + 1
        entry = make_entry(self._term, index, kind, data)
        if size:
            self._uncommitted.append((index, size))
            self._uncommitted_bytes += size
        if kind == EntryType.NORMAL:
            # The hot path: appending past the last index truncates nothing and
            # changes no configuration, so skip _append_to_log's bookkeeping.
            self.log.append((entry,))
            self._broadcast_pending = True
            if forwarded_by is not None:
                forwarded_by.commit_wanted = index
            else:
                self._commit_wanted_by_all = index  # the leader's own work (assignments...)
            return
        self._check_conf_proposal(decode_conf_change(data))
        self._pending_conf_index = index
        self._append_entries([entry])
        self._commit_wanted_by_all = index  # a configuration: every member is concerned

    def _propose_forwarded(self, message: Message) -> None:
        """Append a follower's proposals; the follower waits to be told they committed
        (its clients are answered once it applies them). One from a node that is not a
        member (no Progress) counts as the leader's own."""
        forwarder = self._progress.get(message.from_id)
        for entry in message.entries:
            with contextlib.suppress(ProposalDropped):  # dropped silently; the client retries
                self._leader_propose(entry.type, entry.data, forwarder)

    def _check_conf_proposal(self, change: ConfChange) -> None:
        if not self._committed_in_term():
            raise ProposalDropped(ProposalDropped.TERM_NOT_COMMITTED)
        if self._pending_conf_index > self.log.committed:
            raise ProposalDropped(ProposalDropped.CONF_CHANGE_PENDING, f"at {self._pending_conf_index}")
        check_conf_change(self._conf, change)
        if change.type == ConfChangeType.ADD_VOTER and change.node_id in self._learners:
            self._check_promotion(change.node_id)

    def _check_promotion(self, learner_id: int) -> None:
        """A learner becomes a voter only if it answers and holds the committed log.

        Otherwise the new voter would raise the quorum without adding a working
        member: a cluster that then loses one original voter could commit nothing.
        """
        pr = self._progress[learner_id]
        silent_ticks = self._ticks - pr.last_response_tick
        if pr.last_response_tick < 0 or silent_ticks > self.config.election_timeout_ticks:
            heard = ("has never answered the leader" if pr.last_response_tick < 0
                     else f"last answered the leader {silent_ticks} ticks ago")
            raise PromotionRefused(
                PromotionCheck.RECENT_CONTACT,
                f"learner {learner_id} {heard} (must be within "
                f"{self.config.election_timeout_ticks} ticks)",
            )
        lag = self.log.committed - pr.match
        if lag > self.config.learner_lag_entries_max:
            raise PromotionRefused(
                PromotionCheck.CAUGHT_UP,
                f"learner {learner_id} is {lag} entries behind the commit index "
                f"{self.log.committed} (max {self.config.learner_lag_entries_max})",
            )

    def _committed_in_term(self) -> bool:
        try:
            return self.log.term(self.log.committed) == self._term
        except (Compacted, Unavailable):
            return False

    def _append_entries(self, entries: list[Entry]) -> None:
        """Leader: append to the own log; APPENDs go out at the next ready() (batched)."""
        self._append_to_log(entries)
        self._broadcast_pending = True

    def _append_to_log(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append (truncating a conflicting suffix) and apply any configuration it carries."""
        self.log.append(entries)
        first = entries[0].index
        history = self._conf_history
        changed = False
        while len(history) > 1 and history[-1][0] >= first:
            history.pop()  # §4.1: a truncated change is undone
            changed = True
        if any(entry.type == EntryType.CONF_CHANGE for entry in entries):
            changed = self._record_conf_entries(entries) or changed
        if changed:
            self._apply_config()

    def _configured(self) -> bool:
        """False for a blank joiner that has not yet learned the founding configuration.

        Every real configuration has a voter (the last one cannot be removed).
        """
        return bool(self._conf_history[0][1].voters)

    def _rebuild_conf_history(self, base_index: int, base: ConfState) -> None:
        """Take `base` as the configuration at `base_index` and replay the log after it."""
        self._conf_history = [(base_index, base)]
        self._replay_conf_changes(max(base_index + 1, self.log.first_index()))
        self._apply_config()

    def _record_conf_entries(self, entries: list[Entry] | tuple[Entry, ...]) -> bool:
        if not self._configured():
            return False  # replayed once the founding configuration is known
        recorded = False
        for entry in entries:
            if entry.type != EntryType.CONF_CHANGE:
                continue
            try:
                change = decode_conf_change(entry.data)
            except ProposalDropped:
                continue  # a malformed change in the log is a no-op on every node alike
            state = apply_conf_change(self._conf_history[-1][1], change)
            self._conf_history.append((entry.index, state))
            recorded = True
        return recorded

    def _conf_at(self, index: int) -> ConfState:
        for entry_index, state in reversed(self._conf_history):
            if entry_index <= index:
                return state
        return self._conf_history[0][1]

    def _prune_conf_history(self, index: int) -> None:
        base = self._conf_at(index)
        kept = [item for item in self._conf_history if item[0] > index]
        self._conf_history = [(index, base), *kept]

    def _apply_config(self) -> None:
        """The newest configuration in the log is now in force (§4.1)."""
        self._conf = self._conf_history[-1][1]
        self._voters = frozenset(self._conf.voters)
        self._learners = frozenset(self._conf.learners)
        if self._role != Role.LEADER:
            return
        members = self._voters | self._learners
        for node_id in [node for node in self._progress if node not in members]:
            del self._progress[node_id]
        last = self.log.last_index()
        for node_id in members:
            pr = self._progress.get(node_id)
            if pr is None:
                self._progress[node_id] = self._new_progress(node_id, last + 1)
            else:
                pr.is_learner = node_id in self._learners
        if self._lead_transferee not in self._voters:
            self._lead_transferee = NO_NODE
        self._maybe_commit()

    # ------------------------------------------------------------------ replication (leader)

    def _flush_broadcast(self) -> None:
        if not self._broadcast_pending:
            return
        self._broadcast_pending = False
        commit_moved, self._commit_broadcast_pending = self._commit_broadcast_pending, False
        for node_id, pr in self._progress.items():
            if node_id == self.id or self._learner_batch_waits(pr):
                continue
            sent = False
            while self._send_append(node_id, pr, send_if_empty=False):
                sent = True
            if commit_moved and not sent and self._tells_commit_now(pr):
                self._send_append(node_id, pr, commit_only=True)

    def _tells_commit_now(self, pr: Progress) -> bool:
        """Whether a new commit index goes to this member at once, in an empty APPEND of
        its own, rather than with its next entries or heartbeat (heartbeat_ticks later).

        At once when something there waits for it (`Progress.waits_for_commit`: proposals
        it forwarded, the leader's own proposals) or when the empty APPEND is its probe;
        a member's reads are told by their heartbeat round (`_answer_read`). A replicating
        member with nothing waiting learns it later: through a follower at 64 writes in
        flight the commit-only APPENDs to the other follower and its answers were half of
        its traffic (docs/benchmarks.md, "Session 8"), and nothing there waited for them."""
        if pr.state != ProgressState.REPLICATE:
            return True  # a probe (a learner's answer is what a promotion is judged by)
        return pr.waits_for_commit(self.log.committed, self._commit_wanted_by_all)

    def _learner_batch_waits(self, pr: Progress) -> bool:
        """Whether a replicating learner's entries wait for a fuller batch or the next tick.

        Each APPEND to a learner and its answer cost the leader as much as a voter's, for
        nothing a commit waits on: sent per Ready, 24 learners cut the commits/s of the cost
        model to 0.73x of none. A learner gets its entries once a quarter of
        `learner_lag_entries_max` wait (so it never lags by enough to refuse a promotion for
        it) or at the next tick (`_send_learner_batches`), whichever comes first. Its answers
        wait the same way: a learner's acknowledgement no longer sends it what arrived since
        its last batch (that made one APPEND per round trip: 0.77x in the same model with 5
        voters, 0.80-0.83x without it)."""
        if not (pr.is_learner and pr.state == ProgressState.REPLICATE):
            return False
        waiting = self.log.last_index() - pr.next + 1
        return waiting < max(1, self.config.learner_lag_entries_max // 4)

    def _send_learner_batches(self) -> None:
        """Each tick, what replicating learners were held back for (see above)."""
        for node_id, pr in self._progress.items():
            if node_id != self.id and pr.is_learner and pr.state == ProgressState.REPLICATE:
                while self._send_append(node_id, pr, send_if_empty=False):
                    pass

    def _send_append(self, to: int, pr: Progress, send_if_empty: bool = True,
                     commit_only: bool = False) -> bool:
        """Send the entries `pr` is missing (or a snapshot); returns whether anything was sent.

        `commit_only`: the caller sends it for the commit index alone, so an empty APPEND
        to a replicating member is marked COMMIT_ONLY and, accepted, goes unanswered:
        nothing here needs that answer (its entries' own answers free the window, move
        match and the transfer; heartbeats keep `recent_active` and recover lost ones)."""
        if pr.is_paused():
            return False
        previous = pr.next - 1
        try:
            previous_term = self.log.term(previous)
            entries: list[Entry] = []
            if pr.next <= self.log.last_index():
                entries = self.log.entries_from(
                    pr.next, self.config.max_size_per_message_bytes,
                    self.config.max_entries_per_message,
                )
        except Compacted:
            return self._send_snapshot(to, pr)
        if not entries and not send_if_empty:
            return False
        founding = None
        if previous == 0 and self._conf_history[0][0] == 0:
            # A joiner that starts with an empty configuration learns the founding one
            # here, so replaying the log's changes gives it the right configuration.
            founding = SnapshotMeta(conf_state=self._conf_history[0][1])
        last = entries[-1].index if entries else previous
        unanswered = commit_only and not entries and pr.state == ProgressState.REPLICATE
        self._send(
            MessageType.APPEND, to, index=previous, log_term=previous_term,
            entries=tuple(entries), commit=self.log.committed, snapshot_meta=founding,
            context=COMMIT_ONLY if unanswered else b"",
        )
        pr.told_commit(min(self.log.committed, last))
        pr.sent_entries(last, len(entries))
        return True

    def _handle_append_response(self, message: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.last_response_tick = self._ticks
        if message.context == UNCONFIGURED:
            self._send_configuration(message.from_id, pr)
        if message.reject:
            self._handle_append_reject(message, pr)
            return
        if message.index > self.log.last_index():
            return  # acknowledges entries we never had: garbage
        was_paused = pr.is_paused()
        updated = pr.maybe_update(message.index)
        send = pr.snapshot_send
        # A snapshot is done once the follower has its index, even when that answer moves
        # no match (e.g. a snapshot sent for the configuration to a follower already past it).
        snapshot_done = pr.state == ProgressState.SNAPSHOT and (
            send is None or pr.match >= send.snapshot.meta.index
        )
        probe_answered = pr.match == message.index and pr.state == ProgressState.PROBE
        if updated or snapshot_done or probe_answered:
            if pr.state == ProgressState.REPLICATE:
                pr.inflights.free_to(message.index)
            elif pr.state == ProgressState.PROBE or snapshot_done:
                pr.become_replicate()
            committed = self._maybe_commit()
            if self._role != Role.LEADER:
                return  # the commit completed our own removal: we stepped down
            sent = False
            while not self._learner_batch_waits(pr) and self._send_append(
                    message.from_id, pr, send_if_empty=False):
                sent = True
            if was_paused and not committed and not sent and self._tells_commit_now(pr):
                # it missed the commit index while paused
                self._send_append(message.from_id, pr, commit_only=True)
        if message.from_id == self._lead_transferee and pr.match == self.log.last_index():
            self._send(MessageType.TIMEOUT_NOW, message.from_id)

    def _send_configuration(self, to: int, pr: Progress) -> None:
        """A blank joiner (e.g. restarted before it persisted any snapshot) needs the
        founding configuration: an empty APPEND after index 0 carries it, or, once the
        log is compacted, a snapshot does."""
        base_index, base = self._conf_history[0]
        if base_index == 0:
            self._send(
                MessageType.APPEND, to, index=0, log_term=0, commit=min(pr.match, self.log.committed),
                snapshot_meta=SnapshotMeta(conf_state=base),
            )
        elif pr.state != ProgressState.SNAPSHOT:
            self._send_snapshot(to, pr)

    def _handle_append_reject(self, message: Message, pr: Progress) -> None:
        """§5.3 with fast back-tracking: skip a whole conflicting term per round trip."""
        next_probe = message.reject_hint
        if message.reject_term > 0:
            next_probe, _ = self.log.find_conflict_by_term(message.reject_hint, message.reject_term)
        acknowledged = pr.match
        outcome = pr.maybe_decrease_to(message.index, next_probe)
        if outcome is Decrease.STALE:
            return
        if outcome is Decrease.LOST:
            self._report_lost_entries(message.from_id, pr, acknowledged)
        if pr.state == ProgressState.REPLICATE:
            pr.become_probe()
        self._send_append(message.from_id, pr)

    def _report_lost_entries(self, node_id: int, pr: Progress, acknowledged: int) -> None:
        self._lost_entries.append(LostEntries(
            node_id=node_id, first_index=pr.next, last_index=acknowledged, term=self._term,
        ))

    def _maybe_commit(self) -> bool:
        """§5.4.2: commit the quorum's match index only if it is an entry of our term."""
        log = self.log
        index = quorum.committed_index(
            self._voters, {node: pr.match for node, pr in self._progress.items()}
        )
        if index <= log.committed or log.term(index) != self._term:
            return False
        log.commit_to(index)
        uncommitted = self._uncommitted
        while uncommitted and uncommitted[0][0] <= index:
            self._uncommitted_bytes -= uncommitted.popleft()[1]
        self._broadcast_pending = True
        self._commit_broadcast_pending = True
        self._after_commit()
        return True

    def _after_commit(self) -> None:
        if self._reads_waiting_for_commit and self._committed_in_term():
            waiting, self._reads_waiting_for_commit = self._reads_waiting_for_commit, []
            for context, from_id in waiting:
                self._leader_read_index(context, from_id)
        if self.id not in self._voters and self._conf_history[-1][0] <= self.log.committed:
            self._step_down_removed()

    def _step_down_removed(self) -> None:
        """§4.2.2: a leader removed from the configuration steps down once that is committed."""
        last = self.log.last_index()
        successor = next(
            (node for node in sorted(self._voters)
             if node in self._progress and self._progress[node].match == last),
            NO_NODE,
        )
        if successor != NO_NODE:
            self._send(MessageType.TIMEOUT_NOW, successor)  # spare the cluster an election timeout
        self._become_follower(self._term, NO_NODE)

    def _tick_heartbeat(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._election_elapsed >= self.config.election_timeout_ticks:
            self._election_elapsed = 0
            if self.config.check_quorum and not self._quorum_active():
                self._become_follower(self._term, NO_NODE)  # §6.2: cannot reach a quorum
                return
            self._lead_transferee = NO_NODE  # a transfer that did not finish in time is aborted
        self._send_learner_batches()
        if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat(self._read_only.last_pending_context() or b"")
            self._resend_stalled_snapshots()

    def _quorum_active(self) -> bool:
        active = {self.id}
        for node_id, pr in self._progress.items():
            if pr.recent_active:
                active.add(node_id)
            if node_id != self.id:
                pr.recent_active = False
        return quorum.has_quorum(self._voters, active)

    def _broadcast_heartbeat(self, context: bytes) -> None:
        committed = self.log.committed
        for node_id, pr in self._progress.items():
            if node_id != self.id:
                commit = min(pr.match, committed)
                self._send(MessageType.HEARTBEAT, node_id, commit=commit, context=context)
                pr.told_commit(commit)

    def _handle_heartbeat_response(self, message: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.last_response_tick = self._ticks
        if message.reject and message.index < pr.match:
            # The member's log ends before entries it acknowledged: its disk lost them.
            acknowledged = pr.match
            pr.lose_match(message.index)
            self._report_lost_entries(message.from_id, pr, acknowledged)
        pr.probe_sent = False
        if pr.state == ProgressState.REPLICATE and pr.inflights.full():
            # The follower is alive but the window is stuck (responses lost, or slow):
            # let one more APPEND out; if earlier ones were lost it will reveal the gap.
            pr.inflights.free_first_one()
        if pr.match < self.log.last_index():
            self._send_append(message.from_id, pr)
        if message.context:
            acks = self._read_only.receive_ack(message.from_id, message.context)
            if acks is not None and quorum.has_quorum(self._voters, acks):
                for request in self._read_only.release(message.context):
                    self._answer_read(request)

    # ------------------------------------------------------------------ follower log handling

    def _handle_append(self, message: Message) -> None:
        log = self.log
        if message.index == 0 and message.snapshot_meta is not None:
            self._adopt_founding_configuration(message.snapshot_meta.conf_state)
        if message.index < log.committed:
            self._append_response(message.from_id, index=log.committed)
            return
        if log.match_term(message.index, message.log_term):
            entries = message.entries
            if entries:
                conflict = log.find_conflict(entries)
                if conflict:
                    invariant(conflict > log.committed, f"conflict at committed index {conflict}")
                    self._append_to_log(entries[conflict - message.index - 1 :])
            last_new = message.index + len(entries)
            log.commit_to(min(message.commit, last_new))
            if not (message.context == COMMIT_ONLY and not entries and self._configured()):
                self._append_response(message.from_id, index=last_new)
            return
        hint_index = min(message.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, message.log_term)
        self._append_response(
            message.from_id, index=message.index, reject=True, reject_hint=hint_index,
            reject_term=hint_term,
        )

    def _adopt_founding_configuration(self, conf_state: ConfState) -> None:
        """A blank joiner takes the cluster's founding configuration (the one at index 0)."""
        if not self._configured() and conf_state.voters and self.log.first_index() == 1:
            self._rebuild_conf_history(0, conf_state)

    def _append_response(self, to: int, **fields: Unpack[_Reply]) -> None:
        """APPEND_RESPONSE; a blank joiner flags itself so the leader sends the configuration."""
        context = UNCONFIGURED if not self._configured() else b""
        self._send(MessageType.APPEND_RESPONSE, to, context=context, **fields)

    def _handle_heartbeat(self, message: Message) -> None:
        """Take the commit index; say so when the leader believes we hold more than we do.

        A heartbeat's commit is at most what this node acknowledged, and entries it
        acknowledged in a term are never truncated within it: a commit past our last
        index proves the disk lost them (etcd panics here: "tocommit is out of range").
        We answer with our last index instead, so the leader re-sends them.
        """
        last_index = self.log.last_index()
        self.log.commit_to(min(message.commit, last_index))
        if not self._configured():
            self._append_response(message.from_id, index=self.log.committed)  # asks for it
        self._send(
            MessageType.HEARTBEAT_RESPONSE, message.from_id, context=message.context,
            reject=message.commit > last_index, index=last_index,
        )

    # ------------------------------------------------------------------ snapshots

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        try:
            snapshot = self.log.storage.snapshot()
        except Unavailable:
            return False  # the application is still producing it; try again later
        invariant(snapshot.meta.index > 0, "the log is compacted but storage has no snapshot")
        pr.become_snapshot(snapshot)
        self._send_snapshot_chunks(to, pr)
        return True

    def _send_snapshot_chunks(self, to: int, pr: Progress) -> None:
        """Send chunks from `sent_offset` while fewer than max_inflight_messages are unacked."""
        send = pr.snapshot_send
        if send is None:
            return
        data = send.snapshot.data
        total = len(data)
        chunk_bytes = self.config.snapshot_chunk_bytes
        window_bytes = chunk_bytes * self.config.max_inflight_messages
        while send.sent_offset <= total and send.sent_offset - send.acked_offset < window_bytes:
            start = send.sent_offset
            end = min(start + chunk_bytes, total)
            done = end == total
            self._send(
                MessageType.SNAPSHOT, to, snapshot_meta=send.snapshot.meta, chunk_offset=start,
                chunk_data=data[start:end], chunk_done=done, commit=self.log.committed,
            )
            send.sent_offset = total + 1 if done else end  # past the end: all sent

    def _handle_snapshot_response(self, message: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.last_response_tick = self._ticks
        send = pr.snapshot_send
        if pr.state != ProgressState.SNAPSHOT or send is None:
            return
        if message.index != send.snapshot.meta.index:
            return
        if message.reject:
            # The follower missed a chunk: resume from what it has, not from zero. Every
            # chunk after the gap is rejected alike; rewind once per gap.
            if message.chunk_offset == send.rewound_to:
                return
            send.rewound_to = message.chunk_offset
            send.acked_offset = message.chunk_offset
            send.sent_offset = message.chunk_offset
        else:
            send.acked_offset = max(send.acked_offset, message.chunk_offset)
            send.sent_offset = max(send.sent_offset, send.acked_offset)
        self._send_snapshot_chunks(message.from_id, pr)

    def _resend_stalled_snapshots(self) -> None:
        for node_id, pr in self._progress.items():
            send = pr.snapshot_send
            if pr.state != ProgressState.SNAPSHOT or send is None:
                continue
            if send.acked_offset != send.acked_at_last_check:
                send.acked_at_last_check = send.acked_offset
                send.stalled_heartbeats = 0
                continue
            send.stalled_heartbeats += 1
            if send.stalled_heartbeats >= _STALLED_HEARTBEATS:
                send.stalled_heartbeats = 0
                send.sent_offset = send.acked_offset  # the tail was lost: send it again
                send.rewound_to = send.acked_offset
                self._send_snapshot_chunks(node_id, pr)

    def _handle_snapshot_chunk(self, message: Message) -> None:
        meta = message.snapshot_meta
        if meta is None or not isinstance(message.chunk_data, bytes):
            return
        if meta.index <= self.log.committed:
            self._snapshot_receive = None
            if not self._configured() and self.log.match_term(meta.index, meta.term):
                self._rebuild_conf_history(meta.index, meta.conf_state)
            self._append_response(message.from_id, index=self.log.committed)
            return
        receive = self._snapshot_receive
        if receive is None or receive.meta != meta or receive.from_id != message.from_id:
            if message.chunk_offset != 0:
                self._send(
                    MessageType.SNAPSHOT_RESPONSE, message.from_id, index=meta.index,
                    chunk_offset=0, reject=True,
                )
                return
            receive = self._snapshot_receive = _SnapshotReceive(meta=meta, from_id=message.from_id)
        if message.chunk_offset != receive.received:
            self._send(
                MessageType.SNAPSHOT_RESPONSE, message.from_id, index=meta.index,
                chunk_offset=receive.received, reject=message.chunk_offset > receive.received,
            )
            return
        receive.chunks.append(message.chunk_data)
        receive.received += len(message.chunk_data)
        if not message.chunk_done:
            self._send(
                MessageType.SNAPSHOT_RESPONSE, message.from_id, index=meta.index,
                chunk_offset=receive.received,
            )
            return
        self._snapshot_receive = None
        snapshot = Snapshot(meta=meta, data=b"".join(receive.chunks))
        index = self.log.last_index() if self._restore(snapshot) else self.log.committed
        self._append_response(message.from_id, index=index)

    def _restore(self, snapshot: Snapshot) -> bool:
        """Install a leader's snapshot; False when the log already holds its index."""
        meta = snapshot.meta
        if meta.index <= self.log.committed:
            return False
        if self.log.match_term(meta.index, meta.term):
            self.log.commit_to(meta.index)  # our log already has it: just fast-forward
            return False
        self.log.restore(snapshot)
        self._conf_history = [(meta.index, meta.conf_state)]
        self._apply_config()
        return True

    # ------------------------------------------------------------------ ReadIndex

    def _leader_read_index(self, context: bytes, from_id: int) -> None:
        """§6.4: note the commit index, confirm leadership with a heartbeat round, then answer."""
        if not self._committed_in_term():
            self._reads_waiting_for_commit.append((context, from_id))
            return
        index = self.log.committed
        if self._voters == {self.id}:
            self._answer_read(ReadRequest(index=index, context=context, from_id=from_id))
            return
        ack_context = self._read_only.add_request(index, context, from_id, self.id)
        self._broadcast_heartbeat(ack_context)

    def _answer_read(self, request: ReadRequest) -> None:
        """Give the read its index. A member asking for it needs no commit-only APPEND:
        the read's heartbeat told it min(match, commit), and a member whose match was
        behind gets the rest from the APPEND its heartbeat answer triggers."""
        if request.from_id == self.id:
            self._read_states.append(ReadState(index=request.index, context=request.context))
        else:
            self._send(
                MessageType.READ_INDEX_RESPONSE, request.from_id, index=request.index,
                context=request.context,
            )

    # ------------------------------------------------------------------ leadership transfer

    def _transfer_to(self, target_id: int) -> None:
        """§3.10: stop proposals, bring the target up to date, then tell it to campaign."""
        if target_id not in self._voters:
            raise ProposalDropped(ProposalDropped.NOT_A_VOTER, f"node {target_id}")
        if target_id == self.id or target_id == self._lead_transferee:
            return
        self._lead_transferee = target_id
        self._election_elapsed = 0  # the transfer aborts after one election timeout
        pr = self._progress[target_id]
        if pr.match == self.log.last_index():
            self._send(MessageType.TIMEOUT_NOW, target_id)
        else:
            self._send_append(target_id, pr)

    # ------------------------------------------------------------------ output

    def _send(self, kind: MessageType, to: int, term: int | None = None,
              **fields: Unpack[_Fields]) -> None:
        self._messages.append(
            Message(
                type=kind, from_id=self.id, to=to,
                term=self._term if term is None else term, **fields,
            )
        )
