"""Retry backoff: exponential, capped, with jitter drawn from the leader's seeded rng."""

from __future__ import annotations

import random

from warmd.scheduler.config import SchedulerConfig


def retry_delay_ms(retry_number: int, config: SchedulerConfig, rng: random.Random) -> int:
    """How long retry `retry_number` (1 for the first) waits before the task may be ready.

    The delay grows by `backoff_multiplier` per retry up to `backoff_cap_ms`; jitter then
    removes a random share of up to `backoff_jitter_ratio`, so it never exceeds the cap.
    Raises: ValueError for a retry number below 1.
    """
    if retry_number < 1:
        raise ValueError(f"retry numbers start at 1, got {retry_number}")
    exponent = min(retry_number - 1, 64)  # beyond this the cap has long since won
    delay_ms = min(
        float(config.backoff_cap_ms),
        config.backoff_base_ms * config.backoff_multiplier**exponent,
    )
    jitter = config.backoff_jitter_ratio * rng.random()
    return int(delay_ms * (1.0 - jitter))
