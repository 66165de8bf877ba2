"""Deliberately broken RaftNodes, each breaking one safety rule, to prove the checkers.

A checker that never fires proves nothing: `python -m warmd.raft.sim --mutant NAME`
runs the simulator against one of these and must report violations. They reach into
the core's private methods on purpose; each names the paper section it breaks.
"""

from __future__ import annotations

import random

from warmd.raft import quorum
from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.readonly import ReadRequest
from warmd.raft.storage import LogStorage
from warmd.raft.types import NO_NODE, HardState, Message, MessageType


class VotesForAnyLog(RaftNode):
    """Breaks §5.4.1: grants votes to candidates whose log is behind its own."""

    def _handle_vote_request(self, message: Message) -> None:
        self.log.is_up_to_date = lambda index, term: True  # type: ignore[method-assign]
        super()._handle_vote_request(message)


class VotesTwicePerTerm(RaftNode):
    """Breaks §5.2: forgets whom it voted for before every vote request."""

    def _handle_vote_request(self, message: Message) -> None:
        if message.type is MessageType.VOTE:
            self._vote = NO_NODE
            self._leader_id = NO_NODE
        super()._handle_vote_request(message)


class ForgetsItsVote(RaftNode):
    """Breaks §5.2 persistence: comes back from a restart without the vote it cast."""

    def __init__(self, config: RaftConfig, storage: LogStorage, rng: random.Random) -> None:
        super().__init__(config, storage, rng)
        self._vote = NO_NODE
        hard = self._prev_hard
        self._prev_hard = HardState(term=hard.term, vote=NO_NODE, commit=hard.commit)


class CommitsOldTermByCounting(RaftNode):
    """Breaks §5.4.2: commits whatever a quorum holds, even entries of older terms."""

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

    def _leader_read_index(self, context: bytes, from_id: int) -> None:
        self._answer_read(ReadRequest(index=self.log.committed, context=context, from_id=from_id))


MUTANTS: dict[str, type[RaftNode]] = {
    "votes-for-any-log": VotesForAnyLog,
    "votes-twice-per-term": VotesTwicePerTerm,
    "forgets-its-vote": ForgetsItsVote,
    "commits-old-term-by-counting": CommitsOldTermByCounting,
    "serves-reads-without-quorum": ServesReadsWithoutQuorum,
}
