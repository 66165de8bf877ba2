"""RedisBackend and the RESP encoder against a real redis-server."""

from __future__ import annotations

import asyncio
import uuid

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warmd.cache.base import CacheItem, ItemColumns, values_bytes
from warmd.cache.redis import RedisBackend, parse_address
from warmd.cache.resp import (
    _PIECES,
    RespConnection,
    _SetPieces,
    all_short_replies,
    encode_command,
    encode_sets,
)
from warmd.errors import CacheError, CacheUnavailable, InvariantViolation
from warmd.testing.servers import start_redis


def test_encode_sets_is_valid_resp() -> None:
    """A batch encodes to RESP that hiredis parses back into the exact SET commands."""
    items = [CacheItem("k1", b"v\r\n1", 60), CacheItem("ключ", b"", 0)]
    parser = hiredis.Reader()
    parser.feed(encode_sets(items, only_if_absent=True))
    assert parser.gets() == [b"SET", b"k1", b"v\r\n1", b"EX", b"60", b"NX"]
    assert parser.gets() == [b"SET", "ключ".encode(), b"", b"NX"]
    assert parser.gets() is False


_ITEMS = st.lists(st.tuples(st.text(min_size=1, max_size=40), st.binary(max_size=300),
                            st.integers(min_value=0, max_value=10**9)), max_size=30)


@settings(max_examples=150, deadline=None)
@given(items=_ITEMS, only_if_absent=st.booleans())
def test_batch_encoding_equals_one_command_at_a_time(items, only_if_absent: bool) -> None:
    """The piece-cached batch encoder emits exactly the bytes of one SET per item."""
    expected = b"".join(
        encode_command("SET", key, value, *(("EX", ttl_s) if ttl_s > 0 else ()),
                       *(("NX",) if only_if_absent else ()))
        for key, value, ttl_s in items)
    assert encode_sets(items, only_if_absent) == expected
    columns = ItemColumns(*(tuple(column) for column in zip(*items, strict=True))) if items \
        else ItemColumns((), (), ())
    assert encode_sets(columns, only_if_absent) == expected


def test_encoding_stays_right_when_its_piece_caches_overflow() -> None:
    """More distinct value lengths than the cache holds: it clears itself, output stays exact."""
    items = [CacheItem(f"k{n}", b"x" * n, 1 + n) for n in range(_SetPieces.MAX_PIECES + 50)]
    parser = hiredis.Reader()
    parser.feed(encode_sets(items, only_if_absent=False))
    for key, value, ttl_s in items:
        assert parser.gets() == [b"SET", key.encode(), value, b"EX", str(ttl_s).encode()]
    assert len(_PIECES.value_heads) <= _SetPieces.MAX_PIECES


def test_item_columns_behave_as_a_sequence_of_items() -> None:
    """Columns iterate, index and slice as (key, value, ttl_s) tuples; lengths must agree."""
    columns = ItemColumns(("a", "b", "c"), (b"1", b"22", b"333"), (1, 2, 3))
    assert list(columns) == [("a", b"1", 1), ("b", b"22", 2), ("c", b"333", 3)]
    assert columns[1] == ("b", b"22", 2) and len(columns) == 3
    assert columns[1:] == ItemColumns(("b", "c"), (b"22", b"333"), (2, 3))
    assert values_bytes(columns) == 6 == values_bytes(list(columns))
    with pytest.raises(InvariantViolation):
        ItemColumns(("a",), (), (1,))


def test_short_reply_counting() -> None:
    """Bulk counting accepts only a buffer made entirely of +OK and nil replies."""
    assert all_short_replies(b"+OK\r\n$-1\r\n+OK\r\n", 3) == (2, 1)
    assert all_short_replies(b"+OK\r\n-ERR\r\n", 2) is None
    assert all_short_replies(b"+OK\r\n", 2) is None


@pytest.mark.parametrize("address", ["host:notaport", "host:70000"])
def test_bad_address_is_a_clear_error(address: str) -> None:
    """A malformed address raises CacheError naming it."""
    with pytest.raises(CacheError, match="bad address"):
        parse_address(address, 6379)


async def test_ttl_is_set_on_every_key(redis_server) -> None:
    """Each key gets the TTL its item asked for (checked with TTL on the server)."""
    backend = RedisBackend(redis_server.address)
    prefix = uuid.uuid4().hex
    items = [CacheItem(f"{prefix}:{n}", b"x", 100 + n) for n in range(20)]
    await backend.write_many(items)
    connection = RespConnection("127.0.0.1", redis_server.port)
    ttls = [await connection.call("TTL", item.key) for item in items]
    assert all(item.ttl_s - 2 <= ttl <= item.ttl_s for item, ttl in zip(items, ttls, strict=True))
    await connection.close()
    await backend.close()


async def test_error_reply_fails_only_its_key(redis_server) -> None:
    """A key whose SET the server refuses is a per-key failure; the batch's others land."""
    backend = RedisBackend(redis_server.address)
    prefix = uuid.uuid4().hex
    connection = RespConnection("127.0.0.1", redis_server.port)
    await connection.call("CONFIG", "SET", "maxmemory", "1")  # every write now gets -OOM
    try:
        outcome = await backend.write_many([CacheItem(f"{prefix}:a", b"1", 10)])
    finally:
        await connection.call("CONFIG", "SET", "maxmemory", "0")
    assert outcome.written == 0 and len(outcome.failures) == 1
    assert "OOM" in outcome.failures[0].reason
    assert encode_command("PING") == b"*1\r\n$4\r\nPING\r\n"
    await connection.close()
    await backend.close()


async def test_reconnects_after_server_closes_connection(redis_server) -> None:
    """After the server kills our pooled connection, the next batch reconnects and lands."""
    backend = RedisBackend(redis_server.address, connection_count=1)
    await backend.write_many([CacheItem("reconnect:1", b"1", 10)])
    admin = RespConnection("127.0.0.1", redis_server.port)
    await admin.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    outcome = await backend.write_many([CacheItem("reconnect:2", b"2", 10)])
    assert outcome.written == 1 and not outcome.failures
    await admin.close()
    await backend.close()


async def test_stale_connection_resends_once_after_restart() -> None:
    """A connection whose server restarted fails before any reply arrives; it reconnects
    and resends once, so the command succeeds against the new server process."""
    server = start_redis()
    port = server.port
    connection = RespConnection("127.0.0.1", port)
    try:
        assert await connection.call("SET", "restart:k", "old") == b"OK"
        server.stop()
        server = start_redis(port=port)
        # No await between the restart and the call: the loop has not yet seen the old
        # socket close, so the payload really goes out on the stale connection first.
        assert await connection.call("GET", "restart:k") is None  # a new, empty server
        assert connection.reconnects == 1
        assert await connection.call("PING") == b"PONG" and connection.reconnects == 1
    finally:
        await connection.close()
        server.stop()


async def test_backend_writes_cleanly_across_restarts() -> None:
    """Every pooled connection of a backend goes stale in a restart, yet the batch right
    after it (and one after the close was noticed) writes every key without a failure."""
    server = start_redis()
    port = server.port
    backend = RedisBackend(server.address, connection_count=4, chunk_keys=10)
    try:
        assert (await backend.write_many(_batch("before", 40))).written == 40
        for label, settle_s in (("at-once", 0.0), ("later", 0.05)):
            server.stop()
            server = start_redis(port=port)
            if settle_s:
                await asyncio.sleep(settle_s)  # the loop sees the old sockets close first
            outcome = await backend.write_many(_batch(label, 40))
            assert (outcome.written, outcome.failures) == (40, ()), label
        assert (await backend.stats()).nodes[0].keys == 40
    finally:
        await backend.close()
        server.stop()


async def test_dead_server_is_one_clear_error() -> None:
    """With the server gone for good, the resend's reconnect fails with CacheUnavailable."""
    server = start_redis()
    connection = RespConnection("127.0.0.1", server.port, timeout_s=1.0)
    try:
        await connection.call("PING")
        server.stop()
        with pytest.raises(CacheUnavailable, match="unavailable"):
            await connection.call("PING")
    finally:
        await connection.close()
        server.stop()


def _batch(prefix: str, count: int) -> list[CacheItem]:
    return [CacheItem(f"{prefix}:{n}", b"v", 60) for n in range(count)]


async def test_password_is_sent_and_missing_password_is_one_clear_error() -> None:
    """With requirepass, the right password writes; none or a wrong one fails the batch
    once with the server's reason instead of one failure per key."""
    server = start_redis(extra_args=("--requirepass", "s3cret"))
    try:
        good = RedisBackend(server.address, password="s3cret")
        assert (await good.write_many([CacheItem("auth:k", b"v", 10)])).written == 1
        await good.close()
        for password in (None, "wrong"):
            bad = RedisBackend(server.address, password=password)
            with pytest.raises(CacheError, match=r"NOAUTH|WRONGPASS"):
                await bad.write_many([CacheItem(f"auth:{n}", b"v", 10) for n in range(50)])
            await bad.close()
    finally:
        server.stop()


async def test_db_is_selected_on_every_connection(redis_server) -> None:
    """A backend on db 3 writes, reads and counts keys there and leaves db 0 untouched,
    also after the server closed its connections (a reconnect SELECTs again)."""
    key = f"db3-{uuid.uuid4().hex}"
    backend = RedisBackend(redis_server.address, db=3, connection_count=1)
    default_db = RespConnection("127.0.0.1", redis_server.port)
    db3 = RespConnection("127.0.0.1", redis_server.port, db=3)
    try:
        await backend.write_many([CacheItem(key, b"v", 60)])
        assert await db3.call("GET", key) == b"v"
        assert await default_db.call("EXISTS", key) == 0
        await default_db.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert await backend.read_many([key]) == {key: b"v"}
        stats = await backend.stats()
        assert stats.nodes[0].keys == await db3.call("DBSIZE")
        assert backend.name.endswith("/3")
    finally:
        await db3.call("DEL", key)
        await backend.close()
        await db3.close()
        await default_db.close()
