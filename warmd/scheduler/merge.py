"""The leader's view of all replicated summaries: decoded and merged into one Summary. Pure.

Every replica holds the same `SummaryRecord`s, so merging them in a fixed order (by key)
gives the same Summary on whichever node leads; one bad record costs its own data only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from warmd.analysis.summary import Summary
from warmd.analysis.wire import SummaryDecodeError, decode_summary
from warmd.statemachine.summaries import SummaryRecord

Signature = tuple[tuple[str, int], ...]  # (node/source key, sequence) of each report


def signature(records: Mapping[str, SummaryRecord]) -> Signature:
    """What a merged summary is made from: each report's key and sequence, sorted (a cache
    of the merge is current while this is unchanged)."""
    return tuple(sorted((key, record.sequence) for key, record in records.items()))


def merged_summary(records: Iterable[SummaryRecord]) -> tuple[Summary | None, tuple[str, ...]]:
    """All records' summaries merged in key order, and one line per record that failed.

    A record that does not decode is skipped and named (node, source, sequence) in the
    problems; the result is None when no record was usable (or there were none).
    """
    decoded: list[Summary] = []
    problems: list[str] = []
    for record in sorted(records, key=lambda r: (r.key, r.sequence, r.index)):
        try:
            decoded.append(decode_summary(record.data))
        except SummaryDecodeError as error:
            problems.append(f"summary of node {record.node_id} source {record.source!r} "
                            f"(sequence {record.sequence}, log index {record.index}) "
                            f"skipped: {error}")
    if not decoded:
        return None, tuple(problems)
    # The newest decay landmark is the base: folding a summary in rescales its weights by
    # 2 ** (landmark gap / half-life), which overflows upwards for a source years newer
    # than the base but only fades to zero for one years older.
    base = max(range(len(decoded)), key=lambda n: (_landmark(decoded[n]), -n))
    merged = decoded[base]  # freshly decoded, so nobody else holds it: merge in place
    for position, summary in enumerate(decoded):
        if position != base:
            merged.merge(summary)
    return merged, tuple(problems)


def _landmark(summary: Summary) -> float:
    return -math.inf if summary.landmark_s is None else summary.landmark_s


def source_summaries(records: Iterable[SummaryRecord], source_sets: Iterable[tuple[str, ...]]
                     ) -> dict[tuple[str, ...], Summary | None]:
    """For each set of source names, the merge of the reports shipped under those names (None
    when no usable report has one): what a rule restricted to those sources plans from.
    Each merge decodes its own copies (a merge adopts the objects of what it folds in)."""
    kept = list(records)
    return {sources: merged_summary([r for r in kept if r.source in sources])[0]
            for sources in source_sets}
