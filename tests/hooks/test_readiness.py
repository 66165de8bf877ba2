"""Built-in readiness checks against real files, an HTTP origin, redis and SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from warmd.cache.resp import RespConnection
from warmd.errors import ConfigError
from warmd.hooks.readiness import (
    HttpProbeCheck,
    MarkerFileCheck,
    RedisKeyCheck,
    SqlQueryCheck,
    fill,
)
from warmd.testing.origin import TestOrigin


async def test_marker_file_with_templated_date(tmp_path: Path) -> None:
    """`{date}` in the path is filled from the context; ready only once the file exists."""
    check = MarkerFileCheck(str(tmp_path / "dt={date}" / "_SUCCESS"))
    context = {"date": "2026-11-29"}
    missing = await check.check(context)
    assert not missing.ready and "dt=2026-11-29/_SUCCESS is missing" in missing.detail
    (tmp_path / "dt=2026-11-29").mkdir()
    (tmp_path / "dt=2026-11-29" / "_SUCCESS").touch()
    assert (await check.check(context)).ready


def test_template_missing_field_is_config_error() -> None:
    """A template field absent from the context is a ConfigError that names it."""
    with pytest.raises(ConfigError, match="date"):
        fill("/data/dt={date}", {})


async def test_http_probe_follows_status() -> None:
    """The probe is ready on 2xx and not ready on 404 or an unreachable origin."""
    async with TestOrigin() as origin:
        assert (await HttpProbeCheck(origin.url + "/health").check({})).ready
        gone = await HttpProbeCheck(origin.url + "/missing/{date}").check({"date": "x"})
        assert not gone.ready and "404" in gone.detail
    closed = await HttpProbeCheck(origin.url + "/health", timeout_s=1).check({})
    assert not closed.ready and "failed" in closed.detail


async def test_redis_key_check(redis_server) -> None:
    """Ready when the templated key exists on the real redis."""
    check = RedisKeyCheck(redis_server.address, "etl:done:{date}")
    assert not (await check.check({"date": "d1"})).ready
    connection = RespConnection("127.0.0.1", redis_server.port)
    await connection.call("SET", "etl:done:d1", "1")
    await connection.close()
    assert (await check.check({"date": "d1"})).ready


async def test_sql_query_via_sqlite_url_and_dbapi_module(tmp_path: Path) -> None:
    """A query returning a truthy first column is ready, through sqlite:/// and dbapi:."""
    path = tmp_path / "etl.db"
    with sqlite3.connect(path) as db:
        db.execute("create table runs (day text, done integer)")
        db.execute("insert into runs values ('2026-11-29', 1)")
    query = "select done from runs where day = '{date}'"
    by_url = SqlQueryCheck(f"sqlite:///{path}", query)
    assert (await by_url.check({"date": "2026-11-29"})).ready
    assert not (await by_url.check({"date": "2026-11-30"})).ready
    by_module = SqlQueryCheck("dbapi:sqlite3", "select count(*) from runs where done = ?",
                              parameters=(1,), connect_args={"database": str(path)})
    assert (await by_module.check({})).ready


async def test_sql_errors_are_not_ready_and_bad_urls_rejected(tmp_path: Path) -> None:
    """A failing query is 'not ready' with the error; an unknown URL scheme is a ConfigError."""
    broken = SqlQueryCheck(f"sqlite:///{tmp_path / 'absent.db'}", "select 1")
    answer = await broken.check({})
    assert not answer.ready and "failed" in answer.detail
    with pytest.raises(ConfigError, match="sqlite:///"):
        SqlQueryCheck("postgres://x", "select 1")
