"""The demo shop: a read-through Redis cache in front of a deliberately slow SQLite origin.

Every API answer is cached under a key that ignores cache-busters; every request goes to an
nginx-style combined access log (with the request time), so warmd can learn from it.
Run as `python -m warmd.demo.shop --port P --redis URL --db FILE --log FILE`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

import redis.asyncio as aioredis
import redis.exceptions
from aiohttp import web

REGIONS = ("eu", "us", "asia", "latam", "africa", "oceania")
CATEGORIES = ("shoes", "bags", "hats", "coats", "socks", "belts", "shirts", "watches")
PRODUCT_COUNT = 600
PAGE_SIZE = 12
CACHE_BUSTER_PARAMS = frozenset({"v", "_", "cb"})
KEY_PREFIX = "shop:"


@dataclass(frozen=True, slots=True)
class ShopConfig:
    """Where the shop listens, what it talks to, and how slow its origin is."""

    port: int
    redis_url: str
    db_path: str
    log_path: str
    host: str = "127.0.0.1"
    query_delay_ms_min: float = 20.0
    query_delay_ms_max: float = 50.0
    cache_ttl_s: int = 3600
    origin_threads: int = 8
    seed: int = 0

    def validate(self) -> ShopConfig:
        if not 0 <= self.query_delay_ms_min <= self.query_delay_ms_max:
            raise ValueError("need 0 <= query_delay_ms_min <= query_delay_ms_max")
        if self.cache_ttl_s <= 0 or self.origin_threads <= 0:
            raise ValueError("cache_ttl_s and origin_threads must be > 0")
        return self


@dataclass(frozen=True, slots=True)
class ShopStats:
    """Counters since the shop started; `/_stats` returns them as JSON."""

    requests: int
    cache_hits: int
    cache_misses: int
    origin_queries: int


class BadRequest(ValueError):
    """The client sent a parameter the shop cannot use (answered with 400)."""


def create_database(path: str | Path, seed: int = 7) -> None:
    """Write the catalogue: PRODUCT_COUNT products in CATEGORIES, seeded prices and stock."""
    rng = random.Random(seed)
    connection = sqlite3.connect(str(path))
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS products (id INTEGER PRIMARY KEY, "
                           "name TEXT, category TEXT, region TEXT, price_cents INTEGER, "
                           "stock INTEGER)")
        connection.execute("DELETE FROM products")
        connection.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?)", [
            (number, f"product {number}", CATEGORIES[number % len(CATEGORIES)],
             REGIONS[number % len(REGIONS)], rng.randrange(500, 50_000), rng.randrange(0, 80))
            for number in range(1, PRODUCT_COUNT + 1)])
        connection.commit()
    finally:
        connection.close()


def cache_key(path: str, query: Mapping[str, str]) -> str:
    """The key of an answer: path plus sorted parameters, cache-busters left out."""
    kept = sorted((name, value) for name, value in query.items()
                  if name not in CACHE_BUSTER_PARAMS)
    if not kept:
        return KEY_PREFIX + path
    return KEY_PREFIX + path + "?" + "&".join(f"{name}={value}" for name, value in kept)


def first_screen_calls(day: date, region: str, category: str, product_ids: tuple[int, ...],
                       buster: str, article: int, hour: int) -> list[str]:
    """The API calls the home page makes, in order: deals, listing, products, report, the
    featured article, the hourly stats (`hour` counts hours since the epoch), banner."""
    calls = [f"/api/deals?date={day.isoformat()}&region={region}",
             f"/api/products?category={category}&page=1"]
    calls += [f"/api/product/{product_id}" for product_id in product_ids]
    calls += [f"/api/report/daily?day={(day - timedelta(days=1)).isoformat()}",
              f"/api/article/{article}", f"/api/stats/hourly?hour={hour}",
              f"/api/banner?v={buster}"]
    return calls


class SlowOrigin:
    """SQLite queries in a small thread pool (a DB connection pool), each with an injected
    delay, so a miss costs what a real slow database costs and the loop never blocks."""

    def __init__(self, config: ShopConfig) -> None:
        self.config = config
        self.queries = 0
        self._rng = random.Random(config.seed)
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(config.origin_threads, "shop-origin")

    def _run(self, sql: str, params: tuple[object, ...], delay_s: float) -> list[tuple]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            uri = f"file:{self.config.db_path}?mode=ro"
            connection = self._local.connection = sqlite3.connect(uri, uri=True)
        time.sleep(delay_s)
        return connection.execute(sql, params).fetchall()

    async def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
        self.queries += 1
        delay_s = self._rng.uniform(self.config.query_delay_ms_min,
                                    self.config.query_delay_ms_max) / 1000
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, sql, params, delay_s)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _date_param(query: Mapping[str, str], name: str) -> date:
    try:
        return date.fromisoformat(query[name])
    except (KeyError, ValueError):
        raise BadRequest(f"{name} must be a date YYYY-MM-DD") from None


def _int_param(text: str | None, name: str, low: int, high: int) -> int:
    try:
        value = int(text or "")
    except ValueError:
        raise BadRequest(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be in [{low}, {high}]")
    return value


def _choice_param(query: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = query.get(name, "")
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}")
    return value


def _product_rows(rows: list[tuple]) -> list[dict[str, object]]:
    return [{"id": row[0], "name": row[1], "price_cents": row[2]} for row in rows]


async def load_deals(origin: SlowOrigin, request: web.Request) -> object:
    day = _date_param(request.query, "date")
    region = _choice_param(request.query, "region", REGIONS)
    rows = await origin.query("SELECT id, name, price_cents FROM products WHERE region = ? "
                              "ORDER BY (id * ?) % 1009 LIMIT 8", (region, day.toordinal()))
    return {"date": day.isoformat(), "region": region, "deals": _product_rows(rows)}


async def load_products(origin: SlowOrigin, request: web.Request) -> object:
    category = _choice_param(request.query, "category", CATEGORIES)
    page = _int_param(request.query.get("page", "1"), "page", 1, 1000)
    rows = await origin.query("SELECT id, name, price_cents FROM products WHERE category = ? "
                              "ORDER BY id LIMIT ? OFFSET ?",
                              (category, PAGE_SIZE, (page - 1) * PAGE_SIZE))
    return {"category": category, "page": page, "products": _product_rows(rows)}


async def load_product(origin: SlowOrigin, request: web.Request) -> object:
    product_id = _int_param(request.match_info["product_id"], "product id", 1, 10**9)
    rows = await origin.query("SELECT id, name, price_cents, category, stock FROM products "
                              "WHERE id = ?", (product_id,))
    if not rows:
        raise web.HTTPNotFound(text=f"no product {product_id}\n")
    row = rows[0]
    return {"id": row[0], "name": row[1], "price_cents": row[2], "category": row[3],
            "stock": row[4]}


async def load_report(origin: SlowOrigin, request: web.Request) -> object:
    day = _date_param(request.query, "day")
    rows = await origin.query("SELECT category, COUNT(*), SUM(stock), AVG(price_cents) "
                              "FROM products WHERE (id + ?) % 7 <> 0 GROUP BY category",
                              (day.toordinal(),))
    return {"day": day.isoformat(), "categories": [
        {"category": row[0], "products": row[1], "stock": row[2], "price_cents": int(row[3])}
        for row in rows]}


async def load_article(origin: SlowOrigin, request: web.Request) -> object:
    article_id = _int_param(request.match_info["article_id"], "article id", 1, 10**9)
    rows = await origin.query("SELECT id, name FROM products WHERE id = ?",
                              (1 + article_id % PRODUCT_COUNT,))
    return {"id": article_id, "title": f"Spotlight on {rows[0][1]}", "product_id": rows[0][0]}


async def load_hourly(origin: SlowOrigin, request: web.Request) -> object:
    hour = _int_param(request.query.get("hour"), "hour", 0, 10**8)
    rows = await origin.query("SELECT COUNT(*), SUM(stock) FROM products WHERE (id + ?) % 24 = 0",
                              (hour,))
    return {"hour": hour, "products": rows[0][0], "stock": rows[0][1]}


async def load_banner(origin: SlowOrigin, request: web.Request) -> object:
    rows = await origin.query("SELECT id, name FROM products ORDER BY stock DESC LIMIT 1")
    return {"headline": f"Today: {rows[0][1]}", "product_id": rows[0][0]}


Loader = Callable[[SlowOrigin, web.Request], Awaitable[object]]
ROUTES: tuple[tuple[str, Loader], ...] = (
    ("/api/deals", load_deals), ("/api/products", load_products),
    ("/api/product/{product_id}", load_product), ("/api/report/daily", load_report),
    ("/api/article/{article_id}", load_article), ("/api/stats/hourly", load_hourly),
    ("/api/banner", load_banner))


class Shop:
    """The aiohttp application: read-through cache, counters, access log."""

    def __init__(self, config: ShopConfig) -> None:
        self.config = config.validate()
        self.origin = SlowOrigin(config)
        self.redis = aioredis.from_url(config.redis_url)
        self.cache_hits = 0
        self.cache_misses = 0
        self.requests = 0
        self._log: TextIO = open(config.log_path, "a", buffering=1)  # noqa: SIM115 (app-long)

    def statistics(self) -> ShopStats:
        return ShopStats(self.requests, self.cache_hits, self.cache_misses, self.origin.queries)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._access_log])
        for path, loader in ROUTES:
            app.router.add_get(path, self._cached(loader))
        app.router.add_get("/", self._index)
        app.router.add_get("/_stats", self._stats)
        app.on_cleanup.append(self._close)
        return app

    def _cached(self, loader: Loader) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            key = cache_key(request.path, request.query)
            body = await self._cache_get(key)
            if body is not None:
                self.cache_hits += 1
                return web.Response(body=body, content_type="application/json",
                                    headers={"X-Cache": "HIT"})
            self.cache_misses += 1
            try:
                document = await loader(self.origin, request)
            except BadRequest as error:
                raise web.HTTPBadRequest(text=f"{error}\n") from None
            body = json.dumps(document, separators=(",", ":")).encode()
            await self._cache_set(key, body)
            return web.Response(body=body, content_type="application/json",
                                headers={"X-Cache": "MISS"})
        return handle

    async def _cache_get(self, key: str) -> bytes | None:
        """The cached body, or None; a Redis outage degrades to the origin, never a 500."""
        try:
            cached = await self.redis.get(key)
            return cached.encode() if isinstance(cached, str) else cached  # bytes: no decoding
        except (redis.exceptions.RedisError, OSError):
            return None

    async def _cache_set(self, key: str, body: bytes) -> None:
        # On failure the answer still goes out; the next request simply misses again.
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await self.redis.set(key, body, ex=self.config.cache_ttl_s)

    async def _index(self, request: web.Request) -> web.Response:
        """The home page; its script makes the first-screen calls (listed for the demo)."""
        now_s = time.time()
        calls = first_screen_calls(datetime.fromtimestamp(now_s, UTC).date(), "eu", "shoes",
                                   (1, 2, 3), "0", article=int(now_s // 1800),
                                   hour=int(now_s // 3600))
        items = "".join(f'<li data-api="{call}">{call}</li>' for call in calls)
        html = (f"<!doctype html><title>warmd demo shop</title><h1>demo shop</h1>"
                f"<p>The first screen calls:</p><ul>{items}</ul>")
        return web.Response(text=html, content_type="text/html")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.statistics()))

    @web.middleware
    async def _access_log(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
        started = time.perf_counter()
        status, size = 500, 0
        try:
            response = await handler(request)
            body = getattr(response, "body", None)
            status, size = response.status, len(body) if isinstance(body, bytes) else 0
            return response
        except web.HTTPException as error:
            status, size = error.status, len(error.text or "")
            raise
        finally:
            if request.path != "/_stats":
                self.requests += 1
                self._write_log_line(request, status, size, time.perf_counter() - started)

    def _write_log_line(self, request: web.Request, status: int, size: int,
                        request_time_s: float) -> None:
        """nginx combined plus $request_time; the user token goes in $remote_user."""
        stamp = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        user = request.headers.get("X-User", "-") or "-"
        agent = request.headers.get("User-Agent", "-").replace('"', "'")
        self._log.write(f'{request.remote or "-"} - {user} [{stamp}] "{request.method} '
                        f'{request.path_qs} HTTP/{request.version.major}.'
                        f'{request.version.minor}" {status} {size} "-" "{agent}" '
                        f"{request_time_s:.3f}\n")

    async def _close(self, app: web.Application) -> None:
        self.origin.close()
        self._log.close()
        await self.redis.aclose()


def parse_arguments(argv: list[str] | None = None) -> ShopConfig:
    parser = argparse.ArgumentParser(prog="python -m warmd.demo.shop", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="redis://127.0.0.1:PORT/0")
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    parser.add_argument("--log", required=True, help="access log, appended to")
    parser.add_argument("--delay-ms", default="20-50", help="origin delay range MIN-MAX")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    low, _, high = args.delay_ms.partition("-")
    try:
        delay_ms_min, delay_ms_max = float(low), float(high or low)
        return ShopConfig(args.port, args.redis, args.db, args.log,
                          query_delay_ms_min=delay_ms_min, query_delay_ms_max=delay_ms_max,
                          seed=args.seed).validate()
    except ValueError as error:
        parser.error(str(error))
        raise  # parser.error exits; this line only satisfies the type checker


def main(argv: list[str] | None = None) -> int:
    config = parse_arguments(argv)
    try:
        if not Path(config.db_path).exists():
            create_database(config.db_path)
        shop = Shop(config)
    except (OSError, sqlite3.Error, ValueError) as error:
        # A bad path or Redis URL is the operator's error: one line, no traceback.
        print(f"shop: cannot start: {error}", file=sys.stderr)
        return 1
    try:
        import uvloop  # the shop is the thing being measured: use the fast loop when present
        uvloop.install()
    except ImportError:
        pass
    web.run_app(shop.application(), host=config.host, port=config.port,
                print=None, access_log=None, handle_signals=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
