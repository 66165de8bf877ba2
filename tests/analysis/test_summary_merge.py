"""`Summary.merge` is pure towards its argument: the argument is left as it was and no mutable
object of it ends up in the result, so changing either later never changes the other (#15).

Before, merge adopted the argument's template, series and window objects and rescaled its
sketches in place: a leader that merged a replicated summary and then kept adding to the
result changed the summary it had merged.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.analysis.formats import Record
from warmd.analysis.sketch import Counted, DistinctCount, HeavyHitters
from warmd.analysis.summary import SeriesStats, SlotStats, Summary, SummaryConfig, TemplateStats
from warmd.analysis.summary_plain import summary_to_plain

START_S = 1_700_000_000.0
_MUTABLE = (dict, list, set, HeavyHitters, DistinctCount, Counted, SlotStats, SeriesStats,
            TemplateStats)
CONFIG = SummaryConfig(requests_capacity=16, values_per_slot=4, max_templates=6,
                       max_series=5)

_targets = st.one_of(
    st.builds("/api/item/{}?lang={}".format, st.integers(0, 30), st.sampled_from("ab")),
    st.builds("/report?date=2023-11-{:02d}".format, st.integers(10, 20)),
    st.builds("/tiles/T{}/x.nc?v[{}:1:{}]".format, st.integers(0, 14), st.integers(0, 9),
              st.integers(10, 19)),
    st.builds("/page/{}/list".format, st.sampled_from(["a", "b", "c", "d"])),
)
_records = st.lists(st.builds(
    Record, st.floats(0, 4 * 86_400).map(lambda s: START_S + round(s)),
    st.sampled_from(["GET", "GET", "GET", "POST"]), _targets, st.sampled_from([200, 200, 404]),
    st.sampled_from(["c1", "c2", "c3"]), st.sampled_from(["curl", "Googlebot"])),
    max_size=60)


def _summary(records: list[Record], batch: int) -> Summary:
    summary = Summary(CONFIG)
    ordered = sorted(records, key=lambda record: record.time_s)
    for start in range(0, len(ordered), batch):
        summary.add_records(ordered[start:start + batch])
    return summary


def _mutable_ids(root: object) -> set[int]:
    """The ids of the mutable objects reachable from a summary's data (not its caches)."""
    seen: set[int] = set()
    found: set[int] = set()
    stack: list[object] = [value for name, value in vars(root).items()
                           if name not in ("_memo", "_bot_cache", "_bot", "config")]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, _MUTABLE):
            found.add(id(item))
        stack.extend(_children(item))
    return found


def _children(item: object) -> Iterator[object]:
    if isinstance(item, dict):
        yield from item.keys()
        yield from item.values()
    elif isinstance(item, list | set | tuple | frozenset):
        yield from item
    elif hasattr(item, "__dict__"):
        yield from vars(item).values()
    elif hasattr(item, "__slots__"):
        yield from (getattr(item, name) for name in item.__slots__)


@settings(max_examples=60, deadline=None)
@given(first=_records, second=_records, more=_records, batch=st.integers(1, 25))
def test_merge_leaves_its_argument_alone(first: list[Record], second: list[Record],
                                         more: list[Record], batch: int) -> None:
    """After a.merge(b): b is byte for byte what it was, a and b share no mutable object,
    and more lines or another merge into a leave b as it was."""
    result, argument = _summary(first, batch), _summary(second, batch)
    before = pickle.dumps(argument)
    result.merge(argument)
    assert pickle.dumps(argument) == before
    assert not _mutable_ids(result) & _mutable_ids(argument)
    result.add_records(sorted(more, key=lambda record: record.time_s))
    result.merge(_summary(more, batch))
    result.merge(argument)  # the same argument twice: still untouched
    assert pickle.dumps(argument) == before


@settings(max_examples=30, deadline=None)
@given(first=_records, second=_records)
def test_merge_gives_what_merging_a_private_copy_gives(first: list[Record],
                                                       second: list[Record]) -> None:
    """Copying changes no answer: merging b equals merging a pickled copy of b."""
    shared, private = _summary(first, 10), _summary(first, 10)
    argument = _summary(second, 10)
    shared.merge(argument)
    private.merge(pickle.loads(pickle.dumps(argument)))
    assert summary_to_plain(shared) == summary_to_plain(private)
