"""Every node's log pipeline: tail the `[sources.*]` logs, summarise them off the event loop,
and ship each source's summary through Raft (`ReportSummary`) for the leader to plan from.

One `AnalysisWorker` process per source does the parsing, so a heartbeat never waits behind
a regex; file reads and snapshots run in threads and are bounded per poll. A summary is
cumulative (everything read since this daemon started) and replaces the node's previous
report of that source, so a lost or refused report costs nothing but freshness: the next
interval ships again. Sequences start at the wall clock in ms, so the reports of a restarted
node are newer than those of its previous life.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from warmd.analysis.formats import JSON_FIELDS, LogFormat, detect_format, format_from_spec
from warmd.analysis.summary import Summary, SummaryConfig
from warmd.clock import Clock, SystemClock
from warmd.config import AnalysisConfig, SourceConfig
from warmd.errors import ConfigError, InvariantViolation
from warmd.logging import get_logger
from warmd.runtime.ingest.cache_requests import Row
from warmd.runtime.ingest.cadence import Cadence, ship_due
from warmd.runtime.ingest.tailer import LogTailer
from warmd.runtime.ingest.worker import AnalysisWorker, EncodedSnapshot
from warmd.statemachine.summaries import ReportSummary

_log = get_logger("warmd.log_pipeline")

# A big backlog is read over several polls, at most READ_CHUNKS_PER_POLL chunks per source and
# poll (but one of every file at least). Each chunk is split into lines holding the GIL, so it
# is kept small: event-loop lag while reading was ~6 ms with 1 MiB chunks, ~20 ms with 4 MiB.
READ_CHUNK_BYTES = 1 << 20
READ_CHUNKS_PER_POLL = 8
FEED_LINES = 2000  # lines per message to a worker: each is pickled holding the GIL, keep it short
DETECT_LINES = 100  # lines collected before a `format = "auto"` source's format is detected
VANISHED_FILE_GRACE_S = 60.0  # a glob match that disappeared is dropped after this long
SNAPSHOT_TIMEOUT_S = 60.0
# How long the inode of a file rotated away is remembered, to recognise it under a new name
# that does not look rotated (`app.log` renamed to `app-2026-11-28.log`, matched by `*.log`).
RETIRED_INODE_MEMORY_S = 3600.0
# Rotated copies that a glob such as `access.log*` also matches: their lines were read from
# the live file before it was rotated, so tailing them would count those lines twice.
_ROTATED_NAME = re.compile(r"(\.\d+|-\d{8,10})?(\.(gz|bz2|xz|zst))?$")


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source as `warmctl` shows it; `lines`/`malformed` are as of the last snapshot."""

    name: str
    files: tuple[str, ...]  # the files being tailed now
    lines: int  # well-formed lines summarised
    malformed: int  # lines skipped as malformed
    malformed_samples: tuple[str, ...]
    last_shipped_ms: int | None  # wall-clock ms of the last report the cluster accepted
    last_error: str | None  # the last read, detection, snapshot or propose failure; None after
    # a successful ship
    lines_read: int = 0  # lines read from the files so far (ahead of `lines` between ships)
    cache_requests: tuple[Row, ...] = ()  # (pattern, result, requests) as of the last snapshot
    pending_since_ms: int | None = None  # wall-clock ms since lines wait to be shipped; None: none


def source_format(source: SourceConfig) -> LogFormat | None:
    """The LogFormat of a configured source; None for `auto` (detected from the first lines).

    The config calls the request target `path` (a regex group or a JSON field); the parser
    calls it `target`, so the alias is translated here.

    Raises:
        ConfigError: the pattern or fields cannot be parsed (the config checks this already).
    """
    if source.format == "auto":
        return None
    if source.format == "regex":
        pattern = source.pattern or ""
        if "target" not in re.compile(pattern).groupindex:
            pattern = pattern.replace("(?P<path>", "(?P<target>").replace("(?P=path)",
                                                                           "(?P=target)")
        return format_from_spec("regex:" + pattern)
    if source.format == "json":
        fields = dict(JSON_FIELDS)
        for ours, theirs in source.fields:
            fields["target" if ours == "path" else ours] = (theirs,)
        return LogFormat("json", "json", json_fields=fields)
    return format_from_spec(source.format)


def own_traffic_excluded(user_agents: Sequence[str],
                         base: SummaryConfig | None = None) -> SummaryConfig:
    """A summary config that leaves warmd's own warm-up requests out of the warm sets, as it
    does bots: replayed requests reach the service's access log, and learning them back as
    demand would inflate exactly what warmd just warmed (a feedback loop)."""
    base = base or SummaryConfig()
    if not user_agents:
        return base
    own = "|".join(re.escape(agent) for agent in user_agents)
    return replace(base, bot_pattern=f"{base.bot_pattern}|{own}")


def _is_rotated_copy(path: str) -> bool:
    match = _ROTATED_NAME.search(path)
    return match is not None and match.group(0) != ""


@dataclass(slots=True)
class _Source:
    """The pipeline's mutable state for one source (touched by one thread at a time)."""

    config: SourceConfig
    log_format: LogFormat | None
    tailers: dict[str, LogTailer] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # sorted tailer paths, replaced whole (status() reads it)
    missing_since_s: dict[str, float] = field(default_factory=dict)
    retired_inodes: dict[int, float] = field(default_factory=dict)  # rotated away, and when
    ignored: dict[str, int] = field(default_factory=dict)  # glob matches found to be rotated
    worker: AnalysisWorker | None = None
    detect_buffer: list[str] = field(default_factory=list)
    lines_read: int = 0
    lines_shipped: int = 0  # lines_read when the last accepted report was snapshotted
    lines: int = 0
    malformed: int = 0
    malformed_samples: tuple[str, ...] = ()
    cache_requests: tuple[Row, ...] = ()
    pending_since_ms: int | None = None
    last_shipped_ms: int | None = None
    last_ship_s: float | None = None  # monotonic time of the last accepted report
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class _Snapshot:
    lines_read: int
    lines: int
    malformed: int
    malformed_samples: tuple[str, ...]
    data: bytes




class LogPipeline:
    """Tails every source of this node and ships its summaries; `run()` until cancelled.

    `propose` submits a command through Raft (any exception, e.g. no leader, is logged and
    the report retried next interval); `encode`, when given, turns a Summary into the bytes
    shipped, here in this process (tests); by default each source's worker process encodes
    the wire form (warmd.analysis.wire) itself, off the event loop.
    """

    def __init__(self, node_id: int, sources: Sequence[SourceConfig], settings: AnalysisConfig,
                 propose: Callable[[ReportSummary], Awaitable[Any]],
                 encode: Callable[[Summary], bytes] | None = None, *,
                 clock: Clock | None = None, wall_ms: Callable[[], int] | None = None,
                 summary_config: SummaryConfig | None = None,
                 read_chunk_bytes: int = READ_CHUNK_BYTES) -> None:
        names = [source.name for source in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        if read_chunk_bytes < 1:
            raise ValueError(f"read_chunk_bytes must be at least 1, got {read_chunk_bytes}")
        self.node_id = node_id
        self.settings = settings
        self._propose = propose
        self._encode = encode
        self._clock = clock or SystemClock()
        self._wall_ms = wall_ms or self._clock.wall_ms
        self._summary_config = summary_config
        self._read_chunk_bytes = read_chunk_bytes
        self._sources = [_Source(source, source_format(source)) for source in sources]
        self._cadence = Cadence(settings.ship_interval_ms / 1000,
                                settings.ship_interval_max_ms / 1000, settings.ship_change_ratio)
        self._sequence = self._wall_ms() - 1
        self._first_poll = True
        self._closed = False
        self._lock = threading.Lock()  # one poll, ship or close at a time

    async def run(self) -> None:
        """Poll every `poll_interval_ms` and ship each source when its cadence says so
        (cadence.py), until cancelled."""
        while True:
            await self.poll_once()
            await self.ship_due()
            await self._clock.sleep(self.settings.poll_interval_ms / 1000)

    async def ship_due(self) -> int:
        """Report the sources whose cadence says a ship is worth it now; how many accepted."""
        now_s = self._clock.monotonic()
        due = [source for source in self._sources if ship_due(
            self._cadence, source.lines_read - source.lines_shipped, source.lines_shipped,
            None if source.last_ship_s is None else now_s - source.last_ship_s)]
        return await self._ship_sources(due)

    async def poll_once(self) -> int:
        """Read what every source's files gained and feed it to the workers; the line count."""
        return await asyncio.to_thread(self._poll_all)

    async def ship_once(self) -> int:
        """Report every source whose lines changed since its last accepted report, whatever
        the cadence; how many reports the cluster accepted."""
        return await self._ship_sources(self._sources)

    async def _ship_sources(self, sources: Sequence[_Source]) -> int:
        accepted = 0
        for source in sources:
            if source.worker is None or source.lines_read == source.lines_shipped:
                continue
            snapshot = await asyncio.to_thread(self._snapshot, source)
            if snapshot is not None and await self._ship(source, snapshot):
                accepted += 1
        return accepted

    def status(self) -> list[SourceStatus]:
        """Every source's files, counts, malformed samples and last ship or error."""
        return [SourceStatus(source.config.name, source.files, source.lines,
                             source.malformed, source.malformed_samples,
                             source.last_shipped_ms, source.last_error, source.lines_read,
                             source.cache_requests, source.pending_since_ms)
                for source in self._sources]

    def worker_pids(self) -> list[int]:
        """The process ids of the running analysis workers (one per source with lines)."""
        return [source.worker.pid for source in self._sources
                if source.worker is not None and source.worker.pid is not None]

    def close(self) -> None:
        """Stop the workers and release the files; blocks up to a few seconds per worker, so
        the daemon calls it in a thread after cancelling `run()`."""
        with self._lock:
            self._closed = True
            for source in self._sources:
                if source.worker is not None:
                    source.worker.stop()
                    source.worker = None
                for tailer in source.tailers.values():
                    tailer.close()
                source.tailers.clear()
                source.files = ()

    # -- reading (in a worker thread) --------------------------------------------------------

    def _poll_all(self) -> int:
        with self._lock:
            if self._closed:
                return 0
            total = 0
            for source in self._sources:
                try:
                    total += self._poll_source(source)
                except Exception as error:  # e.g. no process could be started: next poll
                    self._fail(source, "log_poll_failed", f"{type(error).__name__}: {error}")
            self._first_poll = False
            return total

    def _poll_source(self, source: _Source) -> int:
        self._track_files(source)
        lines = self._read(source)
        source.lines_read += len(lines)
        if lines and source.pending_since_ms is None:
            source.pending_since_ms = self._wall_ms()
        if source.log_format is None:
            lines = self._detect(source, lines)
        if lines:
            self._feed(source, lines)
        return len(lines)

    def _read(self, source: _Source) -> list[str]:
        """One chunk of every file, then more chunks of the files behind while the source's
        budget lasts (so a source with many files still reads a bounded amount per poll)."""
        lines: list[str] = []
        spare_chunks = max(0, READ_CHUNKS_PER_POLL - len(source.tailers))
        for path, tailer in source.tailers.items():
            inode = tailer.inode
            try:
                lines.extend(tailer.poll(self._read_chunk_bytes))
                while not tailer.caught_up and spare_chunks > 0:
                    spare_chunks -= 1
                    lines.extend(tailer.poll(self._read_chunk_bytes))
            except OSError as error:
                self._fail(source, "log_read_failed", f"{path}: {error.strerror or error}")
            if inode is not None and tailer.inode != inode:  # rotated: the old file is done
                source.retired_inodes[inode] = self._clock.monotonic()
        return lines

    def _track_files(self, source: _Source) -> None:
        """Open a tailer for every file the patterns name now; drop globbed files long gone."""
        now_s = self._clock.monotonic()
        for path in self._resolve(source):
            if path not in source.tailers:
                from_start = self.settings.from_start or not self._first_poll
                source.tailers[path] = LogTailer(path, from_start=from_start)
                _log.info("log_file_tailed", source=source.config.name, path=path)
        literal = set(source.config.paths)
        for path in [path for path in source.tailers if path not in literal]:
            if os.path.exists(path):
                source.missing_since_s.pop(path, None)
            elif now_s - source.missing_since_s.setdefault(path, now_s) > VANISHED_FILE_GRACE_S:
                source.tailers.pop(path).close()
                del source.missing_since_s[path]
        source.files = tuple(sorted(source.tailers))

    def _resolve(self, source: _Source) -> list[str]:
        """Literal paths as given (tailed once they exist), and the new glob matches."""
        held = {tailer.inode for tailer in source.tailers.values() if tailer.inode is not None}
        paths: list[str] = []
        matched: set[str] = set()
        for pattern in source.config.paths:
            if not glob.has_magic(pattern):
                paths.append(pattern)
                continue
            for path in sorted(glob.glob(pattern)):
                matched.add(path)
                if path not in source.tailers and self._is_new_file(source, path, held):
                    paths.append(path)
        for path in [path for path in source.ignored if path not in matched]:
            del source.ignored[path]
        return list(dict.fromkeys(paths))

    def _is_new_file(self, source: _Source, path: str, held: set[int]) -> bool:
        """Whether a glob match holds lines not read yet: not a rotated copy by its name, nor
        by its inode (a file this source read under another name, renamed away by a
        rotation), nor a file another tailer reads now (a symlink, two patterns)."""
        if _is_rotated_copy(path) or not os.path.isfile(path):
            return False
        try:
            inode = os.stat(path).st_ino
        except OSError:
            return False
        if inode in held or source.ignored.get(path) == inode:
            return False
        now_s = self._clock.monotonic()
        for old, retired_s in list(source.retired_inodes.items()):
            if now_s - retired_s > RETIRED_INODE_MEMORY_S:
                del source.retired_inodes[old]
        if inode in source.retired_inodes:
            source.ignored[path] = inode
            _log.info("rotated_log_skipped", source=source.config.name, path=path)
            return False
        held.add(inode)
        return True

    def _detect(self, source: _Source, lines: list[str]) -> list[str]:
        """Hold an `auto` source's first lines until there are enough, or for one more poll,
        to detect the format; then hand them all on."""
        waited = bool(source.detect_buffer)
        source.detect_buffer.extend(line for line in lines if line.strip())
        if not source.detect_buffer or (len(source.detect_buffer) < DETECT_LINES and not waited):
            return []
        buffered, source.detect_buffer = source.detect_buffer, []
        try:
            source.log_format = detect_format(buffered[:DETECT_LINES * 2])
        except ConfigError as error:
            self._fail(source, "log_format_undetected",
                       f"{error}; {len(buffered)} lines were dropped")
            return []
        _log.info("log_format_detected", source=source.config.name,
                  format=source.log_format.name)
        return buffered

    def _feed(self, source: _Source, lines: list[str]) -> None:
        if source.worker is not None and not _alive(source.worker):
            # Killed (OOM, an operator): what it had summarised is gone; start again from here.
            self._fail(source, "analysis_worker_died",
                       f"analysis worker {source.worker.pid} exited; restarted, so the summary "
                       "now covers only lines read since")
            source.worker.stop()
            source.worker = None
        if source.worker is None:
            if source.log_format is None:
                raise InvariantViolation(f"source {source.config.name}: fed before its format "
                                         "was known")
            source.worker = AnalysisWorker(source.log_format, self._summary_config)
        for start in range(0, len(lines), FEED_LINES):
            source.worker.feed(lines[start:start + FEED_LINES])

    # -- shipping ----------------------------------------------------------------------------

    def _snapshot(self, source: _Source) -> _Snapshot | None:
        """The worker's summary, encoded (blocking: run in a thread)."""
        with self._lock:
            if self._closed or source.worker is None:
                return None
            if not _alive(source.worker):  # replaced when the next lines are fed
                self._fail(source, "analysis_worker_died",
                           f"analysis worker {source.worker.pid} exited")
                return None
            lines_read = source.lines_read
            try:
                encoded = self._encoded_snapshot(source.worker)
            except Exception as error:  # a worker or encoder failure is reported
                self._fail(source, "summary_snapshot_failed", f"{type(error).__name__}: {error}")
                return None
        source.lines, source.malformed = encoded.lines, encoded.malformed
        source.malformed_samples = encoded.malformed_samples
        source.cache_requests = encoded.cache_requests
        return _Snapshot(lines_read, encoded.lines, encoded.malformed,
                         source.malformed_samples, encoded.data)

    def _encoded_snapshot(self, worker: AnalysisWorker) -> EncodedSnapshot:
        """The daemon's encoder runs in the worker process; another (tests) runs here."""
        if self._encode is None:
            return worker.snapshot_encoded(SNAPSHOT_TIMEOUT_S)
        summary = worker.snapshot(SNAPSHOT_TIMEOUT_S)
        return EncodedSnapshot(summary.lines, summary.malformed,
                               tuple(summary.malformed_samples), self._encode(summary))

    async def _ship(self, source: _Source, snapshot: _Snapshot) -> bool:
        self._sequence = max(self._sequence + 1, self._wall_ms())
        try:
            report = ReportSummary(node_id=self.node_id, source=source.config.name,
                                   sequence=self._sequence, lines=snapshot.lines,
                                   malformed=snapshot.malformed, data=snapshot.data,
                                   now_ms=self._wall_ms())
            await self._propose(report)
        except Exception as error:  # no leader, timeout, refused: retry later
            self._fail(source, "summary_ship_failed", f"{type(error).__name__}: {error}")
            return False
        source.lines_shipped = snapshot.lines_read
        source.last_shipped_ms = report.now_ms
        source.last_ship_s = self._clock.monotonic()
        source.pending_since_ms = None if source.lines_read == snapshot.lines_read else report.now_ms
        source.last_error = None
        _log.debug("summary_shipped", source=source.config.name, sequence=report.sequence,
                   lines=report.lines, malformed=report.malformed, data_bytes=len(report.data))
        return True

    def _fail(self, source: _Source, event: str, reason: str) -> None:
        """Record a failure in the status; log it once, not at every poll while it lasts."""
        if reason != source.last_error:
            _log.warning(event, source=source.config.name, reason=reason)
        source.last_error = reason


def _alive(worker: AnalysisWorker) -> bool:
    """Whether the worker process still exists (the forkserver reaps it when it dies)."""
    if worker.pid is None:
        return False
    try:
        os.kill(worker.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
