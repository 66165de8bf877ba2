"""The simulator's replicated key-value state machine, with client sessions.

A command carries (client id, sequence); the session table remembers the last
sequence applied per client, so a command retried after a timeout is applied once
(the dedupe table lives in the state machine, as docs/raft.md says). Entries are
applied strictly in log order; the machine can be snapshotted and restored.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from warmd.raft.types import Entry, EntryType


@dataclass(frozen=True, slots=True)
class PutCommand:
    """Write `value` under `key`, as the `sequence`-th command of `client_id`."""

    client_id: int
    sequence: int
    key: str
    value: str

    def encode(self) -> bytes:
        return msgpack.packb([self.client_id, self.sequence, self.key, self.value])

    @classmethod
    def decode(cls, data: bytes) -> PutCommand:
        """Raises ValueError when `data` is not an encoded PutCommand."""
        try:
            client_id, sequence, key, value = msgpack.unpackb(data)
        except (ValueError, TypeError, msgpack.ExtraData) as error:
            raise ValueError(f"not a put command: {data[:32]!r}") from error
        if not (isinstance(client_id, int) and isinstance(sequence, int)
                and isinstance(key, str) and isinstance(value, str)):
            raise ValueError(f"malformed put command: {data[:32]!r}")
        return cls(client_id, sequence, key, value)


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one client command did."""

    command: PutCommand
    duplicate: bool  # True: an earlier copy already took effect, this one was skipped


class KeyValueMachine:
    """Applies committed entries in order; reads come from `values`."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.sessions: dict[int, int] = {}  # client id -> last sequence applied
        self.applied_index = 0
        self.duplicates_skipped = 0

    def apply(self, entry: Entry) -> Applied | None:
        """Apply the next entry; returns what a client command did, None for other entries.

        Raises:
            ValueError: when entries arrive out of order or a command is malformed.
        """
        if entry.index != self.applied_index + 1:
            raise ValueError(f"apply index {entry.index} after {self.applied_index}")
        self.applied_index = entry.index
        if entry.type is not EntryType.NORMAL or not entry.data:
            return None  # the leader's no-op, or a membership change
        command = PutCommand.decode(entry.data)
        if command.sequence <= self.sessions.get(command.client_id, 0):
            self.duplicates_skipped += 1
            return Applied(command, duplicate=True)
        self.sessions[command.client_id] = command.sequence
        self.values[command.key] = command.value
        return Applied(command, duplicate=False)

    def snapshot(self) -> bytes:
        """The whole state as bytes, to hand to the Raft core at `applied_index`."""
        return msgpack.packb([self.applied_index, self.values, self.sessions,
                              self.duplicates_skipped])

    @classmethod
    def restore(cls, data: bytes) -> KeyValueMachine:
        """Rebuild a machine from `snapshot()` bytes (empty bytes: the initial state)."""
        machine = cls()
        if data:
            applied_index, values, sessions, duplicates = msgpack.unpackb(
                data, strict_map_key=False
            )
            machine.applied_index = applied_index
            machine.values = dict(values)
            machine.sessions = {int(client): sequence for client, sequence in sessions.items()}
            machine.duplicates_skipped = duplicates
        return machine
