"""Built-in readiness checks: a marker file, an HTTP probe, a Redis key, an SQL query.

Paths, URLs, keys and queries are templates filled from the task's context (`{date}` ...);
SQL runs in a thread because DB-API drivers block.
"""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from warmd.cache.http import HttpClient, HttpStatusError
from warmd.cache.resp import RespConnection
from warmd.errors import CacheError, ConfigError
from warmd.hooks.base import Readiness


def fill(template: str, context: Mapping[str, str]) -> str:
    """Fill `{name}` fields from the context; a missing field is a clear config error."""
    try:
        return template.format_map(dict(context))
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(f"template {template!r} needs {error} in the task context") from None


class MarkerFileCheck:
    """Ready when a file such as `/data/dt={date}/_SUCCESS` exists."""

    def __init__(self, path_template: str, name: str = "marker_file") -> None:
        self.path_template, self.name = path_template, name

    async def check(self, context: Mapping[str, str]) -> Readiness:
        path = Path(fill(self.path_template, context))
        exists = await asyncio.to_thread(path.exists)
        return Readiness(exists, f"{path} {'exists' if exists else 'is missing'}")


class HttpProbeCheck:
    """Ready when GET of the URL answers a 2xx status."""

    def __init__(self, url_template: str, *, timeout_s: float = 5.0,
                 name: str = "http_probe") -> None:
        self.url_template, self.name = url_template, name
        self.timeout_s = timeout_s

    async def check(self, context: Mapping[str, str]) -> Readiness:
        url = fill(self.url_template, context)
        client = HttpClient(timeout_s=self.timeout_s)
        try:
            response = await client.get(url)
            return Readiness(True, f"GET {url} -> {response.status}")
        except HttpStatusError as error:
            return Readiness(False, f"GET {url} -> {error.status}")
        except CacheError as error:
            return Readiness(False, f"GET {url} failed: {error}")
        finally:
            await client.close()


class RedisKeyCheck:
    """Ready when a Redis key exists (e.g. `etl:done:{date}`)."""

    def __init__(self, address: str, key_template: str, name: str = "redis_key") -> None:
        from warmd.cache.redis import parse_address

        self.host, self.port = parse_address(address, 6379)
        self.key_template, self.name = key_template, name

    async def check(self, context: Mapping[str, str]) -> Readiness:
        key = fill(self.key_template, context)
        connection = RespConnection(self.host, self.port)
        try:
            exists = await connection.call("EXISTS", key)
        except CacheError as error:
            return Readiness(False, f"redis {self.host}:{self.port} failed: {error}")
        finally:
            await connection.close()
        return Readiness(bool(exists), f"redis key {key} {'exists' if exists else 'is absent'}")


class SqlQueryCheck:
    """Ready when a query returns a first column that is truthy.

    `url` is `sqlite:///path/to.db` (stdlib sqlite3) or `dbapi:<module>` with
    `connect_args`, for any installed DB-API 2 driver (psycopg, pymysql ...).
    """

    def __init__(self, url: str, query_template: str, *, parameters: Sequence[Any] = (),
                 connect_args: Mapping[str, Any] | None = None, name: str = "sql_query") -> None:
        if not (url.startswith("sqlite:///") or url.startswith("dbapi:")):
            raise ConfigError(f"SQL readiness url {url!r} must start with sqlite:/// or dbapi:")
        self.url, self.query_template, self.name = url, query_template, name
        self.parameters = tuple(parameters)
        self.connect_args = dict(connect_args or {})

    def _connect(self) -> Any:
        if self.url.startswith("sqlite:///"):
            path = self.url.removeprefix("sqlite:///")
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        module = importlib.import_module(self.url.removeprefix("dbapi:"))
        return module.connect(**self.connect_args)

    def _run(self, query: str) -> Readiness:
        connection = self._connect()
        try:
            row = connection.cursor().execute(query, self.parameters).fetchone()
        finally:
            connection.close()
        ready = bool(row and row[0])
        return Readiness(ready, f"{query!r} -> {row[0] if row else 'no row'}")

    async def check(self, context: Mapping[str, str]) -> Readiness:
        query = fill(self.query_template, context)
        try:
            return await asyncio.to_thread(self._run, query)
        except (sqlite3.Error, ImportError) as error:
            return Readiness(False, f"{query!r} failed: {error}")
