"""A realistic e-commerce API access log, seeded: the held-out-style evaluation of prediction.

What makes prediction hard in real API traffic, each on its own endpoint:

* `home` carries a jQuery-style cache-buster `_=<epoch ms>` on every request;
* product pages and their reviews follow a Zipf popularity whose ranks drift from day to day;
* category listings have page numbers whose popularity decays;
* free-text search is a long tail (a few popular queries, most asked once);
* daily reports per region and metric ask for *yesterday* in the log's own time zone (+08:00);
* hourly stats ask for the current (or previous) hour, an advancing number;
* articles are published in sequence during working hours (new ids every day) and read most
  while new;
* per-user profiles are asked by their own user only (user-scoped: never warmed);

from mobile and browser clients, with a diurnal profile in local time. One seed fixes the log;
nothing here knows how warmd predicts.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

ZONE = timezone(timedelta(hours=8))
REGIONS = ("cn-north", "cn-south", "cn-east", "sg", "my", "id", "th", "vn", "ph", "tw")
METRICS = ("orders", "revenue", "visits", "refunds", "carts", "signups", "returns", "stock")
LANGS = (("en", 6.0), ("zh", 3.0), ("ms", 1.0))
SORTS = (("popular", 6.0), ("new", 3.0), ("price", 1.0))
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/129.0 Safari/537.36"
MOBILE = ("ShopApp/7.4.1 (Android 14; Pixel 8) okhttp/4.12.0", "ShopApp/7.4.0 (iOS 18.0; iPhone15,2)")
# Hourly traffic in local time (share of the daily mean): quiet nights, evening peak.
DIURNAL = (0.45, 0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.7, 1.0, 1.2, 1.25, 1.3,
           1.35, 1.3, 1.25, 1.25, 1.3, 1.35, 1.4, 1.55, 1.7, 1.65, 1.3, 0.85)
# Endpoint weights by local hour band: (night 0-6, day 7-17, evening 18-23).
ENDPOINT_WEIGHTS = {
    "home": (9.0, 9.0, 10.0), "product": (30.0, 30.0, 32.0), "reviews": (6.0, 6.0, 7.0),
    "category": (10.0, 10.0, 11.0), "search": (13.0, 12.0, 12.0), "report": (1.5, 3.0, 0.8),
    "hourly": (2.0, 3.0, 2.0), "article": (9.0, 10.0, 11.0), "profile": (7.0, 6.0, 6.0),
    "config": (2.0, 2.0, 2.0),
}
WORDS = tuple(f"{a}{b}" for a in ("red", "blue", "black", "white", "green", "pink", "grey",
                                  "gold", "mini", "pro", "max", "slim", "kids", "men", "women")
              for b in ("shoes", "bag", "phone", "case", "watch", "dress", "shirt", "lamp",
                        "chair", "desk", "cable", "mug", "jacket", "cap", "toy", "book",
                        "pen", "sock", "ring", "belt"))


@dataclass(frozen=True)
class ApiLogSpec:
    """Shape of the log; the defaults are the evaluation log (8 days, ~36k requests a day)."""

    seed: int = 1
    start: datetime = datetime(2026, 10, 12, tzinfo=ZONE)
    days: int = 8
    requests_per_day: int = 36_000
    products: int = 6_000
    categories: int = 40
    users: int = 9_000
    popular_queries: int = 300
    articles_per_day: int = 24
    first_article: int = 51_200
    daily_rank_churn: float = 0.25  # share of product ranks that move each day
    zipf_s: float = 1.05


@dataclass
class _World:
    """Popularity state that drifts day by day."""

    spec: ApiLogSpec
    rng: random.Random
    product_order: list[int] = field(default_factory=list)
    product_cdf: list[float] = field(default_factory=list)
    query_cdf: list[float] = field(default_factory=list)
    user_cdf: list[float] = field(default_factory=list)
    published: list[tuple[float, int]] = field(default_factory=list)  # (time_s, id)

    def start(self) -> None:
        self.product_order = list(range(1, self.spec.products + 1))
        self.rng.shuffle(self.product_order)
        self.product_cdf = _zipf_cdf(self.spec.products, self.spec.zipf_s)
        self.query_cdf = _zipf_cdf(self.spec.popular_queries, 1.0)
        self.user_cdf = _zipf_cdf(self.spec.users, 0.7)  # a few busy users, a long tail
        next_id = self.spec.first_article
        start_s = self.spec.start.timestamp()
        for back in range(60, 0, -1):  # a back catalogue published before the log starts
            self.published.append((start_s - back * 3600 * 7.3, next_id))
            next_id += 1

    def drift(self, day_start_s: float) -> None:
        """A new day: some products climb or fall, today's articles get their times."""
        order, rng = self.product_order, self.rng
        for _ in range(int(self.spec.products * self.spec.daily_rank_churn / 2)):
            a = rng.randrange(len(order))
            b = max(0, min(len(order) - 1, a + int(rng.gauss(0, 400))))
            order[a], order[b] = order[b], order[a]
        next_id = self.published[-1][1] + 1
        times = sorted(day_start_s + 3600 * rng.uniform(7.5, 21.5)
                       for _ in range(self.spec.articles_per_day))
        self.published.extend((t, next_id + i) for i, t in enumerate(times))

    def product(self) -> int:
        return self.product_order[bisect.bisect_left(self.product_cdf, self.rng.random())]

    def user(self) -> int:
        return 1 + bisect.bisect_left(self.user_cdf, self.rng.random())

    def article(self, now_s: float) -> int | None:
        """A published article, read mostly while new (half-life about a day)."""
        live = bisect.bisect_right(self.published, (now_s, math.inf))
        if live == 0:
            return None
        weights = [math.exp(-(now_s - t) / 110_000.0) for t, _ in self.published[:live][-120:]]
        return self.rng.choices(self.published[:live][-120:], weights)[0][1]


def _zipf_cdf(n: int, s: float) -> list[float]:
    weights = [1.0 / (rank ** s) for rank in range(1, n + 1)]
    total, running, cdf = sum(weights), 0.0, []
    for w in weights:
        running += w
        cdf.append(running / total)
    cdf[-1] = 1.0
    return cdf


def _band(hour: int) -> int:
    return 0 if hour < 7 else 1 if hour < 18 else 2


def _target(kind: str, world: _World, now: datetime, user: int) -> str:
    rng, spec = world.rng, world.spec
    lang = rng.choices([lang for lang, _ in LANGS], [w for _, w in LANGS])[0]
    if kind == "home":
        return f"/api/v1/home?lang={lang}&_={int(now.timestamp() * 1000) + rng.randrange(900)}"
    if kind == "product":
        return f"/api/v1/products/{world.product()}?lang={lang}"
    if kind == "reviews":
        page = 1 if rng.random() < 0.75 else rng.randint(2, 5)
        return f"/api/v1/products/{world.product()}/reviews?page={page}"
    if kind == "category":
        category = min(spec.categories, int(rng.paretovariate(0.9)))
        page = min(30, int(rng.expovariate(0.7)) + 1)
        sort = rng.choices([s for s, _ in SORTS], [w for _, w in SORTS])[0]
        return f"/api/v1/categories/cat-{category:03d}?page={page}&sort={sort}"
    if kind == "search":
        if rng.random() < 0.35:
            rank = bisect.bisect_left(world.query_cdf, rng.random())
            query = f"{WORDS[rank * 7 % len(WORDS)]}+{WORDS[rank * 13 % len(WORDS)]}"
        else:
            query = "+".join(rng.choice(WORDS) for _ in range(rng.randint(2, 3)))
        return f"/api/v1/search?q={query}&page=1"
    if kind == "report":
        yesterday = (now.astimezone(ZONE).date() - timedelta(days=1)).isoformat()
        return (f"/api/v1/reports/daily?region={rng.choice(REGIONS)}"
                f"&metric={rng.choice(METRICS)}&date={yesterday}")
    if kind == "hourly":
        hour = int(now.timestamp() // 3600) - (1 if rng.random() < 0.3 else 0)
        return f"/api/v1/stats/hourly?hour={hour}"
    if kind == "article":
        article = world.article(now.timestamp())
        return f"/api/v1/articles/{article}" if article else "/api/v1/articles"
    if kind == "profile":
        return f"/api/v1/users/{user}/profile"
    return f"/api/v1/config?platform={'android' if user % 3 else 'ios'}&v=7.4"


def generate_api_lines(spec: ApiLogSpec | None = None) -> Iterator[str]:
    """Combined-format lines in time order, stamped in +08:00."""
    spec = spec or ApiLogSpec()
    rng = random.Random(spec.seed)
    world = _World(spec, rng)
    world.start()
    kinds = list(ENDPOINT_WEIGHTS)
    mean_gap_s = 86_400 / spec.requests_per_day
    start_s = spec.start.timestamp()
    now_s, day = start_s, -1
    while True:
        local = datetime.fromtimestamp(now_s, tz=ZONE)
        now_s += rng.expovariate(DIURNAL[local.hour] / mean_gap_s)
        if now_s >= start_s + spec.days * 86_400:
            return
        if int((now_s - start_s) // 86_400) != day:
            day = int((now_s - start_s) // 86_400)
            world.drift(start_s + day * 86_400)
        now = datetime.fromtimestamp(now_s, tz=ZONE)
        band = _band(now.hour)
        kind = rng.choices(kinds, [ENDPOINT_WEIGHTS[k][band] for k in kinds])[0]
        user = world.user()
        mobile = user % 5 < 3
        agent = MOBILE[user % 2] if mobile else BROWSER
        status = 200 if rng.random() < 0.97 else rng.choice((404, 500, 304))
        yield (f'10.{user // 250 % 250}.{user % 250}.{9 if mobile else 4} - - '
               f'[{now.strftime("%d/%b/%Y:%H:%M:%S %z")}] "GET {_target(kind, world, now, user)} '
               f'HTTP/1.1" {status} {rng.randrange(300, 40_000)} "-" "{agent}"')
