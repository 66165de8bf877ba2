"""RedisClusterBackend: slot-aware batching over the masters of a Redis Cluster.

Keys are grouped by the node that owns their slot (CRC16 of the key or its {hash tag},
from CLUSTER SLOTS) and each group is pipelined like a standalone node. A MOVED reply
refreshes the slot map and resends; an ASK reply resends once with ASKING to the target.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
from collections.abc import Sequence

import hiredis

from warmd.cache.base import BackendStats, Item, KeyFailure, OwnReads, WriteOutcome
from warmd.cache.redis import (
    DEFAULT_CHUNK_KEYS,
    NodeOptions,
    RedisNode,
    node_stats_from_info,
    outcome_from_replies,
    parse_address,
    parse_info,
)
from warmd.cache.resp import encode_command, encode_sets
from warmd.errors import CacheError, CacheUnavailable

SLOT_COUNT = 16384
MAX_REDIRECT_ROUNDS = 5


def key_slot(key: str | bytes) -> int:
    """The cluster slot of a key: CRC16-XMODEM (crc_hqx, init 0) of the hash tag or key."""
    raw = key.encode() if isinstance(key, str) else key
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1:end]
    return binascii.crc_hqx(raw, 0) % SLOT_COUNT


def slot_table_from_reply(reply: list) -> list[str | None]:
    """Map every slot to its master's 'host:port' from a CLUSTER SLOTS reply."""
    table: list[str | None] = [None] * SLOT_COUNT
    for entry in reply:
        start, end, master = entry[0], entry[1], entry[2]
        host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
        address = f"{host}:{int(master[1])}"
        for slot in range(int(start), int(end) + 1):
            table[slot] = address
    return table


def _redirect(reply: object) -> tuple[str, str] | None:
    """('MOVED'|'ASK', 'host:port') when `reply` is a redirection error, else None."""
    if isinstance(reply, hiredis.ReplyError):
        words = str(reply).split()
        if len(words) == 3 and words[0] in ("MOVED", "ASK"):
            return words[0], words[2]
    return None


class RedisClusterBackend:
    """A Redis Cluster behind the CacheBackend protocol; writes go to slot owners."""

    def __init__(self, seed_addresses: Sequence[str], *, connection_count: int = 2,
                 timeout_s: float = 5.0, password: str | None = None,
                 chunk_keys: int = DEFAULT_CHUNK_KEYS, name: str | None = None) -> None:
        if not seed_addresses:
            raise CacheError("a redis cluster needs at least one seed address")
        self.seeds = [parse_address(a, 6379) for a in seed_addresses]
        self.name = name or f"redis-cluster://{','.join(seed_addresses)}"
        self.chunk_keys = chunk_keys
        self._options: NodeOptions = {"connection_count": connection_count,
                                      "timeout_s": timeout_s, "password": password}
        self._nodes: dict[str, RedisNode] = {}
        self._slots: list[str | None] = []
        self._refresh_lock = asyncio.Lock()
        self._own_hits = 0
        self._own_misses = 0
        self.redirects_followed = 0

    def _node(self, address: str) -> RedisNode:
        if address not in self._nodes:
            host, port = parse_address(address, 6379)
            self._nodes[address] = RedisNode(host, port, **self._options)
        return self._nodes[address]

    async def refresh_slots(self) -> None:
        """Reload the slot map from the first node that answers CLUSTER SLOTS."""
        async with self._refresh_lock:
            candidates = list(dict.fromkeys(
                [*self._nodes, *(f"{h}:{p}" for h, p in self.seeds)]))
            last_error: Exception | None = None
            for address in candidates:
                try:
                    reply = await self._node(address).connection().call("CLUSTER", "SLOTS")
                except CacheError as error:
                    last_error = error
                    continue
                self._slots = slot_table_from_reply(reply)  # type: ignore[arg-type]
                return
            raise CacheUnavailable(self.name, f"no node answered CLUSTER SLOTS: {last_error}")

    async def _owner(self, key: str) -> str:
        if not self._slots:
            await self.refresh_slots()
        owner = self._slots[key_slot(key)]
        if owner is None:
            raise CacheError(f"{self.name}: slot {key_slot(key)} has no owner")
        return owner

    async def _group(self, items: Sequence[Item]) -> dict[str, list[Item]]:
        if not self._slots:
            await self.refresh_slots()
        groups: dict[str, list[Item]] = {}
        slots = self._slots
        for item in items:
            owner = slots[key_slot(item[0])]
            if owner is None:
                raise CacheError(f"{self.name}: slot {key_slot(item[0])} has no owner")
            groups.setdefault(owner, []).append(item)
        return groups

    async def write_many(self, items: Sequence[Item], *,
                         only_if_absent: bool = False) -> WriteOutcome:
        """Write a batch grouped by slot owner; follow MOVED/ASK until settled."""
        outcomes: list[WriteOutcome] = []
        pending: Sequence[Item] = items
        for _ in range(MAX_REDIRECT_ROUNDS):
            if not pending:
                break
            groups = await self._group(pending)
            try:
                results = await asyncio.gather(*(
                    self._write_node(address, group, only_if_absent)
                    for address, group in groups.items()))
            except CacheUnavailable:
                # A node is gone: after a failover the map is stale, so the caller's
                # retry should see the new owners.
                with contextlib.suppress(CacheError):
                    await self.refresh_slots()
                raise
            pending = []
            moved = False
            for outcome, redirected, was_moved in results:
                outcomes.append(outcome)
                pending.extend(redirected)
                moved = moved or was_moved
            if moved:
                await self.refresh_slots()
        failures = tuple(KeyFailure(i[0], "too many cluster redirections") for i in pending)
        outcomes.append(WriteOutcome(0, 0, failures))
        return WriteOutcome.combine(outcomes)

    async def _write_node(self, address: str, group: list[Item], only_if_absent: bool
                          ) -> tuple[WriteOutcome, list[Item], bool]:
        """Write one node's share; return its outcome, items MOVED away, and whether any
        MOVED was seen (ASK targets are written here, with ASKING, at once)."""
        node = self._node(address)
        chunks: list[Sequence[Item]] = [
            group[s:s + self.chunk_keys] for s in range(0, len(group), self.chunk_keys)]
        outcomes, moved_items, asked = [], [], []
        for chunk, replies in await node.write_chunks(chunks, only_if_absent):
            if isinstance(replies, tuple):
                outcomes.append(outcome_from_replies(chunk, replies))
                continue
            kept_items, kept_replies = [], []
            for item, reply in zip(chunk, replies, strict=True):  # type: ignore[call-overload]
                redirect = _redirect(reply)
                if redirect is None:
                    kept_items.append(item)
                    kept_replies.append(reply)
                elif redirect[0] == "MOVED":
                    moved_items.append(item)
                else:
                    asked.append((redirect[1], item))
            outcomes.append(outcome_from_replies(kept_items, kept_replies))
        for target, item in asked:
            outcomes.append(await self._write_asking(target, item, only_if_absent))
        self.redirects_followed += len(moved_items) + len(asked)
        return WriteOutcome.combine(outcomes), moved_items, bool(moved_items)

    async def _write_asking(self, target: str, item: Item,
                            only_if_absent: bool) -> WriteOutcome:
        payload = encode_command("ASKING") + encode_sets([item], only_if_absent)
        replies = await self._node(target).connection().exchange(payload, 2)
        return outcome_from_replies([item], replies[1:])

    async def read_many(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        """Pipelined GETs per slot owner (MGET would fail across slots)."""
        by_owner: dict[str, list[str]] = {}
        for key in keys:
            by_owner.setdefault(await self._owner(key), []).append(key)
        values: dict[str, bytes | None] = {}
        for address, group in by_owner.items():
            payload = b"".join(encode_command("GET", key) for key in group)
            replies = await self._node(address).connection().exchange(payload, len(group))
            for key, reply in zip(group, replies, strict=True):
                if isinstance(reply, hiredis.ReplyError):
                    raise CacheError(f"{self.name}: GET {key!r}: {reply}")
                values[key] = reply  # type: ignore[assignment]
        hits = sum(1 for value in values.values() if value is not None)
        self._own_hits += hits
        self._own_misses += len(values) - hits
        return values

    async def masters(self) -> list[str]:
        if not self._slots:
            await self.refresh_slots()
        return sorted({a for a in self._slots if a is not None})

    async def stats(self) -> BackendStats:
        nodes = []
        for address in await self.masters():
            info = parse_info(await self._node(address).connection().call("INFO"))  # type: ignore[arg-type]
            nodes.append(node_stats_from_info(address, info))
        return BackendStats(self.name, tuple(nodes), OwnReads(self._own_hits, self._own_misses))

    async def ping(self) -> None:
        for address in await self.masters():
            await self._node(address).connection().call("PING")

    async def close(self) -> None:
        for node in self._nodes.values():
            await node.close()
