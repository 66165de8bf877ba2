"""Replicated analysis summaries: the `ReportSummary` command and the record replicas hold (pure).

Each node analyses its own access logs and ships the encoded summary of each source
(warmd/analysis/wire.py) through the log, so every replica holds the latest summary of
every (node, source) and a new leader can plan at once without waiting for reports. Only
the newest report of a (node, source) is kept: a report never grows the state.
"""

from __future__ import annotations

from dataclasses import dataclass

from warmd.statemachine.schema import Validated, check_min, check_name, fail

SUMMARY_BYTES_MAX = 8 * 1024 * 1024  # one encoded summary; the encoder bounds it well below


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSummary(Validated):
    """The latest summary of one log source of one node; applied value: the sequence.

    `sequence` grows with every report of the (node, source); an older or repeated one
    is refused, so a delayed retry cannot replace a newer summary.
    """

    node_id: int
    source: str
    sequence: int
    lines: int  # lines summarised so far (well-formed)
    malformed: int  # lines skipped as malformed so far
    data: bytes  # the summary, encoded by warmd.analysis.wire.encode_summary
    now_ms: int

    def _check_values(self) -> None:
        check_name("ReportSummary.source", self.source)
        check_min("ReportSummary.sequence", self.sequence, 1)
        check_min("ReportSummary.lines", self.lines, 0)
        check_min("ReportSummary.malformed", self.malformed, 0)
        if len(self.data) > SUMMARY_BYTES_MAX:
            fail("ReportSummary.data", f"at most {SUMMARY_BYTES_MAX} bytes, got {len(self.data)}")


@dataclass(slots=True)
class SummaryRecord:
    """The newest summary report of one (node, source)."""

    node_id: int
    source: str
    sequence: int
    lines: int
    malformed: int
    data: bytes
    index: int  # log index of the report
    reported_ms: int

    @property
    def key(self) -> str:
        """The state's key for this record: "node_id/source"."""
        return summary_key(self.node_id, self.source)


def summary_key(node_id: int, source: str) -> str:
    """The key of a (node, source) summary in `MachineState.summaries`."""
    return f"{node_id}/{source}"
