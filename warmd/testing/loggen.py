"""Synthetic access logs with known parameter classes, for tests and benchmarks.

One seed fixes the whole log. Endpoints carry a date relative to the request (tomorrow's
report), an advancing sequence index, an hourly slot, pages with decaying popularity, hot ids
with drifting popularity, a cache-buster, a per-user token and a per-user feed value under an
innocent name, and traffic follows the time of day. Pure apart from the caller's choice of where to write the lines.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from warmd.analysis.formats import COMBINED, LineParser, Record

REGIONS = tuple(f"region{number:02d}" for number in range(24))
SERIES = tuple(f"sensor{number:02d}" for number in range(8))
QUERIES = ("shoes", "bags", "hats", "coats", "socks", "belts")
AGENTS = ("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
          "Mozilla/5.0 (Macintosh) Safari/605.1.15",
          "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")


@dataclass(frozen=True)
class LogSpec:
    """Shape of a synthetic log."""

    seed: int = 1
    start: datetime = datetime(2024, 3, 4, tzinfo=UTC)
    days: float = 3.0
    requests_per_day: int = 20_000
    hot_ids: int = 3_000
    users: int = 400
    sequence_period_s: float = 600.0
    malformed_share: float = 0.0


def _endpoint(rng: random.Random, moment: datetime, spec: LogSpec, user: int,
              hot_rank_shift: int) -> str:
    """One request target; the mix leans on the hour (reports by day, search by evening)."""
    hour = moment.hour
    weights = (3.0 + 2 * math.sin(hour / 24 * 2 * math.pi), 2.0, 1.0,
               3.0 + 2 * math.cos(hour / 24 * 2 * math.pi), 6.0, 1.0, 0.7, 1.5)
    kind = rng.choices(range(8), weights)[0]
    epoch_s = moment.timestamp()
    if kind == 0:
        offset = 1 if rng.random() < 0.8 else 0
        day = (moment + timedelta(days=offset)).strftime("%Y-%m-%d")
        return f"/reports/daily?region={rng.choice(REGIONS)}&date={day}"
    if kind == 1:
        name = rng.choice(SERIES)
        index = int(epoch_s // spec.sequence_period_s) - rng.choice((0, 0, 0, 1))
        return f"/api/series/{name}?index={index}"
    if kind == 2:
        return f"/api/hourly?slot={int(epoch_s // 3600)}"
    if kind == 3:
        page = min(20, int(rng.expovariate(0.8)) + 1)
        return f"/search?page={page}&q={rng.choice(QUERIES)}"
    if kind == 4:
        rank = int(rng.paretovariate(1.1)) - 1
        trending = rng.random() < 0.3  # a third of the interest moves to new items each day
        item = (rank * 7919 + (hot_rank_shift if trending else 0)) % spec.hot_ids
        return f"/api/items/{item}"
    if kind == 5:
        return f"/static/app.js?_={rng.getrandbits(48)}"
    if kind == 6:
        return f"/account/settings?token=tok{user:05d}x{(user * 2654435761) % 10**9:09d}"
    # A per-user value under an innocent name: only its statistics say it is user-scoped.
    return f"/api/feed?viewer=v{(user * 40503) % 999_983:06d}"


def generate_lines(spec: LogSpec | None = None) -> Iterator[str]:
    """Combined-format lines in time order, with diurnal traffic."""
    spec = spec or LogSpec()
    rng = random.Random(spec.seed)
    total = int(spec.requests_per_day * spec.days)
    span_s = spec.days * 86_400
    moment_s = spec.start.timestamp()
    end_s = moment_s + span_s
    mean_gap_s = span_s / total
    for _ in range(total):
        hour = (moment_s % 86_400) / 3600
        busy = 1.0 + 0.8 * math.sin((hour - 8) / 24 * 2 * math.pi)
        moment_s += rng.expovariate(busy / mean_gap_s)
        if moment_s >= end_s:
            break
        moment = datetime.fromtimestamp(moment_s, tz=UTC)
        if rng.random() < spec.malformed_share:
            yield f"garbage line {rng.getrandbits(32)}"
            continue
        user = rng.randrange(spec.users)
        shift = int((moment_s - spec.start.timestamp()) // 86_400) * 131 + 1
        target = _endpoint(rng, moment, spec, user, shift)
        method = "GET" if rng.random() < 0.97 else "POST"
        status = 200 if rng.random() < 0.96 else rng.choice((404, 500, 304))
        agent = AGENTS[2] if rng.random() < 0.03 else AGENTS[user % 2]
        stamp = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
        yield (f'10.{user // 250}.{user % 250}.7 - - [{stamp}] "{method} {target} HTTP/1.1" '
               f'{status} {rng.randrange(200, 9000)} "-" "{agent}"')


def generate_records(spec: LogSpec | None = None) -> list[Record]:
    """The parsed records of `generate_lines(spec)` (what most tests want)."""
    return LineParser(COMBINED).parse_many(generate_lines(spec))
