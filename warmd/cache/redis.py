"""RedisBackend: one Redis node, batched SETs with TTL over a few raw RESP connections.

The hot path encodes a whole chunk once (`resp.encode_sets`) and checks the replies in bulk;
chunks go out on `connection_count` connections at once so the server never waits on us.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypedDict

import hiredis

from warmd.cache.base import (
    BackendStats,
    Item,
    KeyFailure,
    NodeStats,
    OwnReads,
    WriteOutcome,
    values_bytes,
)
from warmd.cache.resp import RespConnection, encode_command, encode_sets
from warmd.errors import CacheError

DEFAULT_CHUNK_KEYS = 2000
CONNECTION_LEVEL_ERRORS = ("NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "MASTERDOWN")


def parse_address(address: str, default_port: int) -> tuple[str, int]:
    """Split 'host:port' (port optional) and reject garbage with a clear error."""
    host, _, port_text = address.rpartition(":") if ":" in address else (address, "", "")
    if not host:
        host, port_text = address, ""
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise CacheError(f"bad address {address!r}: port is not a number") from None
    if not 0 < port < 65536:
        raise CacheError(f"bad address {address!r}: port out of range")
    return host, port


def parse_info(text: bytes | str) -> dict[str, str]:
    """Parse INFO's 'field:value' lines into a dict (sections flattened)."""
    raw = text.decode() if isinstance(text, bytes) else text
    fields: dict[str, str] = {}
    for line in raw.splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, _, value = line.partition(":")
            fields[name] = value
    return fields


def node_stats_from_info(node: str, info: dict[str, str], db: int | None = None) -> NodeStats:
    """Build NodeStats from INFO fields; keys are those of `db` (summed over the `dbN` lines
    when None). Hits, misses and memory are the server's: Redis keeps them per server."""
    keys = 0
    for name, value in info.items():
        if name.startswith("db") and name[2:].isdigit() and db in (None, int(name[2:])):
            keys += int(value.split(",")[0].partition("=")[2])
    return NodeStats(
        node=node,
        hits=int(info.get("keyspace_hits", 0)),
        misses=int(info.get("keyspace_misses", 0)),
        keys=keys,
        memory_bytes=int(info.get("used_memory", 0)),
        maxmemory_bytes=int(info.get("maxmemory", 0)),
        evictions=int(info.get("evicted_keys", 0)),
        run_id=info.get("run_id", ""),
        expired=int(info.get("expired_keys", 0)),
    )


class NodeOptions(TypedDict, total=False):
    """How a RedisNode connects: what the single, cluster and sentinel backends pass on."""

    connection_count: int
    timeout_s: float
    password: str | None
    db: int


class BackendOptions(NodeOptions, total=False):
    """A backend's options: its nodes' and how many keys a pipelined chunk holds."""

    chunk_keys: int


class RedisNode:
    """A small pool of RESP connections to one node, plus the write/read batching."""

    def __init__(self, host: str, port: int, *, connection_count: int = 4,
                 timeout_s: float = 5.0, password: str | None = None, db: int = 0) -> None:
        if connection_count < 1:
            raise CacheError("connection_count must be >= 1")
        self.address = f"{host}:{port}"
        self.db = db
        self.connections = [RespConnection(host, port, timeout_s=timeout_s, password=password,
                                           db=db)
                            for _ in range(connection_count)]
        self._next = 0

    def connection(self) -> RespConnection:
        """Round-robin over the pool for single commands."""
        self._next = (self._next + 1) % len(self.connections)
        return self.connections[self._next]

    async def write_chunks(self, chunks: list[Sequence[Item]],
                           only_if_absent: bool) -> list[tuple[Sequence[Item], object]]:
        """Send chunks over all connections at once; return each chunk with its replies."""
        queue = list(reversed(chunks))
        results: list[tuple[Sequence[Item], object]] = []

        async def worker(connection: RespConnection) -> None:
            while queue:
                chunk = queue.pop()
                payload = encode_sets(chunk, only_if_absent)
                # With NX a nil reply must be matched to its key, so no counting shortcut.
                send = connection.exchange if only_if_absent else connection.exchange_counted
                results.append((chunk, await send(payload, len(chunk))))

        workers = self.connections[: max(1, min(len(self.connections), len(chunks)))]
        await asyncio.gather(*(worker(c) for c in workers))
        return results

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()


def outcome_from_replies(chunk: Sequence[Item], replies: object) -> WriteOutcome:
    """Turn one chunk's replies (counts, or a full list with errors) into a WriteOutcome."""
    if isinstance(replies, tuple):  # counted fast path: only +OK replies (never with NX)
        written, skipped = replies
        return WriteOutcome(written, skipped, (), values_bytes(chunk))
    failures, written, skipped, value_bytes = [], 0, 0, 0
    for (key, value, _), reply in zip(chunk, replies, strict=True):  # type: ignore[call-overload]
        if isinstance(reply, hiredis.ReplyError):
            if str(reply).startswith(CONNECTION_LEVEL_ERRORS):  # not about this key
                raise CacheError(f"redis refused the connection's commands: {reply}")
            failures.append(KeyFailure(key, str(reply)))
        elif reply is None:
            skipped += 1
        else:
            written += 1
            value_bytes += len(value)
    return WriteOutcome(written, skipped, tuple(failures), value_bytes)


class RedisBackend:
    """A standalone Redis node behind the CacheBackend protocol."""

    def __init__(self, address: str, *, connection_count: int = 4, timeout_s: float = 5.0,
                 password: str | None = None, chunk_keys: int = DEFAULT_CHUNK_KEYS,
                 name: str | None = None, db: int = 0) -> None:
        host, port = parse_address(address, 6379)
        self.name = name or (f"redis://{host}:{port}" + (f"/{db}" if db else ""))
        self.chunk_keys = chunk_keys
        self.node = RedisNode(host, port, connection_count=connection_count,
                              timeout_s=timeout_s, password=password, db=db)
        self._own_hits = 0
        self._own_misses = 0

    async def write_many(self, items: Sequence[Item], *,
                         only_if_absent: bool = False) -> WriteOutcome:
        """Write a batch; failures are per key (e.g. OOM), never an exception per key."""
        if not items:
            return WriteOutcome(0, 0)
        chunks = [items[start:start + self.chunk_keys]
                  for start in range(0, len(items), self.chunk_keys)]
        results = await self.node.write_chunks(chunks, only_if_absent)
        return WriteOutcome.combine([outcome_from_replies(c, r) for c, r in results])

    async def read_many(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        """MGET the keys; the hits and misses this causes are recorded as own reads."""
        if not keys:
            return {}
        reply = await self.node.connection().call("MGET", *keys)
        values = dict(zip(keys, reply, strict=True))  # type: ignore[call-overload]
        self.record_own_reads(values)
        return values

    def record_own_reads(self, values: dict[str, bytes | None]) -> None:
        hits = sum(1 for value in values.values() if value is not None)
        self._own_hits += hits
        self._own_misses += len(values) - hits

    async def idle_seconds(self, keys: Sequence[str]) -> dict[str, int | None]:
        """OBJECT IDLETIME per key (None if absent): shows whether a key was read lately
        without touching its LRU clock; counted as own reads."""
        payload = b"".join(encode_command("OBJECT", "IDLETIME", key) for key in keys)
        replies = await self.node.connection().exchange(payload, len(keys))
        idle = {key: (reply if isinstance(reply, int) else None)
                for key, reply in zip(keys, replies, strict=True)}
        self.record_own_reads({k: (b"" if v is not None else None) for k, v in idle.items()})
        return idle

    async def stats(self) -> BackendStats:
        info = parse_info(await self.node.connection().call("INFO"))  # type: ignore[arg-type]
        return BackendStats(self.name, (node_stats_from_info(self.node.address, info,
                                                             self.node.db),),
                            OwnReads(self._own_hits, self._own_misses))

    async def ping(self) -> None:
        await self.node.connection().call("PING")

    async def close(self) -> None:
        await self.node.close()
