"""The daemon's metric registry: the event counters and histograms every wing records into.

Figures that are state (term, indexes, task counts, log lines) are read at scrape time by
`warmd.web.collector`; only events that leave no state behind (a failed proposal, an fsync,
a finished task) are counted here, each by a one-line call where it happens. Imports nothing
from the shell, so every wing may import it without a cycle. Label values are bounded:
`BoundedLabels` keeps the first values seen and folds the rest into `other`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from warmd import __version__
from warmd.raft.types import Message, MessageType

OTHER = "other"
TARGET_LABELS_MAX = 64  # cache targets come from the config; a typo'd SubmitTask must not grow it
PEER_LABELS_MAX = 64
TRIGGER_LABELS_MAX = 64

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, resident memory, open fds

# Disk and commit latencies (etcd's buckets: 1 ms .. 8 s, doubling).
_DISK_BUCKETS = tuple(0.001 * 2 ** power for power in range(14))
_TASK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

PROPOSALS_FAILED = Counter(
    "warmd_proposals_failed_total", "Proposals that were not applied, by reason.",
    ["reason"], registry=REGISTRY)
LEADER_CHANGES = Counter(
    "warmd_leader_changes_seen_total", "Leader changes this node has seen.", registry=REGISTRY)
WAL_FSYNC = Histogram(
    "warmd_wal_fsync_duration_seconds", "Time to write and sync one Ready to the log.",
    buckets=_DISK_BUCKETS, registry=REGISTRY)
COMMIT_DURATION = Histogram(
    "warmd_commit_duration_seconds",
    "Time to handle one Ready: persist, send, apply, advance.",
    buckets=_DISK_BUCKETS, registry=REGISTRY)
SNAPSHOT_DURATION = Histogram(
    "warmd_snapshot_duration_seconds", "Time to take one snapshot of the applied state.",
    buckets=_DISK_BUCKETS, registry=REGISTRY)
TASKS_FINISHED = Counter(
    "warmd_tasks_finished_total", "Tasks this node ran to an end, by outcome.",
    ["target_kind", "outcome"], registry=REGISTRY)
TASK_DURATION = Histogram(
    "warmd_task_duration_seconds", "Run time of the tasks this node finished.",
    buckets=_TASK_BUCKETS, registry=REGISTRY)
TASK_QUEUE_WAIT = Histogram(
    "warmd_task_queue_wait_seconds", "Time from a task's submission to its start here.",
    buckets=_TASK_BUCKETS, registry=REGISTRY)
WARM_KEYS = Counter(
    "warmd_warm_keys_total", "Keys this node warmed, by target and outcome.",
    ["target", "outcome"], registry=REGISTRY)
WARM_BYTES = Counter(
    "warmd_warm_bytes_total", "Bytes this node wrote into caches.", ["target"],
    registry=REGISTRY)
WARM_REQUEST_DURATION = Histogram(
    "warmd_warm_request_duration_seconds", "Origin request latency while warming.",
    ["target_kind"], buckets=_REQUEST_BUCKETS, registry=REGISTRY)
HTTP_REQUESTS = Counter(
    "warmd_http_requests_total", "HTTP requests served by the web server.",
    ["route", "method", "code"], registry=REGISTRY)
HTTP_DURATION = Histogram(
    "warmd_http_request_duration_seconds", "HTTP request handling time.", ["route"],
    buckets=_REQUEST_BUCKETS, registry=REGISTRY)
AUTH_FAILURES = Counter(
    "warmd_auth_failures_total", "Web requests refused for their credentials.", ["reason"],
    registry=REGISTRY)
PEER_ROUND_TRIP = Histogram(
    "warmd_peer_round_trip_time_seconds", "From a heartbeat to the peer's answer (leader).",
    ["peer"], buckets=_REQUEST_BUCKETS, registry=REGISTRY)
BUILD_INFO = Gauge("warmd_build_info", "Always 1; the version in a label.", ["version"],
                   registry=REGISTRY)
BUILD_INFO.labels(version=__version__).set(1)


class BoundedLabels:
    """Label values as given for the first `limit` distinct ones, `other` for the rest.

    Sticky: a value keeps its own series forever once it has one, so a counter never moves
    between series (which Prometheus would read as a reset). Thread-safe.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if value in self._known:
            return value
        with self._lock:
            if len(self._known) >= self.limit:
                return OTHER
            self._known.add(value)
            return value

    def knows(self, value: str) -> bool:
        """Whether `value` has a series of its own."""
        return value in self._known


target_label = BoundedLabels(TARGET_LABELS_MAX)
peer_label = BoundedLabels(PEER_LABELS_MAX)
trigger_label = BoundedLabels(TRIGGER_LABELS_MAX)

_FAILURE_REASONS = {
    "ProposalDropped": "dropped", "NotLeader": "not_leader", "ProposalTimeout": "timeout",
    "DriverStopped": "stopped",
}


def proposal_failed(error: BaseException) -> None:
    """Count a proposal that failed with `error` (a bounded reason from its class)."""
    PROPOSALS_FAILED.labels(reason=_FAILURE_REASONS.get(type(error).__name__, OTHER)).inc()


class _LeaderTracker:
    """Counts a change whenever a different, known leader is seen."""

    def __init__(self) -> None:
        self.leader_id = 0

    def seen(self, leader_id: int) -> None:
        if leader_id and leader_id != self.leader_id:
            LEADER_CHANGES.inc()
        if leader_id:
            self.leader_id = leader_id


leader_seen = _LeaderTracker().seen


def task_finished(target: str, target_kind: str, outcome: str, duration_s: float,
                  keys_ok: int, keys_failed: int, bytes_written: int) -> None:
    """Record one task run that ended here (its keys and bytes by target)."""
    target = target_label(target)
    TASKS_FINISHED.labels(target_kind=target_kind or OTHER, outcome=outcome.lower()).inc()
    TASK_DURATION.observe(max(0.0, duration_s))
    WARM_KEYS.labels(target=target, outcome="ok").inc(keys_ok)
    WARM_KEYS.labels(target=target, outcome="failed").inc(keys_failed)
    WARM_BYTES.labels(target=target).inc(bytes_written)


def task_started(queue_wait_s: float) -> None:
    TASK_QUEUE_WAIT.observe(max(0.0, queue_wait_s))


def warm_request(target_kind: str, duration_s: float) -> None:
    WARM_REQUEST_DURATION.labels(target_kind=target_kind or OTHER).observe(duration_s)


class HeartbeatTimer:
    """Peer round trips: a heartbeat's send time per peer (one at a time), matched with that
    peer's next heartbeat answer. Sends are looked at until one heartbeat is found, then not
    for SAMPLE_INTERVAL_S: the leader's send path is its busiest, so this samples."""

    SAMPLE_INTERVAL_S = 1.0
    FORGET_AFTER_S = 2.0  # an answer later than this is lost, not a round trip

    def __init__(self) -> None:
        self._sent_s: dict[int, float] = {}
        self._next_sample_s = 0.0

    def sent(self, messages: Sequence[Message], now_s: float) -> None:
        if now_s < self._next_sample_s:
            return
        if self._sent_s:
            self._sent_s = {peer: at_s for peer, at_s in self._sent_s.items()
                            if now_s - at_s < self.FORGET_AFTER_S}
        for message in messages:
            if message.type == MessageType.HEARTBEAT:
                self._sent_s.setdefault(message.to, now_s)
                self._next_sample_s = now_s + self.SAMPLE_INTERVAL_S

    def received(self, message: Message, now_s: float) -> None:
        if message.type == MessageType.HEARTBEAT_RESPONSE:
            sent_s = self._sent_s.pop(message.from_id, None)
            if sent_s is not None:
                PEER_ROUND_TRIP.labels(peer=peer_label(str(message.from_id))).observe(
                    now_s - sent_s)


heartbeats = HeartbeatTimer()


def bucket_quantile(buckets: Sequence[tuple[float, float]], fraction: float) -> float | None:
    """The upper bound of the first cumulative bucket `(le, count)` that holds `fraction`
    of the samples; None before any sample."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] == 0:
        return None
    wanted = fraction * ordered[-1][1]
    return next((bound for bound, count in ordered if count >= wanted), None)


def histogram_quantile(histogram: Histogram, fraction: float) -> float | None:
    """A quantile of one of this process's histograms (since it started), in its unit."""
    buckets = [(float(sample.labels["le"]), sample.value) for family in histogram.collect()
               for sample in family.samples if sample.name.endswith("_bucket")]
    return bucket_quantile(buckets, fraction)
