"""Deliberately broken RaftNodes, each breaking one safety rule, to prove the checkers.

A checker that never fires proves nothing: `python -m warmd.raft.sim --mutant NAME`
runs the simulator against one of these and must report violations. They reach into
the core's private methods on purpose; each names the paper section it breaks.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Unpack

from warmd.raft import quorum
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode, _Reply
from warmd.raft.progress import Progress
from warmd.raft.readonly import ReadRequest
from warmd.raft.storage import LogStorage
from warmd.raft.types import (
    NO_NODE,
    ConfChange,
    HardState,
    Message,
    MessageType,
    ProgressState,
    Role,
    Snapshot,
)


class VotesForAnyLog(RaftNode):
    """Breaks §5.4.1: grants votes to candidates whose log is behind its own."""

    breaks = "§5.4.1"

    def _handle_vote_request(self, message: Message) -> None:
        self.log.is_up_to_date = lambda last_index, last_term: True  # type: ignore[method-assign]
        super()._handle_vote_request(message)


class VotesTwicePerTerm(RaftNode):
    """Breaks §5.2: forgets whom it voted for before every vote request."""

    breaks = "§5.2"

    def _handle_vote_request(self, message: Message) -> None:
        if message.type is MessageType.VOTE:
            self._vote = NO_NODE
            self._leader_id = NO_NODE
        super()._handle_vote_request(message)


class ForgetsItsVote(RaftNode):
    """Breaks §5.2 persistence: comes back from a restart without the vote it cast."""

    breaks = "§5.2"

    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        super().__init__(config, storage, rng)
        self._vote = NO_NODE
        hard = self._prev_hard
        self._prev_hard = HardState(term=hard.term, vote=NO_NODE, commit=hard.commit)


class CommitsOldTermByCounting(RaftNode):
    """Breaks §5.4.2: commits whatever a quorum holds, even entries of older terms."""

    breaks = "§5.4.2, Figure 8"

    def _maybe_commit(self) -> bool:
        index = quorum.committed_index(
            self._voters, {node: pr.match for node, pr in self._progress.items()}
        )
        if index <= self.log.committed:
            return False
        self.log.commit_to(index)
        self._broadcast_pending = self._commit_broadcast_pending = True
        self._after_commit()
        return True


class ServesReadsWithoutQuorum(RaftNode):
    """Breaks §6.4: answers ReadIndex at once, without confirming its leadership."""

    breaks = "§6.4"

    def _leader_read_index(self, context: bytes, from_id: int) -> None:
        self._answer_read(ReadRequest(index=self.log.committed, context=context, from_id=from_id))


class AppliesUncommittedEntries(RaftNode):
    """Breaks Figure 2 (AppendEntries 5, §5.3): commits every entry it appends, not only
    up to the leader's commit index."""

    breaks = "§5.3, Figure 2"

    def _handle_append(self, message: Message) -> None:
        super()._handle_append(replace(message, commit=message.index + len(message.entries)))


class TruncatesAcknowledgedSuffix(RaftNode):
    """Breaks Figure 2 (AppendEntries 3, §5.3): a delayed APPEND cuts the log after its
    entries even where they match, dropping entries already acknowledged (and maybe
    committed) instead of only a conflicting suffix."""

    breaks = "§5.3, Figure 2"

    def _handle_append(self, message: Message) -> None:
        log = self.log
        last_new = message.index + len(message.entries)
        if (message.entries and message.index >= log.committed
                and log.match_term(message.index, message.log_term) and log.last_index() > last_new):
            self._append_to_log(message.entries)  # the break: truncates what follows them
        super()._handle_append(message)


class AcceptsStaleLeaderAppends(RaftNode):
    """Breaks Figure 2 (AppendEntries 1, §5.1): takes APPENDs from a leader of an older term."""

    breaks = "§5.1, Figure 2"

    def step(self, message: Message) -> None:
        if (message.type is MessageType.APPEND and 0 < message.term < self._term
                and self._role is not Role.LEADER and self._acceptable(message)):
            self._handle_append(message)  # the break: a stale term is not refused
            return
        super().step(message)


class CountsLearnerVotes(RaftNode):
    """Breaks §4.2.1 (learners are non-voting): asks learners for votes, and counts a
    learner's grant as if a voter who has not answered yet had granted it."""

    breaks = "§4.2.1"

    def _campaign(self, pre_vote: bool, transfer: bool) -> None:
        super()._campaign(pre_vote, transfer)
        if self._role in (Role.PRE_CANDIDATE, Role.CANDIDATE):
            kind = MessageType.PRE_VOTE if self._role is Role.PRE_CANDIDATE else MessageType.VOTE
            term = self._term + 1 if pre_vote else self._term
            for learner in sorted(self._learners):
                self._send(kind, learner, term=term, index=self.log.last_index(),
                           log_term=self.log.last_term())

    def _handle_vote_response(self, message: Message) -> None:
        if message.from_id in self._learners and not message.reject:
            stand_in = next((voter for voter in sorted(self._voters)
                             if voter not in self._votes), None)
            if stand_in is not None:
                message = replace(message, from_id=stand_in)  # the break
        super()._handle_vote_response(message)


class PromotesLaggingLearners(RaftNode):
    """Breaks §4.2.1 (catch up before voting): promotes a learner that is silent or behind."""

    breaks = "§4.2.1"

    def _check_promotion(self, learner_id: int) -> None:
        return  # the break: neither recent contact nor the lag limit is checked


class PreVoteBumpsTerm(RaftNode):
    """Breaks §9.6: a pre-candidate raises its term, so a rejoining node disrupts the cluster."""

    breaks = "§9.6"

    def _become_pre_candidate(self) -> None:
        self._term += 1  # the break: pre-vote must change neither term nor vote
        super()._become_pre_candidate()


class LeaseReadsWithoutCheckQuorum(RaftNode):
    """Breaks §6.4.1: serves reads from a leader lease with check-quorum off, so a deposed
    leader that never notices keeps answering from its stale state."""

    breaks = "§6.4.1"

    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        super().__init__(replace(config, check_quorum=False), storage, rng)

    def _leader_read_index(self, context: bytes, from_id: int) -> None:
        if not self._committed_in_term():
            super()._leader_read_index(context, from_id)
            return
        self._answer_read(ReadRequest(index=self.log.committed, context=context, from_id=from_id))


class SnapshotOverNewerLog(RaftNode):
    """Breaks §7: installs a snapshot even when its log already holds the snapshot's last
    entry, discarding the (acknowledged) entries after it instead of keeping them."""

    breaks = "§7"

    def _restore(self, snapshot: Snapshot) -> bool:
        if snapshot.meta.index <= self.log.committed:
            return False
        self.log.restore(snapshot)  # the break: no check for a log that already matches
        self._conf_history = [(snapshot.meta.index, snapshot.meta.conf_state)]
        self._apply_config()
        return True


class ConcurrentMembershipChanges(RaftNode):
    """Breaks §4.1 (one change at a time): proposes a change while another is uncommitted."""

    breaks = "§4.1"

    def _check_conf_proposal(self, change: ConfChange) -> None:
        self._pending_conf_index = 0  # the break: the pending change is forgotten
        super()._check_conf_proposal(change)


class AcksBeforeDurable(RaftNode):
    """Breaks persist-before-acknowledge (Figure 2, "respond after persisting"; etcd's
    asynchronous writes): lets its append, heartbeat and vote answers leave before the
    Ready that holds their entries and vote is on disk."""

    breaks = "§5.3, Figure 2 (persistence)"

    def _sends_before_persist(self, message: Message) -> bool:
        return True


class AppliesBeforeDurable(RaftNode):
    """Breaks "applied never runs ahead of our own log": hands out committed entries to be
    applied before they are on this node's disk."""

    breaks = "§5.3, Figure 2 (persistence)"

    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        super().__init__(config, storage, rng)
        log = self.log
        log._appliable = lambda: log.committed  # type: ignore[method-assign]


class NeverTellsWaitingMembers(RaftNode):
    """Breaks "a member learns the commit something on it waits for at once": the leader
    sends a replicating member no empty APPEND for a new commit index, so a write forwarded
    by a follower (or a read served there) waits for a heartbeat or later entries (the
    simulator's promptness check runs with every Raft clock stopped)."""

    breaks = "liveness (commit told to waiting members)"

    def _tells_commit_now(self, pr: Progress) -> bool:
        return pr.state is not ProgressState.REPLICATE  # the break: waiters are ignored


class SilentOnRejection(RaftNode):
    """Breaks §5.3 (the leader backs up on a rejection): a follower whose log does not
    match an APPEND never says so, so the leader never finds where their logs agree."""

    breaks = "§5.3 (liveness)"

    def _append_response(self, to: int, **fields: Unpack[_Reply]) -> None:
        if fields.get("reject"):
            return  # the break: a rejection must always be answered
        super()._append_response(to, **fields)


MUTANTS: dict[str, type[RaftNode]] = {
    "votes-for-any-log": VotesForAnyLog,
    "votes-twice-per-term": VotesTwicePerTerm,
    "forgets-its-vote": ForgetsItsVote,
    "commits-old-term-by-counting": CommitsOldTermByCounting,
    "serves-reads-without-quorum": ServesReadsWithoutQuorum,
    "applies-uncommitted-entries": AppliesUncommittedEntries,
    "truncates-acknowledged-suffix": TruncatesAcknowledgedSuffix,
    "accepts-stale-leader-appends": AcceptsStaleLeaderAppends,
    "counts-learner-votes": CountsLearnerVotes,
    "promotes-lagging-learners": PromotesLaggingLearners,
    "pre-vote-bumps-term": PreVoteBumpsTerm,
    "lease-reads-without-check-quorum": LeaseReadsWithoutCheckQuorum,
    "snapshot-over-newer-log": SnapshotOverNewerLog,
    "concurrent-membership-changes": ConcurrentMembershipChanges,
    "acks-before-durable": AcksBeforeDurable,
    "applies-before-durable": AppliesBeforeDurable,
    "never-tells-waiting-members": NeverTellsWaitingMembers,
    "silent-on-rejection": SilentOnRejection,
}
