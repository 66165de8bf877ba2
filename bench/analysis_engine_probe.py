"""What a columnar engine (polars, one thread) would take off warmd's per-line analysis work.

Not a dependency: run it after `pip install polars` to check the figures docs/benchmarks.md
quotes for the decision not to adopt it ("Log analysis throughput", session 6). Per 4 MB
block of a log, in CPU time per line, rounds interleaved, medians with min-max:
- warmd: the block parse (`parse_text`, what a byte-range worker runs), and the per-line
  passes of `Summary.add_columns` before its per-distinct-target work (the cacheable mask,
  first and last times per target, counts per target and hour, the sampled clients);
- polars with POLARS_MAX_THREADS=1 (set here before the import, checked): the same block
  read as one column and parsed (combined: a validating match and splits; the LP DAAC export:
  `str.extract_groups` with its regex), then the same per-line aggregations, handed back to
  Python as lists (what the per-distinct-target work would start from).
The summary's per-distinct-target work (templating, sketches) is the same either way and is
not measured here. What the probe adds instead is the budget it would have: the bare loop of
bench/analysis_throughput.py (its regex, a Counter of paths) is timed on the same blocks, and
the time a 0.5x ratio allows (twice the bare loop's) less the engine's parse and aggregation
is divided by the (target, hour) groups and the distinct targets of the whole log (fewer
than the blocks' sum: the most generous window, the whole log, is assumed).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import compress
from pathlib import Path
from typing import Any

os.environ["POLARS_MAX_THREADS"] = "1"  # one core: set before polars starts its pool

from warmd.analysis.batch import per_hour_counts
from warmd.analysis.formats import LineParser, format_from_spec, parse_text
from warmd.analysis.summary import Summary

try:
    import polars as pl
except ImportError:
    sys.exit("this probe needs polars (not a warmd dependency): pip install polars")

LPDAAC_SPEC = (r"regex:^(?P<time>[^|]+)\|&\|(?P<client>[^|]*)\|&\|(?:[^|]*\|&\|){4}"
               r"(?P<target>[^|]*)\|&\|(?P<status>\d+)")
# Python's \S for ASCII text, spelled out (Rust's \s lacks \x1c-\x1f, which Python's has).
_NS = r"[^ \t\n\r\f\v\x1c-\x1f]"
_STRICT = (rf'^({_NS}+) {_NS}+ {_NS}+ \[([^\]]+)\] "([A-Z]+) ([^ \t\n\r\f\v\x1c-\x1f"]+)'
           rf'[^"]*" ([0-9]{{3}}) {_NS}+ "[^"]*" "([^"]*)"')


def blocks(path: Path, size: int = 4_000_000) -> Iterator[bytes]:
    """The file as blocks of whole lines."""
    with open(path, "rb") as handle:
        while block := handle.read(size):
            if not block.endswith(b"\n"):
                block += handle.readline()
            yield block


def warmd_parse(spec: str) -> Callable[[bytes], Any]:
    parser = LineParser(format_from_spec(spec))
    return lambda block: parse_text(parser, block.decode("utf-8", "replace"))


def warmd_per_line(spec: str) -> Callable[[bytes], Any]:
    """The parse, then the per-line passes of Summary.add_columns (as it runs them)."""
    parse, summary = warmd_parse(spec), Summary()

    def run(block: bytes) -> Any:
        columns = parse(block)
        targets, times_s, clients = columns.targets, columns.times_s, columns.clients
        keep, _ = summary._cacheable_mask(columns.methods, columns.statuses, columns.agents)
        if keep is not None:
            targets, times_s, clients = (list(compress(column, keep))
                                         for column in (targets, times_s, clients))
        summary._memo.unknown(set(targets))
        first_s = dict(zip(reversed(targets), reversed(times_s), strict=True))
        last_s = dict(zip(targets, times_s, strict=True))
        counts: Counter[str] = Counter()
        for _, hour_counts in per_hour_counts(targets, times_s):
            counts.update(hour_counts)
        return (sorted(first_s, key=last_s.__getitem__),
                Counter(zip(targets[::8], clients[::8], strict=True)))
    return run


BARE = {"combined": r'(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (?P<path>\S+)[^"]*" (\d{3}) (\S+)',
        "lpdaac": r"^([^|]+)\|&\|([^|]*)\|&\|(?:[^|]*\|&\|){4}(?P<path>[^|]*)\|&\|(\d+)"}


def bare_loop(pattern: str) -> Callable[[bytes], Any]:
    """bench/analysis_throughput.py's bare loop (a match per line, a Counter of paths)."""
    regex = re.compile(pattern)

    def run(block: bytes) -> Any:
        paths: Counter[str] = Counter()
        for line in block.decode("utf-8", "replace").split("\n"):
            match = regex.match(line)
            if match:
                paths[match.group("path")] += 1
        return paths
    return run


def whole_log_groups(frame: Callable[[bytes], pl.LazyFrame], data: list[bytes]
                     ) -> tuple[int, int]:
    """The distinct (target, hour) groups and distinct targets of the whole log's kept lines."""
    kept = pl.concat([frame(block).filter(
        pl.col("method").eq("GET") & pl.col("status").is_between(200, 299)).select(
        "target", (pl.col("time_s") // 3600).alias("hour")).collect() for block in data])
    return kept.unique().height, kept["target"].n_unique()


def _frame(block: bytes) -> pl.LazyFrame:
    return pl.read_csv(block, has_header=False, separator="\x01", quote_char=None,
                       new_columns=["line"], infer_schema=False).lazy()


def polars_combined(block: bytes) -> pl.LazyFrame:
    quoted = pl.col("line").str.split_exact('"', 6).struct
    head = pl.col("head").str.split_exact(" ", 4).struct
    request = pl.col("request").str.split_exact(" ", 2).struct
    return _frame(block).filter(pl.col("line").str.contains(_STRICT)).select(
        head=quoted.field("field_0"), request=quoted.field("field_1"),
        middle=quoted.field("field_2"), agent=quoted.field("field_5"),
    ).select(
        client=head.field("field_0"), stamp=pl.col("head").str.extract(r"\[([^\]]+)\]"),
        method=request.field("field_0"), target=request.field("field_1"),
        status=pl.col("middle").str.slice(1, 3).cast(pl.Int32), agent="agent",
    ).with_columns(time_s=pl.col("stamp").str.strptime(
        pl.Datetime("us", "UTC"), "%d/%b/%Y:%H:%M:%S %z").dt.epoch("s"))


def polars_lpdaac(block: bytes) -> pl.LazyFrame:
    pattern = LPDAAC_SPEC.removeprefix("regex:")
    return _frame(block).select(pl.col("line").str.extract_groups(pattern)).unnest(
        "line").filter(pl.col("target").is_not_null()).with_columns(
        time_s=pl.col("time").str.strptime(pl.Datetime("us", "UTC"),
                                           "%Y-%m-%d %I:%M%p").dt.epoch("s"),
        status=pl.col("status").cast(pl.Int32), method=pl.lit("GET"), agent=pl.lit(""))


def polars_per_line(frame: Callable[[bytes], pl.LazyFrame]) -> Callable[[bytes], Any]:
    """The parse, then the same aggregations as group-bys, back as Python lists."""
    def run(block: bytes) -> Any:
        lines = frame(block).with_columns(
            keep=pl.col("method").eq("GET") & pl.col("status").is_between(200, 299)).collect()
        kept = lines.lazy().filter("keep").with_row_index("row")
        queries = [
            kept.group_by("target", (pl.col("time_s") // 3600).alias("hour"),
                          maintain_order=True).agg(pl.len()),
            kept.group_by("target", maintain_order=True).agg(
                pl.col("time_s").first().alias("first_s"),
                pl.col("time_s").last().alias("last_s"), pl.col("row").last()),
            kept.filter(pl.col("row") % 8 == 0).group_by(
                "target", "client", maintain_order=True).agg(pl.len()),
            lines.lazy().select(pl.col("agent").unique(maintain_order=True)),
        ]
        return [result.to_dict(as_series=False) for result in pl.collect_all(queries)]
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path, help="a plain log (e.g. 200k lines)")
    parser.add_argument("kind", choices=("combined", "lpdaac"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    assert pl.thread_pool_size() == 1, "POLARS_MAX_THREADS=1 was not honoured"
    spec = "combined" if args.kind == "combined" else LPDAAC_SPEC
    frame = polars_combined if args.kind == "combined" else polars_lpdaac
    data = list(blocks(args.log))
    lines = sum(block.count(b"\n") for block in data)
    contenders = {"bare loop": bare_loop(BARE[args.kind]),
                  "warmd parse": warmd_parse(spec),
                  "warmd parse + per-line passes": warmd_per_line(spec),
                  "polars parse": lambda block: frame(block).collect(),
                  "polars parse + per-line aggregation": polars_per_line(frame)}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            started = time.process_time()
            for block in data:
                run(block)
            times[name].append((time.process_time() - started) / lines * 1e6)
    print(f"{args.log} ({lines:,} lines, {args.kind}), polars {pl.__version__} on "
          f"{pl.thread_pool_size()} thread, {args.rounds} interleaved rounds, CPU us/line:")
    for name, values in times.items():
        print(f"  {name:<36} {statistics.median(values):.2f} "
              f"({min(values):.2f}-{max(values):.2f})")
    groups, targets = whole_log_groups(frame, data)
    left = 2 * statistics.median(times["bare loop"]) - statistics.median(
        times["polars parse + per-line aggregation"])
    print(f"whole log: {groups / lines:.2f} (target, hour) groups and {targets / lines:.2f} "
          f"distinct targets per line; at 0.5x the bare loop, after the engine's parse and "
          f"aggregation, {left:.2f} us a line are left: {left * lines / groups:.2f} us per "
          f"group or {left * lines / targets:.2f} us per distinct target for all the rest")


if __name__ == "__main__":
    main()
