"""Raft safety checkers, fed by the simulator after every step of every node.

Each rule of the Raft paper's Figure 3 has a check here: election safety (one leader
per term), log matching, leader completeness, state machine safety, plus what a
crash must not undo (committed entries, persisted term, vote and commit), and the
protocol rules whose break the end state may hide: one membership change at a time,
appends acknowledged only to the term's leader, ReadIndex answers that cover every
earlier commit. The first broken rule raises `SafetyViolation`, which ends the
simulated run with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from warmd.raft.types import NO_NODE, Entry, HardState, Role

# A node's log term at an index: None when compacted away (a snapshot covers it),
# 0 when the log does not reach that index.
TermLookup = Callable[[int], "int | None"]


class SafetyViolation(AssertionError):
    """A Raft safety property failed; `rule` names it, the message says where."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(f"{rule}: {detail}")
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True, slots=True)
class NodeView:
    """What the checker reads from one live node after a step."""

    node_id: int
    term: int
    role: Role
    commit: int
    lifetime: int  # bumped by every restart: volatile state may start over


@dataclass(slots=True)
class _NodeRecord:
    lifetime: int = -1
    term: int = 0
    commit: int = 0
    persisted: HardState = field(default_factory=HardState)
    last_applied: int = 0
    led_term: int = -1  # the last term whose leadership was checked for completeness
    acked: tuple[int, int] = (0, 0)  # (term, index): the highest APPEND it acknowledged


class SafetyChecker:
    """Accumulates what every node persisted and applied, and checks each new fact."""

    def __init__(self) -> None:
        self.now_ticks = 0
        self.leaders_by_term: dict[int, int] = {}
        # (index, term) -> (type, data, previous entry's term): the log matching witness.
        self._positions: dict[tuple[int, int], tuple[int, bytes, int | None]] = {}
        self.committed: dict[int, Entry] = {}  # index -> the entry applied there
        self.committed_high = 0  # the highest index known committed
        # index -> a term at or after the one in which the entry was committed (the
        # applier's term): leaders of later terms must hold the entry.
        self.commit_term_bound: dict[int, int] = {}
        self._nodes: dict[int, _NodeRecord] = {}
        self.checks = 0

    def _record(self, node_id: int) -> _NodeRecord:
        record = self._nodes.get(node_id)
        if record is None:
            record = self._nodes[node_id] = _NodeRecord()
        return record

    def _fail(self, rule: str, detail: str) -> None:
        raise SafetyViolation(rule, f"{detail} (tick {self.now_ticks})")

    # -- persistence ------------------------------------------------------------

    def observe_hard_state(self, node_id: int, hard_state: HardState) -> None:
        """Persisted term and commit never go back; one persisted vote per term."""
        self.checks += 1
        before = self._record(node_id).persisted
        if hard_state.term < before.term:
            self._fail("term regressed", f"node {node_id} persisted term "
                       f"{hard_state.term} after {before.term}")
        if hard_state.commit < before.commit:
            self._fail("commit regressed", f"node {node_id} persisted commit "
                       f"{hard_state.commit} after {before.commit}")
        if (hard_state.term == before.term and before.vote != NO_NODE
                and hard_state.vote != before.vote):
            self._fail("double vote", f"node {node_id} voted for {before.vote} and then "
                       f"{hard_state.vote} in term {hard_state.term}")
        self._record(node_id).persisted = hard_state

    def observe_acknowledged(self, node_id: int, term: int, index: int, to: int) -> None:
        """The node told `to`, which must be the leader of `term`, that it holds the log up
        to `index` (Figure 2, AppendEntries 1: an append from an older term is refused).
        A leader that died in the Ready that elected it was never seen: not checked then."""
        leader = self.leaders_by_term.get(term, to)
        if index > 0 and leader != to:
            self._fail("acknowledged a stale leader", f"node {node_id} acknowledged index "
                       f"{index} to node {to} in term {term}, led by {leader}")
        record = self._record(node_id)
        if (term, index) > record.acked:
            record.acked = (term, index)

    def observe_log_end(self, node_id: int, term: int, last_index: int,
                        first_written: int = 0) -> None:
        """§5.3: within a term, a node never drops nor rewrites an entry it acknowledged.

        Only a leader of a later term may truncate it, and the node adopts that term
        first. Call it after every write to the node's log; `term` is the node's term and
        `first_written` the first index of the entries just written (0: none written).
        """
        acked_term, acked_index = self._record(node_id).acked
        if acked_term != term:
            return
        if last_index < acked_index:
            self._fail("acknowledged entry dropped", f"node {node_id} acknowledged index "
                       f"{acked_index} in term {term}, and its log now ends at {last_index}")
        if 0 < first_written <= acked_index:
            self._fail("acknowledged entry overwritten", f"node {node_id} acknowledged index "
                       f"{acked_index} in term {term}, then rewrote its log from {first_written}")

    def observe_pre_candidate(self, node_id: int, hard_state: HardState | None,
                              term_heard: int = 0) -> None:
        """§9.6: a pre-candidate changes neither term nor vote.

        Call it, before observe_hard_state, for a Ready whose soft state is PRE_CANDIDATE.
        `term_heard` is the highest term the node was sent in a message that may raise
        its term: in one step a node may adopt such a term (clearing its vote; its
        election clock keeps running, Raft Figure 2) and then time out into pre-vote,
        so that change is allowed; any other is the pre-vote's.
        """
        before = self._record(node_id).persisted
        if hard_state is None or (hard_state.term, hard_state.vote) == (before.term, before.vote):
            return
        if hard_state.vote == NO_NODE and before.term < hard_state.term <= term_heard:
            return
        self._fail("pre-vote changed hard state", f"node {node_id} became a pre-candidate "
                   f"with term {hard_state.term} vote {hard_state.vote} (was term "
                   f"{before.term} vote {before.vote}; the highest term it heard {term_heard})")

    def observe_promotion(self, leader_id: int, learner_id: int, learner_last_index: int,
                          commit: int, lag_entries_max: int) -> None:
        """§4.2.1: a learner becomes a voter only once it holds the log up to near the commit.

        `learner_last_index` is what the learner's own disk holds when the leader appends
        the promotion, read independently of the leader's bookkeeping.
        """
        self.checks += 1
        if learner_last_index < commit - lag_entries_max:
            self._fail("promotion of a lagging learner", f"leader {leader_id} promoted "
                       f"{learner_id} holding up to {learner_last_index} with commit {commit} "
                       f"(lag limit {lag_entries_max})")

    def observe_conf_change_appended(self, leader_id: int, index: int, earlier_index: int,
                                     commit: int) -> None:
        """§4.1: one membership change at a time. A leader appends a configuration entry
        only once the latest earlier one in its log (`earlier_index`, 0 if none) is committed:
        two uncommitted single-server changes can make quorums of old and new that do not meet.
        """
        self.checks += 1
        if earlier_index > commit:
            self._fail("concurrent membership changes", f"leader {leader_id} appended a "
                       f"configuration change at {index} while the one at {earlier_index} is "
                       f"uncommitted (commit {commit})")

    def observe_persisted_entries(
        self, node_id: int, entries: Iterable[Entry], term_at: TermLookup,
        node_term: int | None = None,
    ) -> None:
        """Log matching, and no committed entry is ever overwritten on disk.

        Call it BEFORE the entries are written, with the node's log as it was. Two
        entries with the same index and term must carry the same command and follow an
        entry of the same term; by induction the logs then match up to there.

        `node_term`, when given, is the term of the node writing (that of the leader it
        took the entries from): a deposed leader of a term older than the one whose
        leader committed an entry may still reach a follower as far behind as itself
        and replace that follower's copy (Raft allows it: only leaders of that term and
        later must hold the entry), so only a writer at or past that term is judged.
        """
        previous_term: int | None = None
        for entry in entries:
            self.checks += 1
            if previous_term is None:
                previous_term = term_at(entry.index - 1) if entry.index > 1 else 0
            position = (entry.index, entry.term)
            witness = (int(entry.type), entry.data, previous_term)
            known = self._positions.setdefault(position, witness)
            if known[:2] != witness[:2] or (
                None not in (known[2], previous_term) and known[2] != previous_term
            ):
                self._fail("log matching", f"node {node_id} holds a different entry at "
                           f"index {entry.index} term {entry.term}")
            committed = self.committed.get(entry.index)
            if (committed is not None and committed.term != entry.term
                    and term_at(entry.index) == committed.term
                    and (node_term is None
                         or node_term >= self.commit_term_bound.get(entry.index, 0))):
                self._fail("committed entry overwritten", f"node {node_id} wrote term "
                           f"{entry.term} over committed term {committed.term} at index "
                           f"{entry.index}")
            previous_term = entry.term

    def observe_restart(self, node_id: int, hard_state: HardState, term_at: TermLookup) -> None:
        """After a crash the disk still holds every entry the node had known committed."""
        record = self._record(node_id)
        if hard_state != record.persisted:
            self._fail("lost hard state", f"node {node_id} restarted with {hard_state}, "
                       f"persisted {record.persisted}")
        record.last_applied = 0
        for index in range(1, hard_state.commit + 1):
            self.checks += 1
            entry = self.committed.get(index)
            term = term_at(index)
            if entry is not None and term is not None and term != entry.term:
                self._fail("committed entry lost", f"node {node_id} restarted with term "
                           f"{term} at committed index {index} (was {entry.term})")

    def observe_unsynced_loss(self, node_id: int, synced: HardState) -> None:
        """A crash took the writes made without a sync: only a commit mark may go back.

        Term and vote change only in Readies that must sync, so losing them is a bug.
        """
        before = self._record(node_id).persisted
        if (synced.term, synced.vote) != (before.term, before.vote):
            self._fail("lost hard state", f"node {node_id} lost an unsynced term or vote: "
                       f"synced {synced}, persisted {before}")
        self._record(node_id).persisted = synced

    def observe_disk_loss(self, node_id: int, hard_state: HardState) -> None:
        """A fault took part of a node's disk: what it persisted is now `hard_state`.

        Raft assumes a disk keeps what it synced; a simulated disk loss breaks that
        assumption on purpose, so the no-regress checks restart from what is left.
        """
        record = self._record(node_id)
        record.persisted = hard_state
        record.last_applied = 0
        record.acked = (0, 0)

    # -- application -----------------------------------------------------------

    def observe_applied(self, node_id: int, entry: Entry, node_term: int) -> None:
        """State machine safety: every node applies the same entry at an index, in order."""
        self.checks += 1
        record = self._record(node_id)
        if record.last_applied and entry.index != record.last_applied + 1:
            self._fail("apply order", f"node {node_id} applied index {entry.index} "
                       f"after {record.last_applied}")
        record.last_applied = entry.index
        self.committed_high = max(self.committed_high, entry.index)
        known = self.committed.setdefault(entry.index, entry)
        self.commit_term_bound.setdefault(entry.index, node_term)
        if known != entry:
            self._fail("state machine safety", f"node {node_id} applied {entry} at index "
                       f"{entry.index}; another node applied {known}")

    def observe_leader_commit(self, node_id: int, term: int, entries: list[Entry]) -> None:
        """A leader of `term` declared `entries` committed: they are, from now on, for every
        later leader (leader completeness) and every applier (state machine safety)."""
        for entry in entries:
            self.checks += 1
            self.committed_high = max(self.committed_high, entry.index)
            known = self.committed.setdefault(entry.index, entry)
            self.commit_term_bound.setdefault(entry.index, term)
            if known != entry:
                self._fail("state machine safety", f"leader {node_id} of term {term} committed "
                           f"{entry} at index {entry.index}; {known} was committed there")

    def observe_read_index(self, node_id: int, index: int, floor: int) -> None:
        """§6.4: a ReadIndex answer covers every entry committed before the read was asked
        (`floor`); a lower index lets the read miss a write that had already completed,
        e.g. when a deposed leader answers it."""
        self.checks += 1
        if index < floor:
            self._fail("stale read index", f"node {node_id} answered a read at index {index}; "
                       f"{floor} was committed when the read was asked")

    def observe_applied_from_disk(self, node_id: int, entry: Entry,
                                  persisted_term: int | None) -> None:
        """An entry is applied only once it is on the node's own disk (`persisted_term`:
        the term at its index there, None when a snapshot covers it): what a node shows
        applied it has acknowledged, and a crash cannot unapply it."""
        if persisted_term is not None and persisted_term != entry.term:
            self._fail("applied ahead of its log", f"node {node_id} applied index "
                       f"{entry.index} (term {entry.term}) while its disk holds term "
                       f"{persisted_term or 'nothing'} there")

    def observe_snapshot_applied(self, node_id: int, index: int) -> None:
        """A snapshot moves a node's applied index forward, never back."""
        record = self._record(node_id)
        if index < record.last_applied:
            self._fail("apply order", f"node {node_id} restored a snapshot at {index} "
                       f"after applying {record.last_applied}")
        record.last_applied = index

    # -- volatile state ------------------------------------------------------------

    def observe_node(self, view: NodeView, term_at: TermLookup) -> None:
        """Election safety, leader completeness, and no regress within one lifetime."""
        self.checks += 1
        record = self._record(view.node_id)
        if record.lifetime == view.lifetime:
            if view.term < record.term:
                self._fail("term regressed", f"node {view.node_id} went from term "
                           f"{record.term} to {view.term}")
            if view.commit < record.commit:
                self._fail("commit regressed", f"node {view.node_id} went from commit "
                           f"{record.commit} to {view.commit}")
        record.lifetime, record.term, record.commit = view.lifetime, view.term, view.commit
        if view.role is Role.LEADER:
            leader = self.leaders_by_term.setdefault(view.term, view.node_id)
            if leader != view.node_id:
                self._fail("election safety", f"nodes {leader} and {view.node_id} both "
                           f"lead term {view.term}")
            if record.led_term != view.term:
                record.led_term = view.term
                self._check_leader_completeness(view.node_id, view.term, term_at)

    def _check_leader_completeness(self, node_id: int, term: int, term_at: TermLookup) -> None:
        bounds = self.commit_term_bound
        for index, entry in self.committed.items():
            if bounds[index] >= term:
                continue  # maybe committed in this term or later: not yet owed
            self.checks += 1
            held = term_at(index)
            if held is not None and held != entry.term:
                self._fail("leader completeness", f"leader {node_id} of term {term} has "
                           f"term {held} at committed index {index} (committed {entry.term})")
