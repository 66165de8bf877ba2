"""MemcacheBackend specifics: key rules, hashing across servers, both write paths."""

from __future__ import annotations

import uuid

import pytest

from warmd.cache.base import CacheItem, InvalidKey
from warmd.cache.memcache import (
    HASHED_KEY_PREFIX,
    Crc32Rendezvous,
    MemcacheBackend,
    all_keys_valid,
    key_problem,
    storable_key,
)
from warmd.errors import CacheError, CacheUnavailable
from warmd.testing.servers import free_port


@pytest.mark.parametrize(("key", "problem"), [
    ("a b", "space"), ("a\nb", "control"), ("x" * 251, "longer than 250"), ("", "empty"),
    ("\x7f", "control"),
])
def test_key_problems_are_named(key: str, problem: str) -> None:
    """Each kind of key memcached cannot store is reported with its reason."""
    assert problem in (key_problem(key) or "")


@pytest.mark.parametrize("keys", [
    [], ["a", "b:1", "x" * 250], ["a", "b c"], ["ok", ""], ["ok", "x" * 251], ["ok", "\x00"],
    ["é" * 125], ["é" * 126], ["ok", "tab\there"],
])
def test_batch_key_check_agrees_with_the_per_key_check(keys: list[str]) -> None:
    """The whole-batch check says "all valid" exactly when no key has a problem (a
    non-ASCII batch is never passed whole: its character count is not its byte count)."""
    valid = all(key_problem(key) is None for key in keys)
    assert all_keys_valid(keys) == (valid and "".join(keys).isascii())


def test_hashing_invalid_keys_is_stable_and_storable() -> None:
    """A hashed stand-in is valid, stable, and only used when hashing is allowed."""
    long_key = "k" * 400
    hashed = storable_key(long_key, hash_invalid=True)
    assert hashed.startswith(HASHED_KEY_PREFIX) and key_problem(hashed) is None
    assert hashed == storable_key(long_key, hash_invalid=True)
    assert storable_key("fine", hash_invalid=True) == "fine"
    with pytest.raises(InvalidKey, match="longer than"):
        storable_key(long_key, hash_invalid=False)


def test_rendezvous_spreads_and_is_consistent() -> None:
    """Keys spread over the nodes, and removing a node moves only that node's keys."""
    three = Crc32Rendezvous(["a:1", "b:1", "c:1"])
    two = Crc32Rendezvous(["a:1", "b:1"])
    keys = [f"key:{n}" for n in range(3000)]
    owners = [three.get_node(k) for k in keys]
    assert all(owners.count(node) > 800 for node in ("a:1", "b:1", "c:1"))
    assert all(two.get_node(k) == o for k, o in zip(keys, owners, strict=True) if o != "c:1")


@pytest.mark.parametrize("write_path", ["raw", "pymemcache"])
async def test_invalid_keys_fail_one_by_one(memcached_servers, write_path: str) -> None:
    """Invalid keys in a batch fail with their reason; the valid ones are stored."""
    backend = MemcacheBackend([s.address for s in memcached_servers], write_path=write_path)
    good = f"good:{uuid.uuid4().hex}"
    outcome = await backend.write_many([CacheItem(good, b"1", 60), CacheItem("has space", b"2", 60),
                                        CacheItem("y" * 300, b"3", 60)])
    assert outcome.written == 1
    assert sorted(f.reason for f in outcome.failures) == [
        "contains a space or control character", "longer than 250 bytes"]
    assert (await backend.read_many([good]))[good] == b"1"
    await backend.close()


async def test_hashed_keys_read_back_by_original_name(memcached_servers) -> None:
    """With hash_invalid_keys, an over-long key is stored hashed and read by its own name."""
    backend = MemcacheBackend([s.address for s in memcached_servers], hash_invalid_keys=True)
    long_key = "long:" + "z" * 300 + uuid.uuid4().hex
    outcome = await backend.write_many([CacheItem(long_key, b"payload", 60)])
    assert outcome.written == 1 and not outcome.failures
    assert await backend.read_many([long_key]) == {long_key: b"payload"}
    await backend.close()


async def test_keys_spread_over_both_servers(memcached_servers) -> None:
    """A batch lands on both servers, and raw writes are found by HashClient reads."""
    backend = MemcacheBackend([s.address for s in memcached_servers])
    before = await backend.stats()
    prefix = uuid.uuid4().hex
    items = [CacheItem(f"{prefix}:{n}", b"v", 60) for n in range(2000)]
    await backend.write_many(items)
    after = await backend.stats()
    gained = [a.keys - b.keys for a, b in zip(after.nodes, before.nodes, strict=True)]
    assert sum(gained) == 2000 and min(gained) > 700
    values = await backend.read_many([item.key for item in items[:200]])
    assert all(value == b"v" for value in values.values())
    await backend.close()


def test_unknown_write_path_is_rejected() -> None:
    """A write path other than raw or pymemcache is a clear error."""
    with pytest.raises(CacheError, match="write_path"):
        MemcacheBackend(["127.0.0.1:1"], write_path="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize("write_path", ["raw", "pymemcache"])
async def test_oversized_value_fails_only_its_key(memcached_servers, write_path: str) -> None:
    """A value above memcached's item size limit fails that key; its neighbours are stored."""
    backend = MemcacheBackend([s.address for s in memcached_servers], write_path=write_path)
    prefix = uuid.uuid4().hex
    items = [CacheItem(f"{prefix}:small1", b"a", 60),
             CacheItem(f"{prefix}:huge", b"x" * (2 * 1024 * 1024), 60),
             CacheItem(f"{prefix}:small2", b"b", 60)]
    outcome = await backend.write_many(items)
    assert outcome.written == 2 and [f.key for f in outcome.failures] == [f"{prefix}:huge"]
    values = await backend.read_many([f"{prefix}:small1", f"{prefix}:small2"])
    assert list(values.values()) == [b"a", b"b"]
    await backend.close()


async def test_many_batches_in_flight_all_land(memcached_servers) -> None:
    """A write of many small batches (two in flight on one connection) stores every key
    with its own value, and reports them all written."""
    backend = MemcacheBackend([memcached_servers[0].address], batch_keys=7)
    prefix = uuid.uuid4().hex[:8]
    items = [CacheItem(f"{prefix}:{n}", b"v%d" % n, 60) for n in range(200)]
    outcome = await backend.write_many(items)
    assert (outcome.written, outcome.failures) == (200, ())
    found = await backend.read_many([key for key, _, _ in items])
    assert found == {key: value for key, value, _ in items}
    await backend.close()


async def test_unreachable_server_fails_the_write_once() -> None:
    """With the server gone, a many-batch write raises CacheUnavailable (no batch hangs)."""
    backend = MemcacheBackend([f"127.0.0.1:{free_port()}"], batch_keys=3, timeout_s=1.0)
    with pytest.raises(CacheUnavailable):
        await backend.write_many([CacheItem(f"k{n}", b"v", 60) for n in range(20)])
    await backend.close()
