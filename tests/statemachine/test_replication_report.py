"""The leader's published replication table: kept with its index, in snapshots, and never
replaced by a report of an earlier term."""

from __future__ import annotations

from warmd.statemachine.machine import StateMachine
from warmd.statemachine.replication import PeerProgress, ReportReplication
from warmd.statemachine.state import Applied, Rejected


def _report(term: int, last_index: int) -> ReportReplication:
    return ReportReplication(node_id=1, term=term, commit_index=last_index,
                             last_index=last_index, now_ms=5, version="v", peers=(
                                 PeerProgress(node_id=1, voter=True, match_index=last_index,
                                              last_contact_ms=0),
                                 PeerProgress(node_id=2, voter=True, match_index=-1,
                                              last_contact_ms=-1)))


def test_the_newest_report_is_kept_and_an_older_terms_is_refused() -> None:
    machine = StateMachine()
    assert machine.apply(1, _report(3, 0)) == Applied(None)
    assert machine.apply(2, _report(4, 1)) == Applied(None)
    late = machine.apply(3, _report(3, 2))
    assert isinstance(late, Rejected) and "older than the kept one" in late.reason
    record = machine.state.replication
    assert record is not None and (record.index, record.report.term) == (2, 4)
    copy = StateMachine()
    copy.restore(machine.snapshot())
    assert copy.state.replication == record and copy.digest() == machine.digest()
