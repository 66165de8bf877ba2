"""Reading logs (plain or gzip) and summarising them in worker processes, off the event loop.

`summarise_files` cuts each file (plain, or the content of a gzip file) into one byte range per
worker, parses and summarises each range in a process pool (one worker per core by default) and
merges the partial summaries in order as they come, so a daemon's heartbeat never waits behind
a parse. `AnalysisWorker` is the long-lived form the daemon uses: lines in, summaries out, in a
separate process.
"""

from __future__ import annotations

import gc
import gzip
import io
import math
import multiprocessing
import os
import queue
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice, pairwise
from typing import Any, TypeVar

from warmd.analysis.formats import (
    Columns,
    LineParser,
    LogFormat,
    Record,
    detect_format,
    format_from_spec,
    parse_columns,
    parse_text,
)
from warmd.analysis.summary import Summary, SummaryConfig
from warmd.analysis.wire import SHIPPED_BYTES_MAX, encode_summary
from warmd.errors import ConfigError, WarmdError
from warmd.runtime.ingest.cache_requests import CacheRequestTally, Row

CHUNK_LINES = 20_000
BLOCK_BYTES = 4_000_000  # about 25k combined-log lines

_T = TypeVar("_T")
# A file's byte range to summarise, and the time before which its requests count (None: all).
_Range = tuple[str, int, int | None, LogFormat, SummaryConfig, float | None]


def open_log(path: str) -> io.TextIOBase:
    """Open a log as text, gunzipping when it starts with the gzip magic bytes.

    Raises:
        ConfigError: the file cannot be opened.
    """
    try:
        with open(path, "rb") as probe:
            magic = probe.read(2)
        if magic == b"\x1f\x8b":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
        return open(path, encoding="utf-8", errors="replace")
    except OSError as error:
        raise ConfigError(f"cannot read log {path}: {error.strerror or error}") from error


def iter_lines(paths: Sequence[str]) -> Iterator[str]:
    """Every line of every file, in order.

    Raises:
        ConfigError: a file cannot be read, or its gzip stream is damaged or cut short.
    """
    for path in paths:
        with _reading(path), open_log(path) as handle:
            yield from handle


@contextmanager
def _reading(path: str) -> Iterator[None]:
    """Turn the errors of reading a log (a damaged or truncated gzip stream too) into a
    ConfigError naming the file, instead of a traceback from the middle of the analysis."""
    try:
        yield
    except (OSError, EOFError, zlib.error) as error:
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(f"cannot read log {path}: {reason}") from error


def estimate_lines(paths: Sequence[str], sample_lines: int = 2_000) -> int | None:
    """About how many lines the logs hold, for the progress bar's time left: each file's
    size (a gzip file's own record of its uncompressed size) over the mean length of its
    first lines. None when a file cannot be read or is empty."""
    total = 0.0
    for path in paths:
        try:
            size = _uncompressed_size(path)
            with open_log(path) as handle:
                sample = list(islice(handle, sample_lines))
        except (OSError, ConfigError):
            return None
        sample_bytes = sum(len(line.encode("utf-8", "replace")) for line in sample)
        if sample_bytes:
            total += size * len(sample) / sample_bytes
    return round(total) or None


def _uncompressed_size(path: str) -> int:
    """The file's size, or for gzip the ISIZE trailer (the size modulo 4 GiB of the last
    member: exact for the usual single-member logs under 4 GiB)."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return os.path.getsize(path)
        handle.seek(-4, os.SEEK_END)
        return int.from_bytes(handle.read(4), "little")


def resolve_format(paths: Sequence[str], spec: str | None) -> LogFormat:
    """The format named by `spec`, or the one detected from the first lines of the logs."""
    if spec:
        return format_from_spec(spec)
    return detect_format(islice(iter_lines(paths), 200))


@dataclass(frozen=True)
class ParsedLog:
    """Every record of some logs, sorted by time, with the malformed-line count and samples."""

    records: list[Record]
    malformed: int
    malformed_samples: tuple[str, ...]
    log_format: LogFormat


def read_records(paths: Sequence[str], spec: str | None = None,
                 progress: Callable[[int], None] | None = None) -> ParsedLog:
    """Parse whole logs into memory (for predict and backtest, which need the lines)."""
    log_format = resolve_format(paths, spec)
    parser = LineParser(log_format)
    records: list[Record] = []
    for chunk in _chunks(iter_lines(paths), CHUNK_LINES):
        records.extend(parser.parse_many(chunk))
        if progress is not None:
            progress(len(chunk))
    records.sort(key=lambda record: record.time_s)
    return ParsedLog(records, parser.malformed, tuple(parser.malformed_samples), log_format)


def summarise_records(records: Iterable[Record], config: SummaryConfig | None = None,
                      malformed: int = 0, samples: Sequence[str] = ()) -> Summary:
    """A summary of already-parsed records, in chunks (bounded temporary memory)."""
    summary = Summary(config)
    with summary.windowed() as add:
        for chunk in _chunks(iter(records), CHUNK_LINES):
            add([r.target for r in chunk], [r.time_s for r in chunk], [r.method for r in chunk],
                [r.status for r in chunk], [r.client for r in chunk], [r.agent for r in chunk])
    summary.malformed = malformed
    summary.malformed_samples = list(samples[:5])
    return summary


def _chunks(lines: Iterator, size: int) -> Iterator[list]:
    while True:
        chunk = list(islice(lines, size))
        if not chunk:
            return
        yield chunk


def astuple_shallow(columns: Columns) -> tuple[list, ...]:
    """The columns in Summary.add_columns order (dataclasses.astuple would deep-copy)."""
    return (columns.targets, columns.times_s, columns.methods, columns.statuses,
            columns.clients, columns.agents)


def summarise_files(paths: Sequence[str], spec: str | None = None,
                    config: SummaryConfig | None = None, workers: int | None = None,
                    progress: Callable[[int], None] | None = None,
                    until_s: float | None = None) -> Summary:
    """Parse and summarise logs with one process per core; merge the parts in log order.
    With `until_s`, only the requests made before it are summarised (the lines after it
    are still read: a log need not be in time order); malformed lines count either way.

    Each file is cut into one byte range per worker, each read by its own process (no lines
    cross a pipe). A gzip file is cut by its uncompressed size: each worker decompresses it
    from the start and skips to its range (decompressing costs far less than parsing), so a
    gzip log gives the summary of the same log in plain text.
    """
    config = config or SummaryConfig()
    log_format = resolve_format(paths, spec)
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        return _summarise_serially(paths, log_format, config, progress, until_s)
    return _summarise_ranges(paths, log_format, config, workers, progress, until_s)


def _is_gzip(path: str) -> bool:
    try:
        with open(path, "rb") as probe:
            return probe.read(2) == b"\x1f\x8b"
    except OSError as error:
        raise ConfigError(f"cannot read log {path}: {error.strerror or error}") from error


def _summarise_serially(paths: Sequence[str], log_format: LogFormat, config: SummaryConfig,
                        progress: Callable[[int], None] | None,
                        until_s: float | None = None) -> Summary:
    summary = Summary(config)
    parser = LineParser(log_format)
    with _collector_paused(), summary.windowed() as add:
        for chunk in _chunks(iter_lines(paths), CHUNK_LINES):
            add(*astuple_shallow(parse_columns(parser, chunk).before(until_s)))
            if progress is not None:
                progress(len(chunk))
    summary.malformed = parser.malformed
    summary.malformed_samples = list(parser.malformed_samples)
    return summary


def file_ranges(path: str, workers: int) -> list[tuple[int, int | None]]:
    """The byte ranges [start, end) of the file's (uncompressed) content for `workers`
    processes; None ends a range at the end of the content. A gzip file's recorded size may
    be short of its content (a stream of several members, or over 4 GiB), so its last range
    always runs to the end."""
    with _reading(path):
        size = _uncompressed_size(path)
    bounds = [size * part // workers for part in range(workers + 1)]
    ranges: list[tuple[int, int | None]] = [
        (start, end) for start, end in pairwise(bounds) if end > start]
    if _is_gzip(path):
        ranges[-1:] = [(ranges[-1][0] if ranges else 0, None)]
    return ranges


def _summarise_ranges(paths: Sequence[str], log_format: LogFormat, config: SummaryConfig,
                      workers: int, progress: Callable[[int], None] | None,
                      until_s: float | None = None) -> Summary:
    """The ranges' summaries merged in log order as they come: the main process holds the
    total and at most the parts that arrived ahead of their turn, never all of them."""
    jobs: list[_Range] = [(path, start, end, log_format, config, until_s) for path in paths
                          for start, end in file_ranges(path, workers)]
    context = multiprocessing.get_context("forkserver")
    done = context.Value("q", 0)
    total = Summary(config)
    reported = 0
    with context.Pool(workers, initializer=_set_counter, initargs=(done,)) as pool:
        parts = pool.imap(_summarise_range, jobs)
        for _ in jobs:
            while True:
                try:
                    part = parts.next(0.2)
                    break
                except multiprocessing.TimeoutError:
                    reported = _report(progress, done.value, reported)
            total.merge(part)
            del part  # merged: its memory goes back before the next part is taken
    _report(progress, done.value, reported)
    return total


def _report(progress: Callable[[int], None] | None, done: int, reported: int) -> int:
    """Tell `progress` the lines done since the last report; the lines reported now."""
    if progress is not None and done > reported:
        progress(done - reported)
        return done
    return reported


_COUNTER: list[Any] = []


def _set_counter(counter: Any) -> None:
    _COUNTER[:] = [counter]


def _summarise_range(job: _Range) -> Summary:
    """The lines that start in [start, end) of a file's content, in one summary."""
    path, start, end, log_format, config, until_s = job
    parser = LineParser(log_format)
    summary = Summary(config)
    with _collector_paused(), _reading(path), summary.windowed() as add:
        for text in _range_blocks(path, start, end):
            add(*astuple_shallow(parse_text(parser, text).before(until_s)))
            if _COUNTER:
                with _COUNTER[0].get_lock():
                    _COUNTER[0].value += text.count("\n")
    summary.malformed = parser.malformed
    summary.malformed_samples = list(parser.malformed_samples)
    summary.drop_caches()  # the pool pickles it next
    return summary


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a worker (or the one-process path)
    summarises.

    The parse makes hundreds of thousands of short-lived tuples and strings per block, which
    trigger collections that walk every live object (the summary, its caches) for nothing:
    none of them forms a cycle, reference counting frees them. About a tenth of the time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _range_blocks(path: str, start: int, end: int | None,
                  block_bytes: int = BLOCK_BYTES) -> Iterator[str]:
    """The lines that start in [start, end) of the file's content (to its end when `end` is
    None), as decoded blocks of whole lines (one decode and one regex pass per block instead
    of one per line). A gzip file's content is decompressed from the start (seeking forward
    in a gzip stream reads through it)."""
    opener = gzip.open if _is_gzip(path) else open
    limit = math.inf if end is None else end
    with opener(path, "rb") as handle:
        if start:
            handle.seek(start - 1)
            handle.readline()  # the line in progress at `start` belongs to the range before
        position = handle.tell()
        while position < limit:
            block = handle.read(int(min(block_bytes, limit - position)))
            if not block:
                return
            if not block.endswith(b"\n"):
                block += handle.readline()  # finish the last line that starts in the range
            position += len(block)
            yield block.decode("utf-8", "replace")


@dataclass(frozen=True)
class EncodedSnapshot:
    """A worker's summary in wire form, with the counts the daemon shows in its status."""

    lines: int
    malformed: int
    malformed_samples: tuple[str, ...]
    data: bytes
    cache_requests: tuple[Row, ...] = ()  # (pattern, result, requests) since the worker began


def _encoded(summary: Summary, tally: CacheRequestTally) -> EncodedSnapshot | Exception:
    """The worker's reply: the encoded summary, or the encoding error (sent, not raised)."""
    try:
        data = encode_summary(summary, SHIPPED_BYTES_MAX)
    except WarmdError as error:
        return error
    return EncodedSnapshot(summary.lines, summary.malformed,
                           tuple(summary.malformed_samples), data, tally.rows())


class AnalysisWorker:
    """A long-lived analysis process: the daemon feeds it lines and asks for summaries.

    Feeding never blocks on parsing (the lines go through a pipe to the other process), so the
    event loop's heartbeats never wait behind a parse. `snapshot()` returns the summary so far.
    """

    def __init__(self, log_format: LogFormat, config: SummaryConfig | None = None) -> None:
        context = multiprocessing.get_context("forkserver")
        self._requests = context.Queue()
        self._replies = context.Queue()
        self._process = context.Process(
            target=_worker_loop, args=(log_format, config or SummaryConfig(), self._requests,
                                       self._replies), daemon=True, name="warmd-analysis")
        self._process.start()

    @property
    def pid(self) -> int | None:
        """The worker's process id."""
        return self._process.pid

    def feed(self, lines: list[str]) -> None:
        """Queue lines for parsing (returns at once)."""
        self._requests.put(("lines", lines))

    def snapshot(self, timeout_s: float = 30.0) -> Summary:
        """The summary of every line fed so far.

        Raises:
            TimeoutError: the worker did not answer in time.
        """
        return self._ask("snapshot", Summary, timeout_s)

    def snapshot_encoded(self, timeout_s: float = 30.0) -> EncodedSnapshot:
        """The summary so far, encoded for the wire by the worker itself: encoding a big
        summary takes ~0.1 s of CPU, which must not be the daemon's (its event loop shares
        the interpreter lock with the thread that would do it).

        Raises:
            TimeoutError: the worker did not answer in time.
        """
        return self._ask("snapshot_encoded", EncodedSnapshot, timeout_s)

    def _ask(self, kind: str, answer: type[_T], timeout_s: float) -> _T:
        self._requests.put((kind, None))
        try:
            reply = self._replies.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError("analysis worker did not answer") from None
        if isinstance(reply, BaseException):
            raise reply
        if not isinstance(reply, answer):
            raise TypeError(f"analysis worker answered {kind} with {type(reply).__name__}")
        return reply

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to exit and wait for it (terminating it if it does not)."""
        if self._process.is_alive():
            self._requests.put(("stop", None))
            self._process.join(timeout_s)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout_s)
        self._requests.close()
        self._replies.close()


def _worker_loop(log_format: LogFormat, config: SummaryConfig, requests: Any,
                 replies: Any) -> None:
    parser = LineParser(log_format)
    summary = Summary(config)
    tally = CacheRequestTally()
    while True:
        kind, payload = requests.get()
        if kind == "lines":
            columns = parse_columns(parser, payload)
            summary.add_columns(*astuple_shallow(columns))
            tally.add(payload, columns.targets, lambda t: summary.split(t)[0].template.pattern)
        elif kind in ("snapshot", "snapshot_encoded"):
            summary.malformed = parser.malformed
            summary.malformed_samples = list(parser.malformed_samples)
            replies.put(summary if kind == "snapshot" else _encoded(summary, tally))
        else:
            return
