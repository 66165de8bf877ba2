"""msgpack encoding of the Raft value types (warmd/raft/types.py) for disk and wire.

Every value is a compact msgpack array whose first element says what it is: a
Message starts with its MessageType (1..15), other values with a tag >= 100.
Decoding trusts nothing: any malformed input raises `CodecError`, never another
exception, so a peer or a damaged disk cannot crash the node with bad bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgpack

from warmd.errors import WarmdError
from warmd.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
    make_entry,
)

TAG_ENTRY = 100
TAG_HARD_STATE = 101
TAG_CONF_STATE = 102
TAG_CONF_CHANGE = 103
TAG_SNAPSHOT_META = 104
TAG_SNAPSHOT = 105

_U64_MAX = (1 << 64) - 1
_MESSAGE_TYPES = {member.value: member for member in MessageType}
_ENTRY_TYPES = {member.value: member for member in EntryType}
_CONF_CHANGE_TYPES = {member.value: member for member in ConfChangeType}
_MESSAGE_FIELD_COUNT = 16

RaftValue = Message | Entry | HardState | ConfState | ConfChange | SnapshotMeta | Snapshot


class CodecError(WarmdError):
    """Bytes that are not a valid encoding of a warmd value (from a peer or from disk)."""


_packers = threading.local()


def pack(value: Any) -> bytes:
    """`msgpack.packb(value, use_bin_type=True)`, the same bytes, through a Packer kept per
    thread: packb builds a Packer (and its buffer) on every call, ~0.8 of its ~1.1 µs for
    a small value (measured); the shell packs several small values per Raft write (the WAL
    record, peer messages, the admin frames). Not one Packer for all threads: its buffer is
    its state.

    Raises:
        TypeError, ValueError, OverflowError: `value` holds something msgpack cannot encode.
    """
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    return packer.pack(value)


def _unpack(data: bytes) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as error:  # msgpack raises several unrelated types for garbage
        raise CodecError(f"not msgpack: {error.__class__.__name__}: {error}") from None


# ----------------------------------------------------------------- field checks


def _uint(value: Any, name: str) -> int:
    if type(value) is not int or value < 0 or value > _U64_MAX:
        raise CodecError(f"{name} must be an unsigned integer, got {value!r:.40}")
    return value


def _bytes(value: Any, name: str) -> bytes:
    if type(value) is not bytes:
        raise CodecError(f"{name} must be bytes, got {type(value).__name__}")
    return value


def _bool(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise CodecError(f"{name} must be a boolean, got {type(value).__name__}")
    return value


def _array(value: Any, length: int, name: str) -> list[Any]:
    if type(value) is not list or len(value) != length:
        raise CodecError(f"{name} must be an array of {length} items")
    return value


def _node_ids(value: Any, name: str) -> tuple[int, ...]:
    if type(value) is not list:
        raise CodecError(f"{name} must be an array of node ids")
    return tuple(_uint(item, name) for item in value)


# ----------------------------------------------------------------- entries


def _entry_fields(entry: Entry) -> list[Any]:
    return [entry.term, entry.index, int(entry.type), entry.data]


def _entry_from_fields(fields: Any) -> Entry:
    """Decode [term, index, type, data]; the hot path of every APPEND and every record."""
    if type(fields) is not list or len(fields) != 4:
        raise CodecError("entry must be an array of 4 items")
    term, index, kind, data = fields
    if type(term) is not int or type(index) is not int or term < 0 or index < 0:
        raise CodecError("entry term and index must be unsigned integers")
    entry_type = _ENTRY_TYPES.get(kind) if type(kind) is int else None
    if entry_type is None:
        raise CodecError(f"unknown entry type {kind!r:.40}")
    if type(data) is not bytes:
        raise CodecError("entry data must be bytes")
    return make_entry(term, index, entry_type, data)


def _entries_from_fields(value: Any) -> tuple[Entry, ...]:
    if type(value) is not list:
        raise CodecError("entries must be an array")
    return tuple([_entry_from_fields(item) for item in value])


# ----------------------------------------------------------------- small values


def _conf_state_fields(conf_state: ConfState) -> list[Any]:
    return [list(conf_state.voters), list(conf_state.learners)]


def _conf_state_from_fields(value: Any) -> ConfState:
    voters, learners = _array(value, 2, "conf state")
    return ConfState(_node_ids(voters, "voters"), _node_ids(learners, "learners"))


def _meta_fields(meta: SnapshotMeta) -> list[Any]:
    return [meta.index, meta.term, _conf_state_fields(meta.conf_state)]


def _meta_from_fields(value: Any) -> SnapshotMeta:
    index, term, conf_state = _array(value, 3, "snapshot meta")
    return SnapshotMeta(
        _uint(index, "snapshot index"), _uint(term, "snapshot term"),
        _conf_state_from_fields(conf_state),
    )


def _hard_state_from_fields(value: Any) -> HardState:
    term, vote, commit = _array(value, 3, "hard state")
    return HardState(_uint(term, "term"), _uint(vote, "vote"), _uint(commit, "commit"))


def _conf_change_from_fields(value: Any) -> ConfChange:
    kind, node_id, context = _array(value, 3, "conf change")
    change_type = _CONF_CHANGE_TYPES.get(kind) if type(kind) is int else None
    if change_type is None:
        raise CodecError(f"unknown conf change type {kind!r:.40}")
    return ConfChange(change_type, _uint(node_id, "node id"), _bytes(context, "context"))


def _snapshot_from_fields(value: Any) -> Snapshot:
    meta, data = _array(value, 2, "snapshot")
    return Snapshot(_meta_from_fields(meta), _bytes(data, "snapshot data"))


# ----------------------------------------------------------------- messages


def _message_fields(message: Message) -> list[Any]:
    meta = message.snapshot_meta
    return [
        int(message.type), message.from_id, message.to, message.term, message.log_term,
        message.index, [_entry_fields(entry) for entry in message.entries], message.commit,
        message.reject, message.reject_hint, message.reject_term, message.context,
        None if meta is None else _meta_fields(meta), message.chunk_offset,
        message.chunk_data, message.chunk_done,
    ]


def _message_from_fields(fields: list[Any]) -> Message:
    if len(fields) != _MESSAGE_FIELD_COUNT:
        raise CodecError(f"message must be an array of {_MESSAGE_FIELD_COUNT} items")
    (kind, from_id, to, term, log_term, index, entries, commit, reject, reject_hint,
     reject_term, context, meta, chunk_offset, chunk_data, chunk_done) = fields
    message_type = _MESSAGE_TYPES.get(kind) if type(kind) is int else None
    if message_type is None:
        raise CodecError(f"unknown message type {kind!r:.40}")
    return Message(
        message_type, _uint(from_id, "from_id"), _uint(to, "to"), _uint(term, "term"),
        _uint(log_term, "log_term"), _uint(index, "index"), _entries_from_fields(entries),
        _uint(commit, "commit"), _bool(reject, "reject"), _uint(reject_hint, "reject_hint"),
        _uint(reject_term, "reject_term"), _bytes(context, "context"),
        None if meta is None else _meta_from_fields(meta),
        _uint(chunk_offset, "chunk_offset"), _bytes(chunk_data, "chunk_data"),
        _bool(chunk_done, "chunk_done"),
    )


# ----------------------------------------------------------------- public API


def encode_message(message: Message) -> bytes:
    """Encode one message for the wire: [type, from_id, to, term, ...] in field order."""
    return pack(_message_fields(message))


def decode_message(data: bytes) -> Message:
    """Decode bytes from a peer into a Message.

    Raises:
        CodecError: the bytes are not exactly one encoded Message.
    """
    fields = _unpack(data)
    if type(fields) is not list or not fields:
        raise CodecError("message must be a non-empty array")
    return _message_from_fields(fields)


def encode_entry(entry: Entry) -> bytes:
    """Encode one log entry as [100, term, index, type, data] (a disk record payload)."""
    return pack([TAG_ENTRY, entry.term, entry.index, int(entry.type), entry.data])


def decode_entry(data: bytes) -> Entry:
    """Decode one entry; raises CodecError for anything else."""
    value = decode(data)
    if not isinstance(value, Entry):
        raise CodecError(f"expected an entry, got {type(value).__name__}")
    return value


_ENCODERS: dict[type, Callable[[Any], list[Any]]] = {
    Entry: lambda value: [TAG_ENTRY, *_entry_fields(value)],
    HardState: lambda value: [TAG_HARD_STATE, value.term, value.vote, value.commit],
    ConfState: lambda value: [TAG_CONF_STATE, *_conf_state_fields(value)],
    ConfChange: lambda value: [TAG_CONF_CHANGE, int(value.type), value.node_id, value.context],
    SnapshotMeta: lambda value: [TAG_SNAPSHOT_META, *_meta_fields(value)],
    Snapshot: lambda value: [TAG_SNAPSHOT, _meta_fields(value.meta), value.data],
    Message: _message_fields,
}

_DECODERS: dict[int, Callable[[list[Any]], RaftValue]] = {
    TAG_ENTRY: _entry_from_fields,
    TAG_HARD_STATE: _hard_state_from_fields,
    TAG_CONF_STATE: _conf_state_from_fields,
    TAG_CONF_CHANGE: _conf_change_from_fields,
    TAG_SNAPSHOT_META: _meta_from_fields,
    TAG_SNAPSHOT: _snapshot_from_fields,
}


def encode(value: RaftValue) -> bytes:
    """Encode any Raft value type; the first array item tells `decode` what it is.

    Raises:
        TypeError: `value` is not one of the Raft value types (a programmer error).
    """
    encoder = _ENCODERS.get(type(value))
    if encoder is None:
        raise TypeError(f"codec cannot encode {type(value).__name__}")
    return pack(encoder(value))


def decode(data: bytes) -> RaftValue:
    """Decode any value produced by `encode`.

    Raises:
        CodecError: the bytes are not a valid encoding of a Raft value.
    """
    fields = _unpack(data)
    if type(fields) is not list or not fields or type(fields[0]) is not int:
        raise CodecError("value must be an array starting with its type tag")
    tag = fields[0]
    if tag in _MESSAGE_TYPES:
        return _message_from_fields(fields)
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise CodecError(f"unknown type tag {tag}")
    return decoder(fields[1:])
