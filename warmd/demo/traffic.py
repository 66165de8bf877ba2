"""Seeded traffic for the demo shop: days of access-log history written directly, and a live
replay that sends the same kind of sessions to a running shop over HTTP.

A session is one visitor: the first screen (a fixed list of API calls, see
`shop.first_screen_calls`), then some browsing. Hot products follow a Zipf law whose order
shifts over the day (each quarter of the day has hot products of its own), listing pages decay
in popularity, dates are relative to the request day, articles are published in sequence and
the hourly stats ask for the current hour (so each new hour brings keys no history holds),
traffic follows the time of day, and every banner call carries a fresh cache-buster.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path

import aiohttp

from warmd.demo.shop import CATEGORIES, PRODUCT_COUNT, REGIONS, first_screen_calls

REGION_WEIGHTS = (40, 30, 15, 8, 4, 3)
CATEGORY_WEIGHTS = (30, 20, 14, 10, 9, 7, 6, 4)
AGENTS = ("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
          "Mozilla/5.0 (Macintosh) Safari/605.1.15",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148")
DAY_S = 86_400
HOUR_S = 3600
DAYPARTS = 4  # quarters of the (UTC) day, each with its own hot products


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    """Shape of the traffic; one seed fixes every session, `catalogue_seed` which products
    are hot (shared by the history and the measured traffic: the same shop)."""

    seed: int = 1
    catalogue_seed: int = 1
    days: float = 7.0
    sessions_per_day: int = 2000
    users: int = 800
    zipf_exponent: float = 1.1  # product popularity: weight of rank r is r ** -exponent
    first_screen_products: int = 3
    browse_share: float = 0.6  # visitors who go on after the first screen
    daypart_share: float = 0.5  # product views drawn from the hot order of the day's quarter
    article_period_s: int = 1800  # a new article every this many seconds

    def validate(self) -> TrafficSpec:
        if self.days <= 0 or self.sessions_per_day <= 0 or self.users <= 0:
            raise ValueError("days, sessions_per_day and users must be > 0")
        if self.zipf_exponent <= 0 or not 0 <= self.browse_share <= 1:
            raise ValueError("zipf_exponent must be > 0 and browse_share in [0, 1]")
        if not 0 <= self.daypart_share <= 1 or self.article_period_s <= 0:
            raise ValueError("daypart_share must be in [0, 1] and article_period_s > 0")
        return self


@dataclass(frozen=True, slots=True)
class Session:
    """One visitor's requests: who, and the targets in the order asked."""

    user: int
    first_screen: tuple[str, ...]
    browsing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a live replay sent and how it went."""

    sessions: int
    requests: int
    errors: int
    duration_s: float


def _hot_order(name: str) -> tuple[int, ...]:
    order = list(range(1, PRODUCT_COUNT + 1))
    random.Random(name).shuffle(order)
    return tuple(order)


def daypart(moment_s: float) -> int:
    """The quarter of the UTC day `moment_s` falls in (0-3)."""
    return int(moment_s % DAY_S // (DAY_S // DAYPARTS))


class ShopTraffic:
    """Draws sessions from one seeded generator; the hot-product orders (one for the whole
    day, one per quarter of the day) are fixed by the catalogue seed."""

    def __init__(self, spec: TrafficSpec | None = None) -> None:
        self.spec = (spec or TrafficSpec()).validate()
        self.rng = random.Random(self.spec.seed)
        self.hot_order = _hot_order(f"hot:{self.spec.catalogue_seed}")
        self.daypart_orders = tuple(_hot_order(f"hot:{self.spec.catalogue_seed}:{part}")
                                    for part in range(DAYPARTS))
        self._product_weights = tuple(accumulate(
            rank ** -self.spec.zipf_exponent for rank in range(1, PRODUCT_COUNT + 1)))

    def product(self, moment_s: float) -> int:
        """A product view at `moment_s`: from the quarter's hot order or the day's."""
        order = (self.daypart_orders[daypart(moment_s)]
                 if self.rng.random() < self.spec.daypart_share else self.hot_order)
        return self.rng.choices(order, cum_weights=self._product_weights)[0]

    def article(self, moment_s: float) -> int:
        """An article read at `moment_s`: mostly the newest one published, sometimes older."""
        newest = int(moment_s // self.spec.article_period_s)
        return newest - min(int(self.rng.expovariate(1.2)), 12)

    def first_screen(self, moment_s: float) -> list[str]:
        """One load of the home page at `moment_s`: its API calls with a fresh cache-buster."""
        region = self.rng.choices(REGIONS, REGION_WEIGHTS)[0]
        category = self.rng.choices(CATEGORIES, CATEGORY_WEIGHTS)[0]
        products = tuple(self.product(moment_s) for _ in range(self.spec.first_screen_products))
        hour = int(moment_s // HOUR_S) - (1 if self.rng.random() < 0.2 else 0)
        return first_screen_calls(datetime.fromtimestamp(moment_s, UTC).date(), region,
                                  category, products, f"{self.rng.getrandbits(40):010x}",
                                  article=self.article(moment_s), hour=hour)

    def browsing(self, moment_s: float) -> list[str]:
        """What a visitor does after the first screen: listing pages and product pages."""
        if self.rng.random() >= self.spec.browse_share:
            return []
        targets = []
        category = self.rng.choices(CATEGORIES, CATEGORY_WEIGHTS)[0]
        for _ in range(1 + int(self.rng.expovariate(0.7))):
            if self.rng.random() < 0.5:
                page = 1 + min(30, int(self.rng.expovariate(0.8)))
                targets.append(f"/api/products?category={category}&page={page}")
            else:
                targets.append(f"/api/product/{self.product(moment_s)}")
        return targets

    def session(self, moment_s: float) -> Session:
        user = self.rng.randrange(self.spec.users)
        return Session(user, tuple(self.first_screen(moment_s)),
                       tuple(self.browsing(moment_s)))


def user_token(user: int) -> str:
    """A stable opaque token per user, as a session cookie would carry."""
    return f"u{user:05d}-{(user * 2654435761) % 10**9:09d}"


def session_starts(spec: TrafficSpec, end_s: float, rng: random.Random) -> Iterator[float]:
    """Session start times over the `spec.days` before `end_s`, busier by day than by night."""
    start_s = end_s - spec.days * DAY_S
    mean_gap_s = DAY_S / spec.sessions_per_day
    moment_s = start_s
    while True:
        hour = (moment_s % DAY_S) / 3600
        busy = 1.0 + 0.7 * math.sin((hour - 9) / 24 * 2 * math.pi)
        moment_s += rng.expovariate(busy / mean_gap_s)
        if moment_s >= end_s:
            return
        yield moment_s


def history_sessions(spec: TrafficSpec, end_s: float) -> Iterator[list[str]]:
    """The log lines of each session of `spec.days` before `end_s`, one list per session."""
    traffic = ShopTraffic(spec)
    rng = traffic.rng
    for start_s in session_starts(traffic.spec, end_s, random.Random(f"t:{spec.seed}")):
        session = traffic.session(start_s)
        moments = [start_s] * len(session.first_screen)
        moment_s = start_s
        for _ in session.browsing:
            moment_s += rng.uniform(2.0, 25.0)
            moments.append(moment_s)
        yield [_log_line(rng, session.user, target, min(at_s, end_s - 0.001))
               for target, at_s in zip(session.first_screen + session.browsing, moments,
                                       strict=True)]


def history_lines(spec: TrafficSpec, end_s: float) -> Iterator[str]:
    """Combined-format lines (plus $request_time) of `spec.days` of sessions before `end_s`."""
    for lines in history_sessions(spec, end_s):
        yield from lines


def _log_line(rng: random.Random, user: int, target: str, at_s: float) -> str:
    stamp = datetime.fromtimestamp(at_s, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    request_time_s = rng.uniform(0.0005, 0.003) if rng.random() < 0.9 else rng.uniform(0.02, 0.05)
    return (f'10.{user // 250}.{user % 250}.9 - {user_token(user)} [{stamp}] '
            f'"GET {target} HTTP/1.1" 200 {rng.randrange(180, 1400)} "-" '
            f'"{AGENTS[user % len(AGENTS)]}" {request_time_s:.3f}\n')


def write_history(path: str | Path, spec: TrafficSpec, end_s: float) -> int:
    """Append the history to `path` in one pass; return the number of lines written."""
    count = 0
    with open(path, "a") as log:
        for line in history_lines(spec, end_s):
            log.write(line)
            count += 1
    return count


def write_split_history(paths: Sequence[str | Path], spec: TrafficSpec,
                        end_s: float) -> tuple[int, ...]:
    """Write the history as one access log per host behind a round-robin load balancer:
    session n goes whole to `paths[n % len(paths)]`. Return the lines written to each.

    The same seed gives the same lines as `write_history`, only spread over the files, so
    no host alone sees the whole traffic: a planner must merge what every host saw.
    """
    if not paths:
        raise ValueError("write_split_history needs at least one path")
    counts = [0] * len(paths)
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(open(path, "a")) for path in paths]
        for number, lines in enumerate(history_sessions(spec, end_s)):
            host = number % len(logs)
            logs[host].writelines(lines)
            counts[host] += len(lines)
    return tuple(counts)


async def replay(base_url: str, spec: TrafficSpec, sessions: int, concurrency: int = 8,
                 moment_s: float | None = None) -> ReplayResult:
    """Send `sessions` live sessions to the shop (first screen calls at once, then browsing),
    `concurrency` visitors at a time; HTTP errors are counted, never raised."""
    if sessions < 0 or concurrency < 1:
        raise ValueError("sessions must be >= 0 and concurrency >= 1")
    traffic = ShopTraffic(spec)
    moment_s = time.time() if moment_s is None else moment_s
    planned = [traffic.session(moment_s) for _ in range(sessions)]
    started = time.perf_counter()
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency * 8)
    async with aiohttp.ClientSession(base_url, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as client:

        async def visit(session: Session) -> int:
            headers = {"X-User": user_token(session.user),
                       "User-Agent": AGENTS[session.user % len(AGENTS)]}
            async with gate:
                outcomes = list(await asyncio.gather(*(
                    _get(client, target, headers) for target in session.first_screen)))
                for target in session.browsing:
                    outcomes.append(await _get(client, target, headers))
            return outcomes.count(False)

        errors = sum(await asyncio.gather(*(visit(session) for session in planned)))
    requests = sum(len(s.first_screen) + len(s.browsing) for s in planned)
    return ReplayResult(sessions, requests, errors, time.perf_counter() - started)


async def _get(client: aiohttp.ClientSession, target: str, headers: dict[str, str]) -> bool:
    """GET one target; False for an error status or a failed connection."""
    try:
        async with client.get(target, headers=headers) as response:
            await response.read()
            return response.status < 400
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
