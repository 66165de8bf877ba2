"""The peer handshake: hellos with fresh nonces, then HMAC-SHA256 proofs of the secret.

Order on a new connection (the dialer opened it, the listener accepted it):

    dialer   -> Hello(cluster_id, dialer_id, dialer_nonce)
    listener -> Hello(cluster_id, listener_id, listener_nonce)
    dialer   -> Proof(HMAC(secret, "dialer", cluster, both ids, both nonces))
    listener -> Proof(HMAC(secret, "listener", ...))   only after checking the dialer's

A listener that refuses a dialer's hello or proof says why in a refusal frame before it
closes (`[refused, reason]`), so the node that failed logs it itself, naming the peer.
Each proof covers both fresh nonces, so a recorded proof is useless on a new
connection; the role inside the MAC stops a proof being reflected back. The
listener proves itself only to a dialer that has proven itself, so an outsider gets
no proof to study. Pure: the transport does the reading and writing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any

import msgpack

from warmd.errors import WarmdError

PROTOCOL = "warmd-peer-1"
NONCE_BYTES = 32
MAX_HANDSHAKE_FRAME_BYTES = 1024
_HELLO = "hello"
_PROOF = "proof"
_REFUSED = "refused"


class Refusal(Enum):
    """Why a handshake was refused; the value is the `reason` logged and counted."""

    MALFORMED = "malformed"
    WRONG_PROTOCOL = "wrong_protocol"
    WRONG_CLUSTER = "wrong_cluster"
    UNEXPECTED_NODE = "unexpected_node"
    BAD_PROOF = "bad_proof"
    REPLAYED_NONCE = "replayed_nonce"
    TLS_FAILED = "tls_failed"
    TIMEOUT = "timeout"
    REFUSED_BY_PEER = "refused_by_peer"  # the other side refused ours (it said why)


# What a listener tells a dialer it refuses: each answers the dialer's own claim or proof,
# so saying it teaches an outsider nothing the closed connection would not.
TOLD_REFUSALS = frozenset({Refusal.WRONG_PROTOCOL, Refusal.WRONG_CLUSTER,
                           Refusal.UNEXPECTED_NODE, Refusal.BAD_PROOF, Refusal.REPLAYED_NONCE})


class HandshakeError(WarmdError):
    """The other side failed the handshake; the connection must be closed."""

    def __init__(self, refusal: Refusal, detail: str) -> None:
        super().__init__(f"handshake refused ({refusal.value}): {detail}")
        self.refusal = refusal
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Hello:
    """The first frame each side sends."""

    cluster_id: str
    node_id: int
    nonce: bytes


def random_nonce() -> bytes:
    """A fresh nonce from the operating system's CSPRNG."""
    return secrets.token_bytes(NONCE_BYTES)


def encode_hello(hello: Hello) -> bytes:
    return msgpack.packb([_HELLO, PROTOCOL, hello.cluster_id, hello.node_id, hello.nonce],
                         use_bin_type=True)


def encode_refusal(refusal: Refusal) -> bytes:
    return msgpack.packb([_REFUSED, refusal.value], use_bin_type=True)


def _unpack(payload: bytes, kind: str, length: int) -> list[Any]:
    try:
        fields = msgpack.unpackb(payload, raw=False)
    except Exception:  # msgpack raises many types for garbage
        raise HandshakeError(Refusal.MALFORMED, f"{kind} is not msgpack") from None
    if type(fields) is list and len(fields) == 2 and fields[0] == _REFUSED:
        reason = fields[1] if type(fields[1]) is str else "?"
        raise HandshakeError(Refusal.REFUSED_BY_PEER, f"the peer refused our {kind}-time "
                             f"handshake: {reason[:40]}{_REFUSAL_HINTS.get(reason, '')}")
    if type(fields) is not list or len(fields) != length or fields[0] != kind:
        raise HandshakeError(Refusal.MALFORMED, f"expected a {kind} frame")
    return fields


_REFUSAL_HINTS = {
    Refusal.BAD_PROOF.value: " (do both nodes read the same cluster secret?)",
    Refusal.WRONG_CLUSTER.value: " (is cluster.id the same on both nodes?)",
}


def decode_hello(payload: bytes) -> Hello:
    """Parse a peer's hello.

    Raises:
        HandshakeError: malformed, or another protocol version.
    """
    _, protocol, cluster_id, node_id, nonce = _unpack(payload, _HELLO, 5)
    if protocol != PROTOCOL:
        raise HandshakeError(Refusal.WRONG_PROTOCOL, f"peer speaks {protocol!r:.40}")
    valid = (type(cluster_id) is str and type(node_id) is int and 0 < node_id < 1 << 64
             and type(nonce) is bytes and len(nonce) == NONCE_BYTES)
    if not valid:
        raise HandshakeError(Refusal.MALFORMED, "hello fields have the wrong types")
    return Hello(cluster_id, node_id, nonce)


def check_cluster(hello: Hello, cluster_id: str) -> None:
    """Raises HandshakeError unless the peer belongs to `cluster_id`."""
    if not hmac.compare_digest(hello.cluster_id.encode(), cluster_id.encode()):
        raise HandshakeError(Refusal.WRONG_CLUSTER, f"peer is in cluster {hello.cluster_id!r:.60}")


def compute_proof(secret: bytes, role: str, cluster_id: str, dialer: Hello, listener: Hello) -> bytes:
    """HMAC-SHA256 over everything both hellos said, and the prover's role."""
    transcript = msgpack.packb(
        [PROTOCOL, role, cluster_id, dialer.node_id, listener.node_id, dialer.nonce, listener.nonce],
        use_bin_type=True,
    )
    return hmac.new(secret, transcript, hashlib.sha256).digest()


def encode_proof(proof: bytes) -> bytes:
    return msgpack.packb([_PROOF, proof], use_bin_type=True)


def decode_proof(payload: bytes) -> bytes:
    """The MAC in a proof frame; raises HandshakeError if it is not one."""
    _, proof = _unpack(payload, _PROOF, 2)
    if type(proof) is not bytes:
        raise HandshakeError(Refusal.MALFORMED, "proof must be bytes")
    return proof


def check_proof(payload: bytes, expected: bytes) -> None:
    """Raises HandshakeError unless `payload` is a proof frame carrying `expected`."""
    if not hmac.compare_digest(decode_proof(payload), expected):
        raise HandshakeError(Refusal.BAD_PROOF, "proof does not match the cluster secret")


class NonceMemory:
    """The dialer nonces seen recently, so a replayed hello is refused outright.

    Bounded: the oldest are forgotten first. A forgotten nonce is still harmless,
    since each proof also covers the listener's fresh nonce.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._seen: dict[bytes, None] = {}

    def check_fresh(self, nonce: bytes) -> None:
        """Remember `nonce`; raises HandshakeError if it was seen before."""
        if nonce in self._seen:
            raise HandshakeError(Refusal.REPLAYED_NONCE, "nonce was used before")
        self._seen[nonce] = None
        if len(self._seen) > self._capacity:
            del self._seen[next(iter(self._seen))]
