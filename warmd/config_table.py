"""Typed reading of one TOML table, where every error names its dotted key.

`config.py` builds the daemon's config with these readers; this module owns only the generic
parts (types, ranges, addresses, private files, unknown keys with a did-you-mean suggestion).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmd.errors import ConfigError

REQUIRED: Any = object()  # the default of a key that must be present
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
# NUL ends a path at the kernel (Python refuses it), and control characters in a value are
# never meant: in a header they split it, in a path or name they hide in every log line.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HOSTNAME_PATTERN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class ConfigKeyError(ConfigError):
    """One configuration key is wrong; `key` is its dotted path and `reason` says why."""

    def __init__(self, key: str, reason: str, origin: str = "") -> None:
        prefix = f"{origin}: " if origin else ""
        super().__init__(f"{prefix}{key}: {reason}")
        self.key = key
        self.reason = reason
        self.origin = origin


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP endpoint; `str()` gives the `host:port` form used in config files."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def is_loopback(self) -> bool:
        """True for localhost and loopback IPs, where no token or TLS is needed to be private."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str, *, allow_port_zero: bool = False) -> Address:
    """Parse `host:port` or `[ipv6]:port`.

    Raises:
        ValueError: with a sentence saying what is wrong.
    """
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", text)
    if not match:
        raise ValueError(f"{text!r} is not host:port (IPv6 as [addr]:port)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535 or (port == 0 and not allow_port_zero):
        raise ValueError(f"port {port} is outside 1..65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if match.group(1) or not _HOSTNAME_PATTERN.fullmatch(host):
            raise ValueError(f"{host!r} is neither an IP address nor a host name") from None
    return Address(host, port)


def read_private_file(path: Path, key: str) -> bytes:
    """Read a secret file, refusing one that other users can read or write."""
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise ConfigKeyError(key, f"{path} is not a regular file")
        if status.st_mode & 0o006:
            raise ConfigKeyError(
                key,
                f"{path} is readable or writable by every user (mode "
                f"{stat.S_IMODE(status.st_mode):04o}); run `chmod 600 {path}`",
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigKeyError(
            key,
            f"{path} does not exist; create it with `(umask 077; openssl rand -base64 32 > {path})`",
        ) from None
    except PermissionError:
        raise ConfigKeyError(
            key, f"{path} cannot be read by this user (uid {os.getuid()})"
        ) from None
    except OSError as error:
        raise ConfigKeyError(key, f"{path} cannot be read: {error.strerror}") from None


class Section:
    """One TOML table plus its dotted path; typed getters raise ConfigKeyError naming the key."""

    def __init__(self, table: dict[str, Any], path: str, base_dir: Path) -> None:
        self.table = table
        self.path = path
        self.base_dir = base_dir
        self.name = path.rsplit(".", 1)[-1]

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.table

    def expect_keys(self, *allowed: str, context: str = "") -> None:
        """Reject any key not in `allowed`, suggesting the closest allowed one."""
        for name in self.table:
            if name not in allowed:
                close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                where = f" {context}" if context else ""
                raise ConfigKeyError(
                    self.key(name), f"unknown key{where}{hint} (known: {', '.join(allowed)})"
                )

    def check_name(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ConfigKeyError(self.path, "names are lowercase letters, digits, '-' and '_'")

    def raw(self, name: str, kind: type | tuple[type, ...], kind_name: str, default: Any) -> Any:
        if name not in self.table:
            if default is REQUIRED:
                raise ConfigKeyError(self.key(name), "required but missing")
            return default
        value = self.table[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            raise ConfigKeyError(self.key(name), f"expected {kind_name}, got {_describe(value)}")
        check_characters(self.key(name), value)
        return value

    def section(self, name: str, *, required: bool = False) -> Section:
        table = self.raw(name, dict, "a table", REQUIRED if required else {})
        return Section(table, self.key(name), self.base_dir)

    def subsections(self) -> list[Section]:
        return [self.section(name) for name in self.table]

    def integer(
        self,
        name: str,
        default: Any = REQUIRED,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        value = self.raw(name, int, "an integer", default)
        if minimum is not None and value < minimum:
            raise ConfigKeyError(self.key(name), f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigKeyError(self.key(name), f"{value} is above the maximum {maximum}")
        return value

    def ratio(self, name: str, default: Any = REQUIRED) -> float:
        """A number from 0 to 1 (an integer 0 or 1 is accepted too)."""
        value = self.raw(name, (int, float), "a number from 0 to 1", default)
        if isinstance(value, bool) or not 0 <= value <= 1:
            raise ConfigKeyError(self.key(name), f"{value!r} is not a number from 0 to 1")
        return float(value)

    def boolean(self, name: str, default: Any = REQUIRED) -> bool:
        return self.raw(name, bool, "true or false", default)

    def string(
        self,
        name: str,
        default: Any = REQUIRED,
        *,
        choices: tuple[str, ...] = (),
        pattern: re.Pattern[str] | None = None,
    ) -> Any:
        value = self.raw(name, str, "a string", default)
        if name not in self.table:
            return value
        if choices and value not in choices:
            close = difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigKeyError(
                self.key(name), f"{value!r} is not one of {', '.join(choices)}{hint}"
            )
        if pattern is not None and not pattern.fullmatch(value):
            raise ConfigKeyError(
                self.key(name), f"{value!r} must be lowercase letters, digits, '-' or '_'"
            )
        if not value:
            raise ConfigKeyError(self.key(name), "must not be empty")
        return value

    def string_list(self, name: str) -> list[str]:
        values = self.raw(name, list, "a list of strings", REQUIRED)
        if not values:
            raise ConfigKeyError(self.key(name), "must list at least one entry")
        for position, value in enumerate(values):
            if not isinstance(value, str) or not value:
                raise ConfigKeyError(
                    f"{self.key(name)}.{position}",
                    f"expected a non-empty string, got {_describe(value)}",
                )
            check_characters(f"{self.key(name)}.{position}", value)
        return values

    def string_table(self, name: str) -> tuple[tuple[str, str], ...]:
        table = self.raw(name, dict, "a table of strings", {})
        for key, value in table.items():
            if not isinstance(value, str):
                raise ConfigKeyError(
                    f"{self.key(name)}.{key}", f"expected a string, got {_describe(value)}"
                )
            check_characters(f"{self.key(name)}.{key!r}", key)
            check_characters(f"{self.key(name)}.{key}", value)
        return tuple(sorted(table.items()))

    def file_path(self, name: str, default: Any = REQUIRED) -> Any:
        value = self.string(name, default)
        return None if value is None else (self.base_dir / value).resolve()

    def directory(self, name: str) -> Path:
        path = self.file_path(name)
        if path.exists() and not path.is_dir():
            raise ConfigKeyError(self.key(name), f"{path} exists and is not a directory")
        return path

    def existing_file(self, name: str, *, private: bool = False) -> Path:
        path = self.file_path(name)
        if private:
            read_private_file(path, self.key(name))
        elif not path.is_file():
            raise ConfigKeyError(self.key(name), f"{path} is not an existing file")
        return path

    def address(self, name: str, default: Any = REQUIRED, *, allow_port_zero: bool = False) -> Any:
        value = self.raw(name, str, 'a "host:port" string', default)
        if not isinstance(value, str):
            return value
        try:
            return parse_address(value, allow_port_zero=allow_port_zero)
        except ValueError as error:
            raise ConfigKeyError(self.key(name), str(error)) from None

    def addresses(self, name: str) -> list[Address]:
        values = self.string_list(name)
        try:
            return [parse_address(value) for value in values]
        except ValueError as error:
            raise ConfigKeyError(self.key(name), str(error)) from None

    def url(self, name: str) -> str:
        value = self.string(name)
        if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ConfigKeyError(self.key(name), f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")


def check_characters(key: str, value: object) -> None:
    """Refuse a string holding NUL or another control character (a tab is allowed)."""
    if isinstance(value, str) and (match := _CONTROL_CHARACTER.search(value)):
        raise ConfigKeyError(
            key, f"contains the control character U+{ord(match.group()):04X} at position "
                 f"{match.start()}; remove it")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _describe(value: object) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return f"{names.get(type(value), type(value).__name__)} {shown}"
