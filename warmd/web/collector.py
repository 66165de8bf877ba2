"""The scrape-time half of /metrics: Raft, task, plan, ingest and limiter figures read from
the running node when Prometheus asks, so nothing is counted twice and nothing goes stale.

Runs on the event loop (the state it reads is the loop's), so it only reads: no copies of
the task table, one pass over what it exports. Label values are bounded (`metrics.py`):
templates per log source are capped at `patterns_max` with an `other` series.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from warmd.cache.base import BackendStats
from warmd.cache.effect import TaskEffect
from warmd.metrics import OTHER, peer_label, target_label, trigger_label
from warmd.runtime.ingest.pipeline import SourceStatus
from warmd.runtime.node.status import DriverStatus
from warmd.runtime.node.transport import TransportStatistics
from warmd.statemachine.state import MachineState

PATTERNS_MAX = 100  # series per log source; the rest are summed into `other`


@dataclass(frozen=True, slots=True)
class NodeReaders:
    """How the collector reads a node; the daemon wires them (tests give their own)."""

    status: Callable[[], DriverStatus]
    state: Callable[[], MachineState]
    proposals_pending: Callable[[], int]
    sources: Callable[[], Sequence[SourceStatus]] = tuple
    transport: Callable[[], TransportStatistics] = TransportStatistics
    cache_stats: Callable[[], Mapping[str, BackendStats]] = dict  # the watcher's latest
    origin_limits: Callable[[], Mapping[str, int]] = dict
    task_effects: Callable[[], Mapping[str, TaskEffect]] = dict  # tasks this node ran, measured
    wall_s: Callable[[], float] = time.time


@dataclass(slots=True)
class PatternSeries:
    """Which templates of one source have a series of their own: the first `limit` seen
    (the most requested first when more arrive at once), kept for the process's life so a
    counter never moves between series. The rest add up in `other`."""

    limit: int = PATTERNS_MAX
    chosen: set[str] = field(default_factory=set)

    def split(self, rows: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
        """(pattern or other, result) -> requests."""
        if len(self.chosen) < self.limit:
            self._choose(rows)
        totals: dict[tuple[str, str], int] = {}
        chosen = self.chosen
        for pattern, result, count in rows:
            key = (pattern if pattern in chosen else OTHER, result)
            totals[key] = totals.get(key, 0) + count
        return totals

    def _choose(self, rows: Sequence[tuple[str, str, int]]) -> None:
        by_pattern: dict[str, int] = {}
        for pattern, _, count in rows:
            if pattern not in self.chosen and pattern != OTHER:
                by_pattern[pattern] = by_pattern.get(pattern, 0) + count
        ranked = sorted(by_pattern, key=lambda p: (-by_pattern[p], p))
        self.chosen.update(ranked[:self.limit - len(self.chosen)])


class NodeCollector(Collector):
    """Collects the node's state at scrape time (see the module docstring)."""

    def __init__(self, readers: NodeReaders, patterns_max: int = PATTERNS_MAX) -> None:
        self.readers = readers
        self.patterns_max = patterns_max
        self._patterns: dict[str, PatternSeries] = {}

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not read a node that is not started yet."""
        return []

    def collect(self) -> Iterator[Metric]:
        status = self.readers.status()
        yield from self._raft(status)
        yield from self._tasks_and_plans(self.readers.state(), status.node_id)
        yield from self._ingest(self.readers.sources())
        yield from self._caches(self.readers.cache_stats())
        limits = GaugeMetricFamily("warmd_origin_concurrency_limit",
                                   "Adaptive concurrency limit of each origin.", labels=["target"])
        for name, limit in self.readers.origin_limits().items():
            limits.add_metric([target_label(name)], limit)
        yield limits

    # ------------------------------------------------------------------ raft

    def _raft(self, status: DriverStatus) -> Iterator[Metric]:
        yield _gauge("warmd_has_leader", "1 if this node knows a leader.", status.leader_id != 0)
        yield _gauge("warmd_is_leader", "1 if this node is the leader.", status.role == "leader")
        yield _gauge("warmd_term", "The current Raft term.", status.term)
        yield _gauge("warmd_commit_index", "The highest log index known committed.",
                     status.commit_index)
        yield _gauge("warmd_applied_index", "The highest log index applied.", status.applied_index)
        yield _gauge("warmd_voters", "Voting members in this node's configuration.",
                     len(status.voters))
        yield CounterMetricFamily("warmd_proposals_committed_total",
                                  "Entries committed (the commit index).", status.commit_index)
        yield CounterMetricFamily("warmd_proposals_applied_total",
                                  "Entries applied (the applied index).", status.applied_index)
        yield _gauge("warmd_proposals_pending", "Proposals waiting to be applied.",
                     self.readers.proposals_pending())
        contact = GaugeMetricFamily("warmd_peer_last_contact_seconds",
                                    "Seconds since a message from the peer.", labels=["peer"])
        lag = GaugeMetricFamily("warmd_peer_lag_entries",
                                "Entries the peer lacks (on the leader).", labels=["peer"])
        for peer in status.peers:
            if peer.node_id == status.node_id:
                continue
            label = [peer_label(str(peer.node_id))]
            if peer.last_contact_s is not None:
                contact.add_metric(label, peer.last_contact_s)
            if peer.match_index is not None:
                lag.add_metric(label, max(0, status.last_index - peer.match_index))
        yield contact
        yield lag
        failures = CounterMetricFamily("warmd_peer_send_failures",
                                       "Messages to the peer dropped unsent.", labels=["peer"])
        for node_id, counters in self.readers.transport().peers.items():
            if node_id:
                failures.add_metric([peer_label(str(node_id))], counters.dropped)
        yield failures

    # ------------------------------------------------------------------ tasks and plans

    def _plan_waste(self, state: MachineState) -> Metric:
        """Of the sampled keys of the tasks this node ran for the newest plan it measured,
        the share never read in the effect window (the node that ran a task measures it)."""
        waste = GaugeMetricFamily(
            "warmd_plan_waste_ratio",
            "Share of the newest measured plan's warmed keys (sampled, tasks this node ran) "
            "never read in the effect window.")
        effects = self.readers.task_effects()
        for plan in sorted(state.plans.values(), key=lambda plan: plan.index, reverse=True):
            measured = [effects[task_id] for task_id in plan.task_ids if task_id in effects]
            sampled = sum(effect.sampled_keys for effect in measured)
            if sampled:
                read = sum(effect.keys_read_in_window + effect.keys_gone for effect in measured)
                waste.add_metric([], (sampled - read) / sampled)
                break
        return waste

    def _tasks_and_plans(self, state: MachineState, node_id: int) -> Iterator[Metric]:
        tasks = GaugeMetricFamily("warmd_tasks", "Tasks in the replicated state, by state.",
                                  labels=["state"])
        for task_state, ids in state.by_state.items():
            tasks.add_metric([task_state.value.lower()], len(ids))
        yield tasks
        keys = GaugeMetricFamily("warmd_plan_keys", "Requests in the newest plan per trigger.",
                                 labels=["trigger"])
        delta = GaugeMetricFamily(
            "warmd_warmup_effect_hit_ratio_delta",
            "Hit ratio after the newest measured warm-up minus before it.", labels=["target"])
        newest_by_trigger: dict[str, int] = {}
        effects: dict[str, float] = {}
        for plan in sorted(state.plans.values(), key=lambda plan: plan.index):
            newest_by_trigger[trigger_label(plan.trigger)] = plan.requests
            effect = plan.effect
            if effect is not None and effect.before_hit_rate is not None \
                    and effect.after_hit_rate is not None:
                effects[target_label(effect.cache)] = effect.after_hit_rate - effect.before_hit_rate
        for trigger, requests in newest_by_trigger.items():
            keys.add_metric([trigger], requests)
        for cache, value in effects.items():
            delta.add_metric([cache], value)
        yield keys
        yield delta
        yield self._plan_waste(state)
        summary_bytes = sum(len(record.data) for record in state.summaries.values()
                            if record.node_id == node_id)
        yield _gauge("warmd_summary_bytes", "Bytes of this node's summaries in the state.",
                     summary_bytes)

    # ------------------------------------------------------------------ ingest

    def _ingest(self, sources: Sequence[SourceStatus]) -> Iterator[Metric]:
        lines = CounterMetricFamily("warmd_log_lines", "Log lines summarised, by result.",
                                    labels=["source", "result"])
        lag = GaugeMetricFamily("warmd_log_lag_seconds",
                                "Seconds the oldest unshipped lines have waited.",
                                labels=["source"])
        requests = CounterMetricFamily(
            "warmd_cache_requests", "Requests in the logs per template and cache result.",
            labels=["target", "pattern", "result"])
        now_ms = self.readers.wall_s() * 1000
        for source in sources:
            lines.add_metric([source.name, "ok"], source.lines)
            lines.add_metric([source.name, "malformed"], source.malformed)
            waited_ms = 0.0 if source.pending_since_ms is None else now_ms - source.pending_since_ms
            lag.add_metric([source.name], max(0.0, waited_ms) / 1000)
            series = self._patterns.setdefault(source.name, PatternSeries(self.patterns_max))
            for (pattern, result), count in series.split(source.cache_requests).items():
                requests.add_metric([source.name, pattern, result], count)
        yield lines
        yield lag
        yield requests


    # ------------------------------------------------------------------ watched caches

    def _caches(self, stats: Mapping[str, BackendStats]) -> Iterator[Metric]:
        """The watched caches' own counters (every node watches: the same on each)."""
        requests = CounterMetricFamily(
            "warmd_cache_server_requests", "Lookups the cache server counted, hit or miss.",
            labels=["target", "result"])
        keys = GaugeMetricFamily("warmd_cache_keys", "Keys the cache server holds.",
                                 labels=["target"])
        evictions = CounterMetricFamily("warmd_cache_evictions",
                                        "Keys the cache server evicted.", labels=["target"])
        for name, backend in stats.items():
            target = target_label(name)
            requests.add_metric([target, "hit"], backend.hits)
            requests.add_metric([target, "miss"], backend.misses)
            keys.add_metric([target], sum(node.keys for node in backend.nodes))
            evictions.add_metric([target], sum(node.evictions for node in backend.nodes))
        yield requests
        yield keys
        yield evictions


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))
