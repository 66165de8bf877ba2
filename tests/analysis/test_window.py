"""Windows: blocks aggregated per target before the summary's per-target work give exactly
the summary of the blocks' columns concatenated, whatever the cut and the disorder."""

from __future__ import annotations

import hashlib
import random
from itertools import chain

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.analysis.formats import COMBINED, LineParser, parse_columns
from warmd.analysis.summary import Summary
from warmd.analysis.summary_plain import summary_to_plain
from warmd.analysis.target import PathGeneraliser
from warmd.analysis.window import Block, Window
from warmd.runtime.ingest.worker import astuple_shallow
from warmd.testing.loggen import LogSpec, generate_lines

Batch = tuple[list, ...]


class _Recording(Window):
    """A small window that notes which blocks it took (to rebuild the concatenations)."""

    def __init__(self) -> None:
        super().__init__(max_targets=60, max_hour_entries=150)
        self.blocks: list[Block] = []

    def take(self, block: Block) -> None:
        self.blocks.append(block)
        super().take(block)


def _digest(summary: Summary) -> str:
    return hashlib.sha256(msgpack.packb(summary_to_plain(summary))).hexdigest()


def _batches(seed: int, disorder: bool) -> list[Batch]:
    """A generated log (other methods, bad statuses and bots included) cut at random points
    into column batches, its times cut to the minute (ties in last times, as real logs
    have); with `disorder`, stretches of up to a few hours shuffled so hours go back."""
    rng = random.Random(seed)
    lines = list(generate_lines(LogSpec(seed=seed, days=0.4, requests_per_day=10_000)))
    if disorder:
        for _ in range(3):
            start = rng.randrange(len(lines))
            stretch = lines[start:start + rng.randrange(2, 1_500)]
            rng.shuffle(stretch)
            lines[start:start + len(stretch)] = stretch
    lines = [line.replace('"GET', '"POST', 1) if rng.random() < 0.03 else line
             for line in lines]
    cuts = sorted(rng.sample(range(1, len(lines)), rng.randrange(1, 30)))
    parser = LineParser(COMBINED)
    batches = [astuple_shallow(parse_columns(parser, lines[a:b]))
               for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    return [(batch[0], [time_s // 60 * 60 for time_s in batch[1]], *batch[2:])
            for batch in batches]


@given(st.integers(0, 2**16), st.booleans())
@settings(max_examples=6, deadline=None)
def test_windowed_summary_is_the_summary_of_each_window_concatenated(seed: int,
                                                                    disorder: bool) -> None:
    """Every count, sketch entry and order (the plain form's digest) equals add_columns on
    the concatenated batches of each window the summary took."""
    batches = _batches(seed, disorder)
    windows: list[_Recording] = []

    def new_window() -> _Recording:
        windows.append(_Recording())
        return windows[-1]

    windowed = Summary()
    with windowed.windowed(new_window) as add:
        for batch in batches:
            add(*batch)
    assert len(windows) > 1, f"seed {seed}: the bounds never cut a window"
    concatenated, position = Summary(), 0
    for window in windows:
        group = batches[position:position + len(window.blocks)]
        position += len(window.blocks)
        concatenated.add_columns(*(list(chain.from_iterable(batch[n] for batch in group))
                                   for n in range(6)))
    assert position == len(batches)
    assert windowed.lines == concatenated.lines > 0
    assert _digest(windowed) == _digest(concatenated), f"seed {seed}, disorder {disorder}"


def test_runs_go_on_as_the_concatenation_counts_them_and_a_full_window_is_cut() -> None:
    """A pair already in the window adds to its run; new pairs follow in the block's order,
    an hour that goes back starting a run of its own; a full window takes no more."""
    summary = Summary()
    hour = 1_764_000_000 // 3600 * 3600

    def block(targets: list[str], offsets_s: list[int]) -> Block:
        count = len(targets)
        return summary.block(targets, [float(hour + s) for s in offsets_s], ["GET"] * count,
                             [200] * count, ["c"] * count, [""] * count)

    h = hour // 3600
    window = Window(max_targets=4)
    window.take(block(["/a", "/b"], [0, 3600]))
    window.take(block(["/b", "/c", "/a", "/d"], [3600, 3600, 0, 0]))
    assert window.runs == [(h, {"/a": 2}), (h + 1, {"/b": 2, "/c": 1}), (h, {"/d": 1})]
    window.take(block(["/d", "/e"], [0, 10]))
    assert window.runs[-1] == (h, {"/d": 2, "/e": 1})  # the last run's hour goes on
    assert window.full() and not window.accepts(block(["/f"], [20]))
    assert window.accepts(block([], []))  # no cacheable line: nothing to hold
    assert window.order() == ["/d", "/a", "/e", "/c", "/b"]  # ties: the latest line first
    assert window.counts == {"/a": 2, "/b": 2, "/c": 1, "/d": 2, "/e": 1}



class _Observed(PathGeneraliser):
    """A generaliser that notes the order in which it is shown paths."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[str] = []

    def observe(self, path: str) -> bool:
        self.shown.append(path)
        return super().observe(path)


def test_new_paths_are_observed_in_first_seen_order() -> None:
    """The generaliser's statistics are bounded (which signatures it keeps depends on the
    order it sees paths in), so a batch's new paths go to it in the order they came, not a
    set's order (which changes with the string hash seed from run to run)."""
    rng = random.Random(5)
    targets = [f"/d{rng.randrange(9)}/w{rng.randrange(500)}/f.hdf?x={n}" for n in range(3_000)]
    summary = Summary()
    summary.generaliser = _Observed()
    count = len(targets)
    summary.add_columns(targets, [1.7e9 + n for n in range(count)], ["GET"] * count,
                        [200] * count, ["c"] * count, [""] * count)
    assert summary.generaliser.shown == list(dict.fromkeys(t.partition("?")[0] for t in targets))
