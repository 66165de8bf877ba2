"""Secret: bytes that never show themselves in a repr, a str, a log line or a traceback.

Holding the cluster secret in this type rather than `bytes` means a dataclass repr, a
`log.info(..., options=options)` or a formatted exception prints `***`; only `reveal()`, at
the one place the bytes are needed (the HMAC), hands them out.
"""

from __future__ import annotations

import hmac

MASK = "***"


class Secret:
    """An immutable secret byte string whose repr and str are `***`."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        if not isinstance(value, bytes):
            raise TypeError("a Secret holds bytes")
        self._value = value

    @classmethod
    def of(cls, value: Secret | bytes) -> Secret:
        """`value` as a Secret (unchanged when it already is one)."""
        return value if isinstance(value, Secret) else cls(value)

    def reveal(self) -> bytes:
        """The bytes themselves: call only where they are used, never to log or print."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__
