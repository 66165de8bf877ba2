"""Majority maths: the commit index a set of voters has reached, and election results."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import IntEnum


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(voter_count: int) -> int:
    """The smallest number of voters that forms a quorum."""
    return voter_count // 2 + 1


def committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The highest index that a majority of `voters` have matched (0 without voters).

    A voter missing from `match` counts as having matched nothing.
    """
    if not voters:
        return 0
    values = sorted((match.get(voter, 0) for voter in voters), reverse=True)
    return values[majority(len(values)) - 1]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer grant."""
    granted = sum(1 for voter in voters if votes.get(voter) is True)
    rejected = sum(1 for voter in voters if votes.get(voter) is False)
    needed = majority(len(voters))
    if granted >= needed:
        return VoteResult.WON
    if rejected > len(voters) - needed:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Collection[int], active: Collection[int]) -> bool:
    """Whether the `active` nodes include a majority of `voters`."""
    return sum(1 for voter in voters if voter in active) >= majority(len(voters))
