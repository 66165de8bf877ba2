"""RedisClusterBackend against a real three-master cluster: slots, MOVED and ASK."""

from __future__ import annotations

import subprocess
import uuid

from warmd.cache.base import CacheItem
from warmd.cache.redis_cluster import RedisClusterBackend, key_slot
from warmd.cache.resp import RespConnection, encode_command


def test_key_slot_matches_redis(redis_cluster) -> None:
    """key_slot agrees with the server's CLUSTER KEYSLOT, hash tags included."""
    keys = ["foo", "user:{42}:name", "{}x", "{a}{b}", "ключ", "a{b"]
    port = str(redis_cluster.nodes[0].port)
    for key in keys:
        answer = subprocess.run(["redis-cli", "-p", port, "cluster", "keyslot", key],
                                capture_output=True, text=True, check=True).stdout
        assert key_slot(key) == int(answer), key


async def test_keys_land_on_their_slot_owner(redis_cluster) -> None:
    """A batch spread over all slots is fully written and each node holds only its keys."""
    backend = RedisClusterBackend(redis_cluster.addresses)
    prefix = uuid.uuid4().hex
    items = [CacheItem(f"{prefix}:{n}", b"v", 60) for n in range(3000)]
    outcome = await backend.write_many(items)
    assert outcome.written == 3000 and not outcome.failures
    stats = await backend.stats()
    assert len(stats.nodes) == 3 and all(node.keys > 500 for node in stats.nodes)
    assert backend.redirects_followed == 0
    await backend.close()


async def _owner_and_other(backend: RedisClusterBackend, slot: int) -> tuple[str, str]:
    await backend.refresh_slots()
    owner = backend._slots[slot]
    other = next(a for a in await backend.masters() if a != owner)
    return owner, other


async def _node_id(address: str) -> str:
    host, port = address.split(":")
    connection = RespConnection(host, int(port))
    node_id = (await connection.call("CLUSTER", "MYID")).decode()
    await connection.close()
    return node_id


async def _call(address: str, *args: str) -> object:
    host, port = address.split(":")
    connection = RespConnection(host, int(port))
    try:
        return await connection.call(*args)
    finally:
        await connection.close()


async def test_moved_refreshes_map_and_resends(redis_cluster) -> None:
    """After a slot changes owner, the stale map gets MOVED, refreshes, and the key lands."""
    backend = RedisClusterBackend(redis_cluster.addresses)
    while True:  # only an empty slot can change owner without migrating keys
        key = f"moved:{uuid.uuid4().hex}"
        slot = key_slot(key)
        owner, other = await _owner_and_other(backend, slot)
        if await _call(owner, "CLUSTER", "COUNTKEYSINSLOT", str(slot)) == 0:
            break
    other_id = await _node_id(other)
    for address in redis_cluster.addresses:  # an empty slot can be reassigned directly
        await _call(address, "CLUSTER", "SETSLOT", str(slot), "NODE", other_id)
    outcome = await backend.write_many([CacheItem(key, b"moved", 60)])
    assert outcome.written == 1 and backend.redirects_followed >= 1
    assert await _call(other, "GET", key) == b"moved"
    assert backend._slots[slot] == other
    await backend.close()


async def test_ask_writes_to_importing_node(redis_cluster) -> None:
    """During a slot migration, ASK sends the key to the importing node with ASKING."""
    backend = RedisClusterBackend(redis_cluster.addresses)
    key = f"ask:{uuid.uuid4().hex}"
    slot = key_slot(key)
    owner, other = await _owner_and_other(backend, slot)
    await _call(other, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", await _node_id(owner))
    await _call(owner, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", await _node_id(other))
    try:
        outcome = await backend.write_many([CacheItem(key, b"asked", 60)])
        assert outcome.written == 1 and backend.redirects_followed == 1
        host, port = other.split(":")
        importing = RespConnection(host, int(port))
        replies = await importing.exchange(
            encode_command("ASKING") + encode_command("GET", key), 2)
        await importing.close()
        assert replies == [b"OK", b"asked"]
    finally:
        for address in redis_cluster.addresses:
            await _call(address, "CLUSTER", "SETSLOT", str(slot), "NODE",
                        await _node_id(owner))
    await backend.close()
