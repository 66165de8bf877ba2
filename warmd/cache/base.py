"""The CacheBackend protocol and the value types every backend speaks.

Backends translate their client library's exceptions into `CacheError` subclasses here, so
that no redis, pymemcache or aiohttp exception reaches the warmer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import NamedTuple, Protocol, overload, runtime_checkable

from warmd.errors import CacheError, CacheUnavailable, invariant

__all__ = [
    "BackendStats",
    "CacheBackend",
    "CacheError",
    "CacheItem",
    "CacheUnavailable",
    "InvalidKey",
    "Item",
    "ItemColumns",
    "KeyFailure",
    "NodeStats",
    "OwnReads",
    "WriteOutcome",
]


class InvalidKey(CacheError):
    """A key the backend cannot store (too long, spaces or control characters)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid key {key[:60]!r}: {reason}")
        self.key = key
        self.reason = reason


Item = tuple[str, bytes, int]  # (key, value, ttl_s): what every backend reads of an item


class CacheItem(NamedTuple):
    """One key to write: a NamedTuple, not a dataclass, because a batch holds 10^5 of them
    and the hot path unpacks them (it is still immutable and typed).

    Backends also accept plain `(key, value, ttl_s)` tuples and only index or unpack items:
    CPython stops tracking plain tuples of str/bytes/int in the garbage collector, but not
    tuple subclasses, so building 10^5 NamedTuples costs ~3.5 us each in GC passes against
    ~0.25 us for plain tuples (measured; the runner builds no tuples: see ItemColumns).
    """

    key: str
    value: bytes
    ttl_s: int  # 0 means no expiry


@dataclass(frozen=True, slots=True)
class ItemColumns(Sequence[Item]):
    """A batch of items held as three parallel columns instead of one tuple per item.

    Why: the runner fills 10^5 keys per second, and a tuple per item costs an allocation,
    a zip and garbage-collector passes (~15 % of its CPU, measured). To every backend this
    is an ordinary sequence of `(key, value, ttl_s)` tuples (iterating zips the columns,
    slicing slices them); the hot paths read the columns directly (`values_bytes`,
    `resp.encode_sets` through iteration).
    """

    # Handed over, not copied: whoever builds the columns must not change them afterwards.
    keys: Sequence[str]
    values: Sequence[bytes]
    ttls_s: Sequence[int]

    def __post_init__(self) -> None:
        invariant(len(self.keys) == len(self.values) == len(self.ttls_s),
                  "ItemColumns needs columns of one length")

    def __len__(self) -> int:
        return len(self.keys)

    @staticmethod
    def keys_of(items: Sequence[Item]) -> Sequence[str]:
        """The keys of a batch: the column itself when it is one, else gathered in C."""
        if isinstance(items, ItemColumns):
            return items.keys
        return list(map(_KEY_OF, items))

    def __iter__(self) -> Iterator[Item]:
        return zip(self.keys, self.values, self.ttls_s, strict=True)

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> ItemColumns: ...

    def __getitem__(self, index: int | slice) -> Item | ItemColumns:
        if isinstance(index, slice):
            return ItemColumns(self.keys[index], self.values[index], self.ttls_s[index])
        return (self.keys[index], self.values[index], self.ttls_s[index])


_KEY_OF = itemgetter(0)
_VALUE_OF = itemgetter(1)


def values_bytes(items: Sequence[Item]) -> int:
    """Total value size of a batch, summed in C (map over a column, or itemgetter)."""
    if isinstance(items, ItemColumns):
        return sum(map(len, items.values))
    return sum(map(len, map(_VALUE_OF, items)))


@dataclass(frozen=True, slots=True)
class KeyFailure:
    """A key a write or read could not handle, and why."""

    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """The result of one `write_many` batch."""

    written: int
    skipped: int  # only-if-absent writes that found the key present
    failures: tuple[KeyFailure, ...] = ()
    bytes_written: int = 0

    @staticmethod
    def combine(outcomes: Sequence[WriteOutcome]) -> WriteOutcome:
        """Sum several outcomes (e.g. one per node) into one."""
        return WriteOutcome(
            written=sum(o.written for o in outcomes),
            skipped=sum(o.skipped for o in outcomes),
            failures=tuple(f for o in outcomes for f in o.failures),
            bytes_written=sum(o.bytes_written for o in outcomes),
        )


@dataclass(frozen=True, slots=True)
class NodeStats:
    """Server-side counters of one cache node at one instant."""

    node: str
    hits: int
    misses: int
    keys: int
    memory_bytes: int
    maxmemory_bytes: int  # 0 means no limit
    evictions: int
    # Identity of the server process (Redis INFO run_id, memcached pid@start time), so a
    # restart is told apart from a counter reset; "" when the backend does not know it.
    run_id: str = ""
    expired: int = 0  # keys removed by TTL so far (Redis expired_keys; 0 when not counted)
    flushes: int | None = None  # flush commands so far (memcached cmd_flush); None: uncounted


@dataclass(frozen=True, slots=True)
class OwnReads:
    """Reads warmd itself issued (verification, effect probes), so that hit-rate
    figures can subtract them and report only the service's traffic."""

    hits: int = 0
    misses: int = 0


@dataclass(frozen=True, slots=True)
class BackendStats:
    """All nodes of one backend at one instant, plus warmd's own reads so far."""

    backend: str
    nodes: tuple[NodeStats, ...]
    own_reads: OwnReads = field(default_factory=OwnReads)

    @property
    def hits(self) -> int:
        return sum(n.hits for n in self.nodes)

    @property
    def misses(self) -> int:
        return sum(n.misses for n in self.nodes)

    @property
    def evictions(self) -> int:
        return sum(n.evictions for n in self.nodes)

    def memory_fill(self) -> float:
        """Highest used/maxmemory ratio over nodes that have a limit (0.0 when none do)."""
        ratios = [n.memory_bytes / n.maxmemory_bytes for n in self.nodes if n.maxmemory_bytes]
        return max(ratios, default=0.0)


@runtime_checkable
class CacheBackend(Protocol):
    """What the warmer needs from a cache: batched writes, verification reads, counters.

    Every method raises `CacheUnavailable` when the server cannot be reached and another
    `CacheError` for any other failure of the server or client; nothing else escapes.
    """

    name: str

    async def write_many(
        self, items: Sequence[Item], *, only_if_absent: bool = False
    ) -> WriteOutcome:
        """Write a batch with per-item TTL; with `only_if_absent`, keep existing keys."""
        ...

    async def read_many(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        """Read a batch back (for verification); counted in `stats().own_reads`."""
        ...

    async def stats(self) -> BackendStats:
        """Server counters of every node (hits, misses, keys, memory, evictions)."""
        ...

    async def ping(self) -> None:
        """Raise CacheUnavailable unless every node answers."""
        ...

    async def close(self) -> None:
        """Release connections and threads; safe to call twice."""
        ...
