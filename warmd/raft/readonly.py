"""ReadIndex bookkeeping on the leader: reads waiting for a quorum of heartbeat acks.

Each read gets its own heartbeat round, named by a leader-made ack context, so two
clients that happen to use the same read context never collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReadRequest:
    """One read: safe to serve at `index` once a quorum has acked its heartbeat round."""

    index: int
    context: bytes  # the requester's context, returned in its ReadState
    from_id: int  # who asked (the leader itself, or a follower that forwarded it)
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    """Pending ReadIndex requests in arrival order (etcd's readOnly, safe mode)."""

    def __init__(self) -> None:
        self._pending: dict[bytes, ReadRequest] = {}
        self._queue: list[bytes] = []
        self._next_round = 0

    def add_request(self, index: int, context: bytes, from_id: int, self_id: int) -> bytes:
        """Queue a read; returns the ack context its heartbeat round must carry."""
        self._next_round += 1
        ack_context = b"read:%d" % self._next_round
        self._pending[ack_context] = ReadRequest(index, context, from_id, {self_id})
        self._queue.append(ack_context)
        return ack_context

    def receive_ack(self, from_id: int, ack_context: bytes) -> set[int] | None:
        """Record a heartbeat ack; returns who has acked that round, or None if unknown."""
        request = self._pending.get(ack_context)
        if request is None:
            return None
        request.acks.add(from_id)
        return request.acks

    def release(self, ack_context: bytes) -> list[ReadRequest]:
        """Every request up to and including this round (a later ack confirms earlier reads)."""
        if ack_context not in self._pending:
            return []
        position = self._queue.index(ack_context)
        released = [self._pending.pop(context) for context in self._queue[: position + 1]]
        del self._queue[: position + 1]
        return released

    def last_pending_context(self) -> bytes | None:
        return self._queue[-1] if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)
