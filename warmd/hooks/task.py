"""The plugin contract's task types: what a warm-up task is, its limits, and its result.

They live in `hooks/` so that plugins, the executor and the warm runner share one
definition and the contract depends on nothing in `runtime/`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from warmd.cache.base import KeyFailure
from warmd.errors import ConfigError
from warmd.hooks.base import WarmRequest

ProgressCallback = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LimitConfig:
    """Hard caps come from the rule; the rest tunes how fast the limit moves."""

    concurrency_max: int = 64
    concurrency_min: int = 1
    concurrency_initial: int = 8
    rate_per_s_max: float = 0.0  # 0 means no rate cap
    latency_tolerance: float = 2.0  # slower than this x healthy latency = congestion
    # ...but only when also slower by this much: sub-millisecond jitter of a fast origin
    # (or of our own event loop) is not the origin slowing down.
    latency_slack_s: float = 0.005
    backoff_ratio: float = 0.7
    baseline_window_samples: int = 500
    # The rule's `slo`: at most (1 - percentile) of the recent samples may be slower than
    # the objective, or the limit backs off as on congestion (0: no objective).
    latency_objective_s: float = 0.0
    objective_percentile: float = 99.0

    def validate(self) -> LimitConfig:
        if not 1 <= self.concurrency_min <= self.concurrency_max:
            raise ConfigError("need 1 <= concurrency_min <= concurrency_max")
        if not 0 < self.backoff_ratio < 1:
            raise ConfigError("backoff_ratio must be between 0 and 1")
        if self.latency_tolerance <= 1 or self.rate_per_s_max < 0 or self.latency_slack_s < 0:
            raise ConfigError("latency_tolerance must be > 1, rate_per_s_max and "
                              "latency_slack_s >= 0")
        if self.latency_objective_s < 0 or not 0 < self.objective_percentile < 100:
            raise ConfigError("latency_objective_s must be >= 0 and objective_percentile "
                              "between 0 and 100")
        return self


@dataclass(frozen=True, slots=True)
class WarmLimits:
    """Per-task limits from the rule: origin caps, TTL and jitter, memory guard, retries."""

    origin: LimitConfig = field(default_factory=LimitConfig)
    ttl_s: int = 3600
    ttl_jitter_ratio: float = 0.1  # TTLs spread over [ttl_s * (1 - ratio), ttl_s]
    only_if_absent: bool = False
    batch_keys: int = 1000
    retry_attempts: int = 3
    retry_backoff_s: float = 0.05
    memory_fill_slow: float = 0.85
    memory_fill_stop: float = 0.95
    slow_pause_s: float = 0.2
    stop_on_evictions: bool = True
    verify_sample_keys: int = 20
    plugin_timeout_s: float = 5.0

    def validate(self) -> WarmLimits:
        if self.ttl_s < 0 or not 0 <= self.ttl_jitter_ratio < 1:
            raise ConfigError("ttl_s must be >= 0 and ttl_jitter_ratio in [0, 1)")
        if self.batch_keys < 1 or self.retry_attempts < 1 or self.plugin_timeout_s <= 0:
            raise ConfigError("batch_keys, retry_attempts and plugin_timeout_s must be > 0")
        if self.verify_sample_keys < 0 or self.retry_backoff_s < 0 or self.slow_pause_s < 0:
            raise ConfigError("verify_sample_keys, retry_backoff_s and slow_pause_s must be >= 0")
        if not 0 < self.memory_fill_slow <= self.memory_fill_stop <= 1:
            raise ConfigError("need 0 < memory_fill_slow <= memory_fill_stop <= 1")
        self.origin.validate()
        return self


@dataclass(frozen=True, slots=True)
class WarmTask:
    """A batch of predicted requests, the backend and loader to use, and the limits."""

    task_id: str
    requests: tuple[WarmRequest, ...]
    target: str  # backend name; "" when the loader itself warms (HTTP replay)
    loader: str
    limits: WarmLimits = field(default_factory=WarmLimits)
    key_mapper: str = "request_key"
    readiness: tuple[str, ...] = ()
    verifier: str = ""  # "" compares the read-back value with the written one
    context: Mapping[str, str] = field(default_factory=dict)  # template fields: {date} ...
    checkpoint: int = 0  # requests already done by an earlier owner
    seed: int = 0


class TaskOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"  # stopped on purpose (memory guard), with a reason
    NOT_READY = "not_ready"


@dataclass(frozen=True, slots=True)
class WarmResult:
    """What one run did; `checkpoint` is how many requests are done."""

    task_id: str
    outcome: TaskOutcome
    keys_ok: int
    keys_failed: int
    keys_skipped: int
    bytes_written: int
    origin_p50_ms: float | None
    origin_p99_ms: float | None
    duration_s: float
    checkpoint: int
    reason: str = ""
    failures: tuple[KeyFailure, ...] = ()  # the first FAILURE_SAMPLE_SIZE
    verified_keys: int = 0
    verify_mismatches: int = 0
    origin_in_flight_max: int = 0
    finished_at_s: float = 0.0  # monotonic time, the start of the effect window


class Runner(Protocol):
    """What the executor calls for each assigned task."""

    async def run(self, task: WarmTask, progress: ProgressCallback | None = None
                  ) -> WarmResult: ...
