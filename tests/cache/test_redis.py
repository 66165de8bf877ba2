"""RedisBackend and the RESP encoder against a real redis-server."""

from __future__ import annotations

import contextlib
import uuid

import hiredis
import pytest

from warmd.cache.base import CacheItem
from warmd.cache.redis import RedisBackend, parse_address
from warmd.cache.resp import RespConnection, all_short_replies, encode_command, encode_sets
from warmd.errors import CacheError


def test_encode_sets_is_valid_resp() -> None:
    """A batch encodes to RESP that hiredis parses back into the exact SET commands."""
    items = [CacheItem("k1", b"v\r\n1", 60), CacheItem("ключ", b"", 0)]
    parser = hiredis.Reader()
    parser.feed(encode_sets(items, only_if_absent=True))
    assert parser.gets() == [b"SET", b"k1", b"v\r\n1", b"EX", b"60", b"NX"]
    assert parser.gets() == [b"SET", "ключ".encode(), b"", b"NX"]
    assert parser.gets() is False


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
    """After the server kills our connections, the next batch fails cleanly or reconnects."""
    backend = RedisBackend(redis_server.address, connection_count=1)
    await backend.write_many([CacheItem("reconnect:1", b"1", 10)])
    admin = RespConnection("127.0.0.1", redis_server.port)
    await admin.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    with contextlib.suppress(CacheError):  # the dead connection is dropped, then reopened
        await backend.write_many([CacheItem("reconnect:2", b"2", 10)])
    outcome = await backend.write_many([CacheItem("reconnect:3", b"3", 10)])
    assert outcome.written == 1
    await admin.close()
    await backend.close()


async def test_password_is_sent_and_missing_password_is_one_clear_error() -> None:
    """With requirepass, the right password writes; none or a wrong one fails the batch
    once with the server's reason instead of one failure per key."""
    from warmd.testing.servers import start_redis

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
