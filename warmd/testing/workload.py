"""Simulated clients: writes through the log and ReadIndex reads, recorded as a history.

Each client has at most one operation outstanding. A write keeps its (client id,
sequence) across retries, so the session table applies it once; its call time is
the first attempt and it returns when any replica applies it (the effect happened
no later). A read asks a node for a ReadIndex and returns once that node has
applied up to it. What never returns is recorded with an unknown outcome.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

import msgpack

from warmd.testing.kvstore import PutCommand
from warmd.testing.linearizability import Operation, OperationKind


@dataclass(frozen=True, slots=True)
class WorkloadOptions:
    """How busy the clients are; probabilities are per client per tick."""

    client_count: int = 3
    key_count: int = 2
    start_probability: float = 0.2
    read_fraction: float = 0.4
    retry_ticks: int = 25  # an attempt unanswered this long is retried elsewhere

    def __post_init__(self) -> None:
        if self.client_count < 1 or self.key_count < 1 or self.retry_ticks < 1:
            raise ValueError("client_count, key_count and retry_ticks must be >= 1")
        if not (0.0 <= self.start_probability <= 1.0 and 0.0 <= self.read_fraction <= 1.0):
            raise ValueError("start_probability and read_fraction must be within [0, 1]")


class ClientPort(Protocol):
    """What the clients need from the cluster (SimCluster implements it)."""

    def client_targets(self) -> list[int]:
        """The live members of the cluster: the nodes a client may talk to."""

    def submit_write(self, node_id: int, data: bytes) -> int | None:
        """Propose on `node_id`: None when taken, else a refusal with a leader hint (0: none)."""

    def submit_read(self, node_id: int, context: bytes) -> int | None:
        """Ask `node_id` for a ReadIndex; returns like submit_write."""


@dataclass(slots=True)
class _Pending:
    kind: OperationKind
    key: str
    value: str | None
    sequence: int
    call_ticks: int
    attempt_ticks: int = -1
    target: int = 0


class Workload:
    """Drives the clients each tick and collects the history for the checker."""

    def __init__(self, rng: random.Random, options: WorkloadOptions | None = None) -> None:
        self.options = options or WorkloadOptions()
        self._rng = rng
        self._next_sequence = dict.fromkeys(range(1, self.options.client_count + 1), 1)
        self._pending: dict[int, _Pending] = {}
        # Each client keeps its own connection: the node that last answered it. So one
        # client may stay on a deposed leader while another writes through its successor.
        self._leader_hints = dict.fromkeys(self._next_sequence, 0)
        self.history: list[Operation] = []
        self.issuing = True  # cleared when the run heals: only pending operations go on

    # -- driving -------------------------------------------------------------------

    def step(self, port: ClientPort, now_ticks: int) -> None:
        """Start new operations and retry stale attempts."""
        live = port.client_targets()
        for client_id in self._next_sequence:
            pending = self._pending.get(client_id)
            if pending is None:
                if not self.issuing or self._rng.random() >= self.options.start_probability:
                    continue
                pending = self._start(client_id, now_ticks)
            stale = now_ticks - pending.attempt_ticks >= self.options.retry_ticks
            if (pending.attempt_ticks < 0 or stale) and live:
                self._attempt(port, client_id, pending, live, now_ticks)

    def _start(self, client_id: int, now_ticks: int) -> _Pending:
        sequence = self._next_sequence[client_id]
        self._next_sequence[client_id] = sequence + 1
        key = f"k{self._rng.randrange(self.options.key_count)}"
        if self._rng.random() < self.options.read_fraction:
            pending = _Pending(OperationKind.GET, key, None, sequence, now_ticks)
        else:
            value = f"c{client_id}.{sequence}"
            pending = _Pending(OperationKind.PUT, key, value, sequence, now_ticks)
        self._pending[client_id] = pending
        return pending

    def _attempt(self, port: ClientPort, client_id: int, pending: _Pending,
                 live: list[int], now_ticks: int) -> None:
        # A first attempt goes to the node that last answered; a retry anywhere, since
        # the hinted node may be a deposed leader cut off from the cluster.
        retry = pending.attempt_ticks >= 0
        hint = self._leader_hints[client_id]
        if hint in live and not retry:
            target = hint
        else:
            target = self._rng.choice(live)
        pending.attempt_ticks = now_ticks
        pending.target = target
        if pending.kind is OperationKind.GET:
            refusal = port.submit_read(target, msgpack.packb([client_id, pending.sequence]))
        else:
            command = PutCommand(client_id, pending.sequence, pending.key, pending.value or "")
            refusal = port.submit_write(target, command.encode())
        if refusal is not None:
            self._leader_hints[client_id] = refusal
            pending.attempt_ticks = now_ticks - self.options.retry_ticks + 2  # retry soon

    # -- answers -------------------------------------------------------------------

    def on_write_applied(self, command: PutCommand, now_ticks: int, node_id: int) -> None:
        """A replica applied a write: if it is a client's pending one, it has returned."""
        pending = self._pending.get(command.client_id)
        if pending is None or pending.kind is not OperationKind.PUT:
            return
        if pending.sequence != command.sequence:
            return
        del self._pending[command.client_id]
        if node_id == pending.target:
            self._leader_hints[command.client_id] = node_id
        self._record(command.client_id, pending, pending.value, now_ticks)

    def on_read_served(self, context: bytes, value: str | None, now_ticks: int) -> None:
        """A node applied past a ReadIndex: the pending read with that context returns."""
        client_id, sequence = msgpack.unpackb(context)
        pending = self._pending.get(client_id)
        if pending is None or pending.kind is not OperationKind.GET:
            return
        if pending.sequence != sequence:
            return
        del self._pending[client_id]
        self._leader_hints[client_id] = pending.target
        self._record(client_id, pending, value, now_ticks)

    def _record(self, client_id: int, pending: _Pending, value: str | None,
                return_ticks: int | None) -> None:
        self.history.append(Operation(client_id, pending.kind, pending.key, value,
                                      pending.call_ticks, return_ticks))

    def pending_read_key(self, client_id: int) -> str | None:
        """The key a client's pending read asks for (None when it has no pending read)."""
        pending = self._pending.get(client_id)
        if pending is None or pending.kind is not OperationKind.GET:
            return None
        return pending.key

    def pending_count(self) -> int:
        """How many operations have not returned yet."""
        return len(self._pending)

    def completed_count(self) -> int:
        return len(self.history)

    def final_history(self) -> list[Operation]:
        """The history with every still-pending write recorded as of unknown outcome."""
        unknown = [
            Operation(client_id, pending.kind, pending.key, pending.value,
                      pending.call_ticks, None)
            for client_id, pending in self._pending.items()
            if pending.kind is OperationKind.PUT
        ]
        return [*self.history, *unknown]
