"""The replay fast path: a task's batch handed to the HTTP client in one call.

Why: the per-request path (a worker, a limiter slot, a plugin call under its own timeout,
a metric and a tally entry per request) cost ~60 us of CPU per request, several times the
client's own work. Here the origin limiter gates connections for the whole batch, the
client's watchdog is the one timeout, and results are tallied per batch; every request
still ends with exactly one outcome: ok, a failure with its reason, or retried while
transient (429, 502-504, unreachable), with the runner's backoff between attempts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from warmd.cache.base import KeyFailure
from warmd.cache.http import HttpStatusError, is_transient
from warmd.clock import Clock
from warmd.hooks.base import WarmRequest
from warmd.hooks.loaders import ReplayLoader, request_url
from warmd.hooks.task import WarmLimits
from warmd.runtime.execute.limiter import OriginLimiter


class ReplayTally(Protocol):
    """What replay_batch counts into (the runner's tally is one)."""

    ok: int
    latencies_s: list[float]

    def add_failures(self, failures: Sequence[KeyFailure]) -> None: ...


async def replay_batch(loader: ReplayLoader, limiter: OriginLimiter, limits: WarmLimits,
                       batch: Sequence[WarmRequest], key_of: Callable[[int], str],
                       clock: Clock, tally: ReplayTally) -> bool:
    """Replay `batch`; count each request in `tally`. False (and nothing sent) when the
    client cannot batch these requests or a rate cap spaces single requests: the caller
    takes the per-request path then."""
    if limiter.config.rate_per_s_max > 0:
        return False
    urls = [request_url(request) for request in batch]
    client = loader.client
    if not client.batchable(urls):
        return False
    pending = list(range(len(batch)))
    for attempt in range(limits.retry_attempts):
        result = await client.get_many([urls[index] for index in pending], limiter)
        loader.bytes_received += result.body_bytes
        tally.latencies_s.extend(result.latencies_s)
        tally.ok += result.ok
        if result.ok == len(pending):
            return True
        last = attempt + 1 == limits.retry_attempts
        retry: list[int] = []
        failures: list[KeyFailure] = []
        for position, index in enumerate(pending):
            status = result.statuses[position]
            if 200 <= status < 300:
                continue
            error = result.errors.get(position) or HttpStatusError(
                client.resolve(urls[index]), status)
            if not last and is_transient(error):
                retry.append(index)
            else:
                failures.append(KeyFailure(key_of(index), str(error)))
        tally.add_failures(failures)
        if not retry:
            return True
        await clock.sleep(limits.retry_backoff_s * 2**attempt)
        pending = retry
    return True


