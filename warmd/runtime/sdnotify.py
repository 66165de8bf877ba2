"""sd_notify(3) without libsystemd: READY=1, WATCHDOG=1, STOPPING=1, RELOADING=1 and STATUS=.

Datagrams go to $NOTIFY_SOCKET (a path, or an abstract name written with a leading '@').
Outside systemd the variable is unset and every call is a cheap no-op. A failed send is
logged, never raised: telling systemd about our state must not be what stops the daemon.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from warmd.clock import Clock
from warmd.logging import get_logger

_log = get_logger("warmd.sdnotify")
STATUS_CHARACTERS_MAX = 200


@dataclass(frozen=True, slots=True)
class WatchdogSettings:
    """systemd's watchdog timeout for this process, and how often we should ping it."""

    timeout_s: float

    @property
    def ping_interval_s(self) -> float:
        """Half the timeout, as sd_watchdog_enabled(3) recommends."""
        return self.timeout_s / 2


class SdNotifier:
    """Sends state changes to systemd; build it with `from_environment()`."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        if address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SdNotifier:
        """Use $NOTIFY_SOCKET; a notifier without an address does nothing."""
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` lines in one datagram; return whether it was sent."""
        if self._socket is None or self.address is None:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._socket.sendto(payload, target)
        except OSError as error:
            _log.warning("sd_notify_failed", socket=self.address, error=str(error))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (Type=notify waits for this)."""
        return self.notify("READY=1", *_status_line(status))

    def reloading(self) -> bool:
        """SIGHUP handling has begun; send `ready()` when it is done."""
        return self.notify("RELOADING=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *_status_line(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line STATUS= shown by `systemctl status` (role, term, ...)."""
        return self.notify(*_status_line(text))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_settings(environ: Mapping[str, str] | None = None) -> WatchdogSettings | None:
    """The watchdog systemd armed for this process, from $WATCHDOG_USEC (and $WATCHDOG_PID).

    None when there is no watchdog, when it is meant for another process, or when the
    value is malformed (logged): the daemon then simply does not ping.
    """
    environ = os.environ if environ is None else environ
    usec_text = environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    pid_text = environ.get("WATCHDOG_PID")
    if pid_text and pid_text != str(os.getpid()):
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        _log.warning("watchdog_usec_invalid", value=usec_text)
        return None
    return WatchdogSettings(usec / 1_000_000) if usec > 0 else None


async def run_watchdog(notifier: SdNotifier, settings: WatchdogSettings, clock: Clock) -> None:
    """Ping the watchdog from the event loop until cancelled, so a stuck loop gets restarted."""
    while True:
        notifier.watchdog()
        await clock.sleep(settings.ping_interval_s)


def _status_line(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    single_line = " ".join(text.split())[:STATUS_CHARACTERS_MAX]
    return (f"STATUS={single_line}",)
