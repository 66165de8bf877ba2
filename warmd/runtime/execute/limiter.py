"""Adaptive concurrency limit for an origin: AIMD on latency and errors, under hard caps.

`AimdLimit` is the pure decision (no clock: it is fed samples); `OriginLimiter` does the
timing: it holds requests while in-flight >= the limit and spaces them to the rate cap.
Like Netflix's concurrency-limits, the healthy latency is the minimum of a recent window,
so a lasting change of the origin's speed is relearned instead of throttled forever. A
sample's latency has our own event loop's lag taken out (`LoopLag`): the limit judges the
origin, so a busy or descheduled client does not throttle a healthy origin.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from warmd import metrics
from warmd.clock import Clock, SystemClock
from warmd.hooks.task import LimitConfig


@dataclass(frozen=True, slots=True)
class LimitSample:
    """One finished origin request as the limit sees it."""

    latency_s: float
    failed: bool  # an error or a throttling status (503, 429 ...)
    in_flight: int  # requests in flight when it started
    # Our own event loop's lag when it finished (LoopLag): the latency minus this is the
    # origin's part, which congestion is judged on; the healthy minimum learns from the
    # latency itself (lag only adds to it, so its minimum stays true).
    loop_lag_s: float = 0.0


OBJECTIVE_WINDOW_SAMPLES = 1_000  # the recent samples a latency objective is judged on


class AimdLimit:
    """Additive increase (+1 per `limit` good samples), multiplicative decrease on a
    congestion signal, at most once per limit-many samples so that the requests of one
    congested round do not collapse the limit several times."""

    def __init__(self, config: LimitConfig) -> None:
        self.config = config.validate()
        self.limit = float(min(config.concurrency_max,
                               max(config.concurrency_min, config.concurrency_initial)))
        self._recent: deque[float] = deque(maxlen=config.baseline_window_samples)
        self._samples_since_backoff = 0
        self._baseline_s: float | None = None
        self._samples_since_baseline = 0
        self.backoff_count = 0
        self._over_objective: deque[bool] = deque(maxlen=OBJECTIVE_WINDOW_SAMPLES)
        self._over_count = 0

    @property
    def healthy_latency_s(self) -> float | None:
        """Minimum latency of the recent window, recomputed every 64 samples (a full
        min() per sample costs more than the rest of the decision)."""
        if not self._recent:
            return None
        if self._baseline_s is None or self._samples_since_baseline >= 64:
            self._baseline_s = min(self._recent)
            self._samples_since_baseline = 0
        return min(self._baseline_s, self._recent[-1])

    def congested(self, sample: LimitSample) -> bool:
        baseline = self.healthy_latency_s
        if sample.failed or self._misses_objective(sample):
            return True
        if baseline is None:
            return False
        threshold_s = max(baseline * self.config.latency_tolerance,
                          baseline + self.config.latency_slack_s)
        return sample.latency_s - sample.loop_lag_s > threshold_s

    def _misses_objective(self, sample: LimitSample) -> bool:
        """True when this sample is over the objective and more of the recent samples are
        than the percentile allows (p99: one in a hundred may be slower)."""
        objective_s = self.config.latency_objective_s
        if not objective_s:
            return False
        window = self._over_objective
        if len(window) == window.maxlen:
            self._over_count -= window[0]
        over = sample.latency_s - sample.loop_lag_s > objective_s
        window.append(over)
        self._over_count += over
        share = 1 - self.config.objective_percentile / 100
        # judge once the window can tell a percentile apart (100 samples for p99)
        judged = len(window) >= min(window.maxlen or 0, math.ceil(1 / share))
        return over and judged and self._over_count > share * len(window)

    def on_sample(self, sample: LimitSample) -> int:
        """Update and return the whole-number limit."""
        congested = self.congested(sample)
        if not sample.failed:
            self._recent.append(sample.latency_s)
            self._samples_since_baseline += 1
        self._samples_since_backoff += 1
        if congested:
            if self._samples_since_backoff >= self.limit:
                self.limit = max(float(self.config.concurrency_min),
                                 self.limit * self.config.backoff_ratio)
                self._samples_since_backoff = 0
                self.backoff_count += 1
        elif sample.in_flight * 2 >= self.limit:  # grow only when the limit is what binds
            self.limit = min(float(self.config.concurrency_max), self.limit + 1.0 / self.limit)
        return self.current()

    def current(self) -> int:
        return max(self.config.concurrency_min, int(self.limit))


LAG_TICK_S = 0.002  # how often LoopLag looks at the loop
# A timer may fire up to a millisecond late on an idle loop (libuv's timers have 1 ms
# resolution): only lateness beyond that is the loop's lag.
LAG_GRANULARITY_S = 0.001


class LoopLag:
    """How late our own event loop runs right now, from a timer ticking while anyone uses it.

    An answer that reached the socket waits for the loop (callbacks of other requests, or
    the process not scheduled on a loaded host) before its latency is taken; that wait is
    the loop's current lag: the lateness of a tick overdue now, or of one that fired in the
    last tick interval. Only the lag at the end of a request is taken out of its latency
    (lag earlier on overlapped the origin's own work: a total over the whole request would
    take out the origin's latency too). One tick every LAG_TICK_S while the limiter has
    requests in flight; it stops when the limiter goes idle.
    """

    def __init__(self, busy: Callable[[], bool]) -> None:
        self._busy = busy
        self._due_s = 0.0  # perf_counter time the pending tick is due; 0: not ticking
        self._last_tick_s = 0.0
        self._last_late_s = 0.0

    def start(self) -> None:
        """Tick from now on, if not ticking already."""
        if not self._due_s:
            self._schedule(time.perf_counter())

    def recent_s(self) -> float:
        """The loop's lag now: a tick overdue now, or one that fired late in the last
        interval, plus that interval (the loop may have stalled up to one interval before
        the tick was due: answers waiting since then waited that much longer)."""
        now_s = time.perf_counter()
        overdue_s = now_s - self._due_s - LAG_GRANULARITY_S if self._due_s else 0.0
        if overdue_s <= 0 and (now_s - self._last_tick_s >= LAG_TICK_S or not self._last_late_s):
            return 0.0
        return max(overdue_s, self._last_late_s) + LAG_TICK_S

    def _schedule(self, now_s: float) -> None:
        self._due_s = now_s + LAG_TICK_S
        asyncio.get_running_loop().call_later(LAG_TICK_S, self._tick)

    def _tick(self) -> None:
        now_s = time.perf_counter()
        self._last_late_s = max(0.0, now_s - self._due_s - LAG_GRANULARITY_S)
        self._last_tick_s = now_s
        if self._busy():
            self._schedule(now_s)
        else:
            self._due_s = 0.0


@dataclass(frozen=True, slots=True)
class LimiterStatistics:
    limit: int
    in_flight: int
    in_flight_max: int
    backoff_count: int
    healthy_latency_s: float | None


class OriginLimiter:
    """Async gate in front of an origin: `async with limiter.slot() as report:`.

    Waiters queue in FIFO order and a release wakes only as many as the limit has room
    for, so hundreds of waiting workers cost nothing per request. A batch of requests
    (warmd.cache.http_batch) holds slots through `acquire`/`try_acquire`/`release` and
    reports each round with `round_started`/`round_finished` instead.
    """

    def __init__(self, config: LimitConfig, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self.decision = AimdLimit(config)
        self.config = config
        self._in_flight = 0
        self._in_flight_max = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._next_start_s = 0.0
        self.lag = LoopLag(lambda: self._in_flight > 0)
        # metrics.warm_request("origin", ...) with its label looked up once, not per round
        self._observe = metrics.WARM_REQUEST_DURATION.labels(target_kind="origin").observe

    async def acquire(self) -> int:
        """Wait for a slot (FIFO); return the requests in flight, this one included."""
        return await self._acquire()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits for it; never blocks."""
        if self._in_flight >= self.decision.current() or self._waiters:
            return False
        self._in_flight += 1
        self._in_flight_max = max(self._in_flight_max, self._in_flight)
        return True

    def release(self) -> None:
        self._release()

    def over_limit(self) -> bool:
        """True when more slots are held than the limit now allows (it backed off)."""
        return self._in_flight > self.decision.current()

    def round_started(self) -> None:
        self.lag.start()

    def round_finished(self, latency_s: float, failed: bool) -> None:
        """One round of requests on one slot took `latency_s` (as the client measured it)."""
        self._observe(latency_s)
        self.decision.on_sample(LimitSample(latency_s, failed, self._in_flight,
                                            self.lag.recent_s()))

    async def _acquire(self) -> int:
        if self._in_flight < self.decision.current() and not self._waiters:
            self._in_flight += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # the releaser counted us in before waking us
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # woken and cancelled at once: give the slot back
                else:
                    self._waiters.remove(waiter)
                raise
        self._in_flight_max = max(self._in_flight_max, self._in_flight)
        return self._in_flight

    def _release(self) -> None:
        self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_flight < self.decision.current():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    async def _wait_rate(self) -> None:
        if self.config.rate_per_s_max <= 0:
            return
        now = self._clock.monotonic()
        start = max(now, self._next_start_s)
        self._next_start_s = start + 1.0 / self.config.rate_per_s_max
        if start > now:
            await self._clock.sleep(start - now)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[SlotReport]:
        """Hold one unit of origin concurrency; the body marks failures on the report."""
        in_flight = await self._acquire()
        report = SlotReport()
        try:
            await self._wait_rate()
            self.lag.start()
            started = time.perf_counter()
            try:
                yield report
            except BaseException:
                report.failed = True
                raise
            finally:
                latency_s = time.perf_counter() - started
                self._observe(latency_s)
                self.decision.on_sample(LimitSample(latency_s, report.failed, in_flight,
                                                    self.lag.recent_s()))
        finally:
            self._release()

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(self.decision.current(), self._in_flight, self._in_flight_max,
                                 self.decision.backoff_count, self.decision.healthy_latency_s)


@dataclass(slots=True)
class SlotReport:
    """Mutable note the caller fills in while holding a slot."""

    failed: bool = False
