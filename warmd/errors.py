"""The warmd error tree, and `invariant()` for programmer errors.

Operating errors are typed `WarmdError`s, translated at each adapter so that no
library's exception escapes it. Broken invariants raise `InvariantViolation`,
which is never caught: the process exits and systemd restarts it.
"""

from __future__ import annotations


class WarmdError(Exception):
    """Base of every operating error warmd raises on purpose."""


class ConfigError(WarmdError):
    """A configuration file or value is wrong; the daemon exits with status 78."""

    exit_status = 78


class CacheError(WarmdError):
    """A cache backend failed."""


class CacheUnavailable(CacheError):
    """A cache backend could not be reached."""

    def __init__(self, backend: str, detail: str = "") -> None:
        super().__init__(f"{backend} unavailable" + (f": {detail}" if detail else ""))
        self.backend = backend


class AdminError(WarmdError):
    """An admin-socket request failed; `code` maps to warmctl's exit status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvariantViolation(AssertionError):
    """A programmer error: state that must be impossible was reached."""


def invariant(condition: object, message: str) -> None:
    """Raise InvariantViolation when `condition` is false (unlike assert, survives -O)."""
    if not condition:
        raise InvariantViolation(message)
