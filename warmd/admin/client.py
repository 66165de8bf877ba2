"""The admin client warmctl uses: a blocking connection to the local daemon's Unix socket.

warmctl is a short-lived synchronous program, so this is plain sockets with a timeout. Every
failure is an `AdminClientError` whose message names the socket path and what to do, and whose
`exit_status` is warmctl's exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from warmd.admin.protocol import (
    LINE_BYTES_MAX,
    ErrorCode,
    Request,
    decode_response,
    encode_request,
    exit_status,
)
from warmd.errors import AdminError

DEFAULT_SOCKET_PATH = "/run/warmd/admin.sock"
SOCKET_ENV = "WARMD_SOCKET"
TOKEN_ENV = "WARMCTL_TOKEN"
_HINT = f"use --socket PATH (or ${SOCKET_ENV}) to name another socket"


class AdminClientError(AdminError):
    """An admin call failed; `exit_status` is the warmctl exit status for its code."""

    @property
    def exit_status(self) -> int:
        return exit_status(self.code)


def default_socket_path() -> Path:
    """$WARMD_SOCKET if set, else the systemd unit's /run/warmd/admin.sock."""
    return Path(os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET_PATH)


def add_socket_argument(parser: argparse.ArgumentParser) -> None:
    """Give warmctl, or one of its subcommands, the `--socket PATH` option.

    The default is SUPPRESS so that a subcommand's option never overwrites a value given before
    the subcommand (`warmctl --socket P status` and `warmctl status --socket P` both work).
    """
    parser.add_argument(
        "--socket",
        type=Path,
        default=argparse.SUPPRESS,
        metavar="PATH",
        help=f"admin socket of the local warmd (default ${SOCKET_ENV} or {DEFAULT_SOCKET_PATH})",
    )


def add_token_argument(parser: argparse.ArgumentParser) -> None:
    """Give warmctl the `--token SECRET` option: act as that named token and its role."""
    parser.add_argument(
        "--token", default=argparse.SUPPRESS, metavar="SECRET",
        help=f"act as this named token (default ${TOKEN_ENV}, which keeps the secret out of "
             "the process list); without one, the socket's uid acts as admin")


def token_from_args(args: argparse.Namespace) -> str | None:
    """The token chosen with --token, else $WARMCTL_TOKEN, else None."""
    return getattr(args, "token", None) or os.environ.get(TOKEN_ENV) or None


def client_from_args(args: argparse.Namespace, timeout_s: float = 10.0) -> AdminClient:
    """A client on the socket and with the token the command line (or environment) chose."""
    return AdminClient(socket_from_args(args), timeout_s, token=token_from_args(args))


def socket_from_args(args: argparse.Namespace) -> Path:
    """The socket chosen with --socket, else $WARMD_SOCKET, else the default."""
    chosen = getattr(args, "socket", None)
    return Path(chosen) if chosen else default_socket_path()


class AdminClient:
    """One connection to the daemon; `call()` sends a request and returns the result."""

    def __init__(
        self, socket_path: str | os.PathLike[str] | None = None, timeout_s: float = 10.0,
        token: str | None = None,
    ) -> None:
        self.socket_path = Path(socket_path) if socket_path else default_socket_path()
        self._timeout_s = timeout_s
        self._token = token
        self._socket: socket.socket | None = None
        self._buffer = b""
        self._next_request_id = 1

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def call(self, command: str, **args: Any) -> Any:
        """Run `command` on the daemon and return its result.

        Raises:
            AdminClientError: the socket is missing or forbidden, the daemon did not answer in
                time, or it answered with an error (its code and message are kept).
        """
        request = Request(command, args, self._next_request_id, self._token)
        self._next_request_id += 1
        try:
            line = encode_request(request)
        except AdminError as error:
            raise AdminClientError(error.code, error.message) from None
        connection = self._connect()
        try:
            # The daemon may have answered (a refusal) and closed already: read that answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.sendall(line)
            reply = self._read_line(connection)
        except TimeoutError:
            self.close()
            raise AdminClientError(
                ErrorCode.TIMEOUT, f"no reply from {self.socket_path} within {self._timeout_s} s"
            ) from None
        except OSError as error:
            self.close()
            raise AdminClientError(
                ErrorCode.UNAVAILABLE, f"connection to {self.socket_path} failed: {error.strerror}"
            ) from None
        try:
            return decode_response(reply).raise_for_error()
        except AdminError as error:
            raise AdminClientError(error.code, error.message) from None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            self._buffer = b""

    def _connect(self) -> socket.socket:
        if self._socket is not None:
            return self._socket
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(self._timeout_s)
        try:
            connection.connect(os.fspath(self.socket_path))
        except OSError as error:
            connection.close()
            raise self._connect_error(error) from None
        self._socket = connection
        return connection

    def _connect_error(self, error: OSError) -> AdminClientError:
        path = self.socket_path
        if isinstance(error, FileNotFoundError):
            return AdminClientError(
                ErrorCode.UNAVAILABLE,
                f"admin socket {path} does not exist; is warmd running on this host? {_HINT}",
            )
        if isinstance(error, PermissionError):
            return AdminClientError(
                ErrorCode.PERMISSION_DENIED,
                f"permission denied on admin socket {path}: run warmctl as root, as the warmd "
                f"user or as a member of the socket's group; {_HINT}",
            )
        if isinstance(error, ConnectionRefusedError):
            return AdminClientError(
                ErrorCode.UNAVAILABLE,
                f"nothing listens on admin socket {path} (left by a stopped warmd?); {_HINT}",
            )
        return AdminClientError(
            ErrorCode.UNAVAILABLE, f"cannot connect to admin socket {path}: {error.strerror}"
        )

    def _read_line(self, connection: socket.socket) -> bytes:
        while b"\n" not in self._buffer:
            if len(self._buffer) > LINE_BYTES_MAX:
                self.close()
                raise AdminClientError(ErrorCode.PROTOCOL, "reply line is too long")
            chunk = connection.recv(65536)
            if not chunk:
                pending = self._buffer
                self.close()
                if pending.strip():
                    return pending  # a final reply without its newline is still a reply
                raise AdminClientError(
                    ErrorCode.UNAVAILABLE, f"the daemon closed the connection on {self.socket_path}"
                )
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line
