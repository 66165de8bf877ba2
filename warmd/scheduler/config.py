"""The scheduler's policy knobs, validated once: backoff, per-rule concurrency, pass size."""

from __future__ import annotations

from dataclasses import dataclass

from warmd.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerConfig:
    """How the leader schedules. Only the leader reads it: replicas never need to agree on it,
    because every decision it shapes is stamped into the commands it proposes."""

    # Retry n (n >= 1) waits min(cap, base * multiplier**(n-1)), then jitter takes away up to
    # `jitter_ratio` of it, so retries of tasks that failed together spread out.
    backoff_base_ms: int = 1_000
    backoff_cap_ms: int = 60_000
    backoff_multiplier: float = 2.0
    backoff_jitter_ratio: float = 0.2
    # (rule name, most tasks of that rule ASSIGNED or RUNNING at once); other rules: no limit.
    rule_concurrency: tuple[tuple[str, int], ...] = ()
    # At most this many assignments per pass, so one pass cannot flood the log.
    assignments_per_pass_max: int = 1_000
    # At most this many PENDING tasks admitted per pass (the longest open first); a plan of
    # 10,000 tasks is admitted over a few passes instead of 10,000 entries in one burst.
    admissions_per_pass_max: int = 1_000

    def __post_init__(self) -> None:
        if self.backoff_base_ms < 0 or self.backoff_cap_ms < self.backoff_base_ms:
            raise ConfigError(
                f"backoff needs 0 <= backoff_base_ms <= backoff_cap_ms, got "
                f"{self.backoff_base_ms} and {self.backoff_cap_ms}"
            )
        if self.backoff_multiplier < 1.0:
            raise ConfigError(f"backoff_multiplier must be >= 1, got {self.backoff_multiplier}")
        if not 0.0 <= self.backoff_jitter_ratio <= 1.0:
            raise ConfigError(
                f"backoff_jitter_ratio must be within 0..1, got {self.backoff_jitter_ratio}"
            )
        for rule, limit in self.rule_concurrency:
            if limit < 0:
                raise ConfigError(f"rule_concurrency for {rule!r} must be >= 0, got {limit}")
        if len({rule for rule, _ in self.rule_concurrency}) != len(self.rule_concurrency):
            raise ConfigError("rule_concurrency names a rule twice")
        for name in ("assignments_per_pass_max", "admissions_per_pass_max"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    def rule_limit(self, rule: str) -> int | None:
        """The concurrency limit of `rule`, or None when it has none."""
        return dict(self.rule_concurrency).get(rule)
