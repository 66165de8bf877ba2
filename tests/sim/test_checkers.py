"""Each safety checker fires on a hand-fed broken fact and stays quiet on a sound one."""

from __future__ import annotations

import pytest

from warmd.raft.types import Entry, HardState, Role
from warmd.testing.checkers import NodeView, SafetyChecker, SafetyViolation


def log_lookup(entries: list[Entry]):
    terms = {entry.index: entry.term for entry in entries}
    return lambda index: terms.get(index, 0)


def test_two_leaders_in_one_term_are_reported() -> None:
    """Election safety: a second leader of the same term is a violation."""
    checker = SafetyChecker()
    empty = log_lookup([])
    checker.observe_node(NodeView(1, 3, Role.LEADER, 0, 0), empty)
    checker.observe_node(NodeView(2, 4, Role.LEADER, 0, 0), empty)
    with pytest.raises(SafetyViolation, match="election safety"):
        checker.observe_node(NodeView(3, 3, Role.LEADER, 0, 0), empty)


def test_different_entries_at_same_index_and_term_break_log_matching() -> None:
    """Log matching: same (index, term) with another command is reported."""
    checker = SafetyChecker()
    checker.observe_persisted_entries(1, [Entry(1, 1, data=b"a")], log_lookup([]))
    checker.observe_persisted_entries(2, [Entry(1, 1, data=b"a")], log_lookup([]))
    with pytest.raises(SafetyViolation, match="log matching"):
        checker.observe_persisted_entries(3, [Entry(1, 1, data=b"b")], log_lookup([]))


def test_same_entry_after_different_predecessor_breaks_log_matching() -> None:
    """Log matching: an entry must follow a predecessor of the same term everywhere."""
    checker = SafetyChecker()
    checker.observe_persisted_entries(1, [Entry(1, 1), Entry(1, 2)], log_lookup([]))
    with pytest.raises(SafetyViolation, match="log matching"):
        checker.observe_persisted_entries(2, [Entry(1, 2)], log_lookup([Entry(2, 1)]))


def test_applying_different_entries_at_one_index_is_reported() -> None:
    """State machine safety: two nodes must apply the same entry at an index."""
    checker = SafetyChecker()
    checker.observe_applied(1, Entry(1, 1, data=b"a"), node_term=1)
    with pytest.raises(SafetyViolation, match="state machine safety"):
        checker.observe_applied(2, Entry(1, 1, data=b"b"), node_term=1)


def test_applying_out_of_order_is_reported() -> None:
    """A node applies index after index, without gaps."""
    checker = SafetyChecker()
    checker.observe_applied(1, Entry(1, 1), node_term=1)
    with pytest.raises(SafetyViolation, match="apply order"):
        checker.observe_applied(1, Entry(1, 3), node_term=1)


def test_overwriting_a_committed_entry_is_reported() -> None:
    """A node that held a committed entry must never replace it."""
    checker = SafetyChecker()
    committed = Entry(1, 1, data=b"a")
    checker.observe_applied(1, committed, node_term=1)
    # A node that never held it may write a divergent, uncommitted entry there.
    checker.observe_persisted_entries(3, [Entry(2, 1, data=b"x")], log_lookup([]))
    with pytest.raises(SafetyViolation, match="committed entry overwritten"):
        checker.observe_persisted_entries(2, [Entry(2, 1, data=b"x")], log_lookup([committed]))


def test_leader_missing_a_committed_entry_is_reported() -> None:
    """Leader completeness: a leader of a later term holds every committed entry."""
    checker = SafetyChecker()
    checker.observe_applied(1, Entry(1, 1), node_term=1)
    checker.observe_applied(1, Entry(1, 2), node_term=1)
    checker.observe_node(NodeView(2, 2, Role.LEADER, 0, 0), log_lookup([Entry(1, 1), Entry(1, 2)]))
    with pytest.raises(SafetyViolation, match="leader completeness"):
        checker.observe_node(NodeView(3, 3, Role.LEADER, 0, 0), log_lookup([Entry(1, 1)]))


def test_leader_completeness_skips_compacted_indexes() -> None:
    """An index the leader compacted into a snapshot (lookup None) is covered, not missing."""
    checker = SafetyChecker()
    checker.observe_applied(1, Entry(1, 1), node_term=1)
    checker.observe_node(NodeView(2, 2, Role.LEADER, 0, 0), lambda index: None)


@pytest.mark.parametrize(
    ("first", "second", "rule"),
    [
        (HardState(5, 1, 3), HardState(4, 1, 3), "term regressed"),
        (HardState(5, 1, 3), HardState(5, 1, 2), "commit regressed"),
        (HardState(5, 1, 3), HardState(5, 2, 3), "double vote"),
    ],
)
def test_persisted_hard_state_never_goes_back(first: HardState, second: HardState,
                                              rule: str) -> None:
    """Persisted term and commit never regress, and a node votes once per term."""
    checker = SafetyChecker()
    checker.observe_hard_state(1, first)
    with pytest.raises(SafetyViolation, match=rule):
        checker.observe_hard_state(1, second)


def test_volatile_term_may_restart_only_with_a_new_lifetime() -> None:
    """Within one lifetime term and commit never go back; a restart may lower commit."""
    checker = SafetyChecker()
    empty = log_lookup([])
    checker.observe_node(NodeView(1, 3, Role.FOLLOWER, 7, 0), empty)
    checker.observe_node(NodeView(1, 3, Role.FOLLOWER, 2, 1), empty)
    with pytest.raises(SafetyViolation, match="commit regressed"):
        checker.observe_node(NodeView(1, 3, Role.FOLLOWER, 1, 1), empty)


def test_restart_with_other_hard_state_than_persisted_is_reported() -> None:
    """What a node persisted is what it restarts with."""
    checker = SafetyChecker()
    checker.observe_hard_state(1, HardState(2, 1, 0))
    with pytest.raises(SafetyViolation, match="lost hard state"):
        checker.observe_restart(1, HardState(1, 1, 0), log_lookup([]))


def test_a_second_uncommitted_membership_change_is_reported() -> None:
    """§4.1: a leader appends a configuration change only once the earlier one is committed."""
    checker = SafetyChecker()
    checker.observe_conf_change_appended(1, index=7, earlier_index=5, commit=5)
    with pytest.raises(SafetyViolation, match="concurrent membership changes"):
        checker.observe_conf_change_appended(1, index=8, earlier_index=7, commit=6)


def test_acknowledging_an_append_to_a_stale_leader_is_reported() -> None:
    """Figure 2, AppendEntries 1: only the leader of the term gets a successful answer."""
    checker = SafetyChecker()
    checker.observe_node(NodeView(2, 5, Role.LEADER, 0, 0), log_lookup([]))
    checker.observe_acknowledged(3, term=5, index=4, to=2)
    checker.observe_acknowledged(3, term=5, index=0, to=1)  # telling a stale leader our term
    with pytest.raises(SafetyViolation, match="acknowledged a stale leader"):
        checker.observe_acknowledged(3, term=5, index=4, to=1)


def test_rewriting_an_acknowledged_entry_within_its_term_is_reported() -> None:
    """§5.3: what a node acknowledged in a term stays, even when the log end does not move."""
    checker = SafetyChecker()
    checker.observe_node(NodeView(2, 5, Role.LEADER, 0, 0), log_lookup([]))
    checker.observe_acknowledged(3, term=5, index=4, to=2)
    checker.observe_log_end(3, term=5, last_index=5, first_written=5)
    checker.observe_log_end(3, term=6, last_index=4, first_written=3)  # a later leader may
    checker.observe_acknowledged(3, term=6, index=4, to=6)
    with pytest.raises(SafetyViolation, match="acknowledged entry overwritten"):
        checker.observe_log_end(3, term=6, last_index=4, first_written=4)
