"""Per-hour request counts of the latest nine days (what the self-backtest replays)."""

from __future__ import annotations

from warmd.analysis.summary import WINDOW_HOURS, Summary, summarise
from warmd.analysis.summary_plain import summary_from_plain, summary_to_plain
from warmd.testing.loggen import LogSpec, generate_records


def _counts(summary: Summary) -> dict[tuple[int, str], int]:
    return {(hour, str(key)): entry.count for hour, sketch in summary.windows.items()
            for key, entry in sketch}


def test_windows_keep_the_latest_hours_and_merge_like_the_whole() -> None:
    """Ten days keep the latest WINDOW_HOURS hours; two halves merged hold the whole's counts, hour by hour,
    and the plain form carries them."""
    records = generate_records(LogSpec(seed=4, days=10.0, requests_per_day=2_000))
    whole = summarise(records)
    assert len(whole.windows) == WINDOW_HOURS
    assert min(whole.windows) == max(whole.windows) - WINDOW_HOURS + 1
    middle = len(records) // 2
    merged = summarise(records[:middle])
    merged.merge(summarise(records[middle:]))
    assert _counts(merged) == _counts(whole)
    assert _counts(summary_from_plain(summary_to_plain(whole))) == _counts(whole)
