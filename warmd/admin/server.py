"""The admin Unix-socket server: file mode plus peer credentials guard who may operate warmd.

The socket is created 0600 (0660 and owned by the configured group), and every connection's
SO_PEERCRED is checked: root, the daemon's own uid and members of the group are served, anyone
else gets a `permission_denied` reply and is disconnected. The daemon registers its commands
(`status`, `members`, ...) as handlers; `ping` and `commands` are built in.

`invoke` is the one path of every interface: it checks the actor's role against the
command table (roles.py) and hands every mutating call, allowed or not, to the injected
audit recorder. A request carrying a named token's secret acts as that token (the injected
authenticator says who that is), else as the kernel-vouched uid of the socket's peer.

Requests on one connection run one after another, so a script's `add-learner` then `promote`
keep their order. A command registered `pipelined=True` (small independent writes, such as
`bench-write`) may instead run while later lines are read: a client then keeps many requests
in flight on one connection and matches the replies, which may come out of order, by `id`.
A request of an ordinary command waits until the pipelined ones before it have answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import grp
import inspect
import os
import pwd
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmd.access import Actor, Interface, Role
from warmd.admin.framed import decode_request_frame, encode_response_frame
from warmd.admin.protocol import (
    COMMAND_PATTERN,
    FRAMES_MSGPACK,
    LINE_BYTES_MAX,
    PROTOCOL_COMMAND,
    ErrorCode,
    Request,
    Response,
    decode_request,
    encode_response,
    error_response,
)
from warmd.admin.roles import command_access
from warmd.errors import AdminError, WarmdError
from warmd.frames import FrameDecoder, FrameError
from warmd.logging import get_logger

Handler = Callable[..., Awaitable[Any] | Any]  # (args) or, registered with_actor, (args, actor)
# A pipelined command's reply from the future its handler returned: the result to send, or
# an exception (AdminError) for an error reply. Lets a handler return the future of the work
# itself (a Raft proposal) instead of a second future that a callback would fill.
Reply = Callable[["asyncio.Future[Any]"], Any]
_log = get_logger("warmd.admin")
PIPELINE_DEPTH_MAX = 4096  # pipelined requests running at once on one connection
PIPELINE_BURST_MAX = 64  # pipelined requests started before the reader yields to the loop
FRAME_READ_BYTES = 256 * 1024  # one read of a framed connection (many requests)
SUBJECT_KEYS = ("task_id", "node_id", "plan", "name", "address", "path")
SUBJECT_CHARS_MAX = 200


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """A mutating call as the audit recorder gets it: who, what on what, and how it ended."""

    actor: Actor
    action: str
    subject: str
    result: str  # ok, error or denied
    error: str = ""


# (secret, the connection's own actor) -> the token's actor; raises AdminError when refused
Authenticator = Callable[[str, Actor], Actor]
Recorder = Callable[[AuditEvent], Awaitable[None]]


def _no_tokens(secret: str, actor: Actor) -> Actor:
    raise AdminError(ErrorCode.PERMISSION_DENIED, "this daemon accepts no tokens")


async def _no_recorder(event: AuditEvent) -> None:
    return None


def subject_of(args: Mapping[str, Any]) -> str:
    """What a call acts on, from its arguments (`task_id=t-1`), for the audit record."""
    parts = [f"{key}={args[key]}" for key in SUBJECT_KEYS if args.get(key) is not None]
    return " ".join(parts)[:SUBJECT_CHARS_MAX]


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """Who is on the other end of a Unix socket, as the kernel vouches (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class AdminStatistics:
    connections_accepted: int
    connections_refused: int
    requests: int
    errors: int


@dataclass(slots=True)
class _Counters:
    connections_accepted: int = 0
    connections_refused: int = 0
    requests: int = 0
    errors: int = 0


class AdminServer:
    """Serves admin requests on a Unix socket; create, `register()` handlers, then `start()`."""

    def __init__(
        self,
        socket_path: str | os.PathLike[str],
        *,
        group_id: int | None = None,
        idle_timeout_s: float = 60.0,
        connections_max: int = 64,
        authenticate: Authenticator = _no_tokens,
        recorder: Recorder = _no_recorder,
    ) -> None:
        self.socket_path = Path(socket_path)
        self._group_id = group_id
        self._idle_timeout_s = idle_timeout_s
        self._connections_max = connections_max
        self._handlers: dict[str, tuple[Handler, str, bool]] = {}
        self._pipelined: set[str] = set()
        self._replies: dict[str, Reply] = {}  # pipelined commands answered through a Reply
        self._authenticate = authenticate
        self._recorder = recorder
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._inode: int | None = None
        self._counters = _Counters()
        self._too_large_logged: set[str] = set()  # commands whose too_large reply was logged
        self.register("ping", self._ping, summary="check that the daemon answers")
        self.register("commands", self._commands, summary="list the commands this daemon serves")
        self.register(PROTOCOL_COMMAND, self._protocol,
                      summary="switch this connection to msgpack frames (frames=msgpack)")

    def register(self, command: str, handler: Handler, *, summary: str = "",
                 with_actor: bool = False, pipelined: bool = False,
                 reply: Reply | None = None) -> None:
        """Serve `command` with `handler(args) -> result` (a coroutine function or a plain one);
        `with_actor` handlers are called `handler(args, actor)`; `pipelined`: requests of it
        may run concurrently on one connection (module docstring). `reply` (pipelined only):
        when the handler returns a future, `reply(future)` once it is done is the result sent
        (or raises the error sent), instead of the future's own result.

        Raises:
            ValueError: the name is not a lowercase command name or is already registered.
        """
        if not COMMAND_PATTERN.fullmatch(command):
            raise ValueError(f"command name {command!r} must match {COMMAND_PATTERN.pattern}")
        if command in self._handlers:
            raise ValueError(f"command {command!r} is already registered")
        if reply is not None and not pipelined:
            raise ValueError(f"command {command!r}: only a pipelined command takes a reply")
        self._handlers[command] = (handler, summary, with_actor)
        if pipelined:
            self._pipelined.add(command)
        if reply is not None:
            self._replies[command] = reply

    def commands(self) -> list[str]:
        """The registered command names, sorted."""
        return sorted(self._handlers)

    async def start(self) -> None:
        """Create the socket with its mode and group, and start accepting connections.

        Raises:
            AdminError: (unavailable) another daemon listens on the path, or it cannot be created.
        """
        try:  # /run/warmd comes from systemd; a hand-started daemon makes its own directory
            self.socket_path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as error:
            raise AdminError(
                ErrorCode.UNAVAILABLE,
                f"cannot create {self.socket_path.parent} for the admin socket: {error.strerror}",
            ) from None
        _remove_stale_socket(self.socket_path)
        listener = self._bind()
        self._server = await asyncio.start_unix_server(
            self._serve, sock=listener, limit=LINE_BYTES_MAX + 1
        )
        mode = 0o660 if self._group_id is not None else 0o600
        _log.info("admin_socket_listening", path=str(self.socket_path), mode=f"{mode:04o}")

    async def close(self) -> None:
        """Stop accepting, disconnect every client and remove the socket file we created."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(OSError):
            if self._inode is not None and self.socket_path.stat().st_ino == self._inode:
                self.socket_path.unlink()

    def statistics(self) -> AdminStatistics:
        counters = self._counters
        return AdminStatistics(
            counters.connections_accepted,
            counters.connections_refused,
            counters.requests,
            counters.errors,
        )

    def _bind(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Linux gives the socket file the mode of the unbound socket's inode (minus the
            # umask): set 0600 first so the file never exists with a wider mode, even for a
            # moment, and without touching the process-wide umask other threads rely on.
            os.fchmod(listener.fileno(), 0o600)
            listener.bind(os.fspath(self.socket_path))
            if self._group_id is not None:
                os.chown(self.socket_path, -1, self._group_id)
                os.chmod(self.socket_path, 0o660)
            else:
                os.chmod(self.socket_path, 0o600)
            self._inode = self.socket_path.stat().st_ino
        except OSError as error:
            listener.close()
            raise AdminError(
                ErrorCode.UNAVAILABLE,
                f"cannot create the admin socket {self.socket_path}: {error.strerror}",
            ) from None
        listener.setblocking(False)
        return listener

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            credentials = peer_credentials(writer.get_extra_info("socket"))
            refusal = self._refusal(credentials) or self._overload()
            if refusal is not None:
                self._counters.connections_refused += 1
                _log.warning(
                    "admin_peer_refused",
                    uid=credentials.uid,
                    pid=credentials.pid,
                    reason=refusal.message,
                )
                await _reply(writer, error_response(0, refusal))
                return
            self._counters.connections_accepted += 1
            await self._serve_requests(reader, writer, credentials)
        except (ConnectionError, OSError):
            pass  # the client went away; nothing to answer
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve_requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        credentials: PeerCredentials,
    ) -> None:
        connection = _Connection(writer, credentials, socket_actor(credentials))
        try:
            if await self._read_lines(reader, connection):
                await self._read_frames(reader, connection)
        except BaseException:
            connection.cancel()  # the connection broke or the server closes: nobody to tell
            raise
        await connection.settle()  # the client stopped sending: its answers still go out
        connection.flush()

    async def _read_lines(self, reader: asyncio.StreamReader, connection: _Connection) -> bool:
        """Serve JSON lines until the client leaves (False) or switches to frames (True)."""
        while True:
            try:
                # asyncio.timeout, not wait_for: in 3.11 wait_for wraps every read in a task
                # and yields to the loop even when the line is buffered, so pipelined requests
                # reached the driver one loop turn apart, each in a Ready of its own.
                async with asyncio.timeout(self._idle_timeout_s):
                    line = await reader.readline()
            except TimeoutError:
                if connection.running:
                    continue  # not idle: answers are still being worked out
                return False
            except ValueError:  # longer than the limit: refuse rather than buffer it
                error = AdminError(ErrorCode.BAD_REQUEST, f"request exceeds {LINE_BYTES_MAX} bytes")
                await self._refuse_request(connection, error)
                return False
            if not line.strip():
                if not line:
                    return False
                continue
            try:
                request = decode_request(line)
            except AdminError as error:
                await self._refuse_request(connection, error)
                return False
            await self._take(request, connection)
            if connection.framed:
                return True

    async def _read_frames(self, reader: asyncio.StreamReader, connection: _Connection) -> None:
        """Serve msgpack frames (protocol.py) until the client leaves: every frame a read
        brought is taken at once, so a client's batch of requests reaches the driver in one
        turn of the loop. A malformed or oversized frame gets one error reply and closes
        this connection (only this one)."""
        decoder = FrameDecoder(LINE_BYTES_MAX)
        while True:
            try:
                async with asyncio.timeout(self._idle_timeout_s):
                    await connection.writer.drain()  # a client that reads no replies waits
                    data = await reader.read(FRAME_READ_BYTES)
            except TimeoutError:
                if connection.running:
                    continue
                return
            if not data:
                return
            decoder.append(data)
            try:
                while (payload := decoder.next_frame()) is not None:
                    request = decode_request_frame(payload)
                    if not self._begin_now(request, connection):
                        await self._take(request, connection)
            except FrameError as error:
                await self._refuse_request(connection, AdminError(
                    ErrorCode.BAD_REQUEST, f"bad request frame: {error}"))
                return
            except AdminError as error:
                await self._refuse_request(connection, error)
                return

    async def _take(self, request: Request, connection: _Connection) -> None:
        """Run one request: a pipelined one alongside the others, an ordinary one after
        every request before it has answered."""
        if request.command in self._pipelined:
            await connection.admit()
            if command_access(request.command).mutates:  # audited: invoke, in a task
                connection.track(asyncio.ensure_future(self._answer(request, connection)))
            else:
                self._begin(request, connection)
        else:
            await connection.settle()
            await self._answer(request, connection)

    def _begin_now(self, request: Request, connection: _Connection) -> bool:
        """`_take` without a coroutine for the common pipelined request, one that does not
        mutate and finds room at once (two coroutines per request showed in a loaded
        follower's profile); False: it was not started, `_take` must."""
        if (request.command in self._pipelined and not command_access(request.command).mutates
                and connection.admit_now()):
            self._begin(request, connection)
            return True
        return False

    def _begin(self, request: Request, connection: _Connection) -> None:
        """Start a pipelined request without a task of its own: a handler that returns a
        future is answered from the future's callback (a task per request was a tenth of
        a loaded follower's CPU, profiled); a coroutine still gets a task."""
        self._counters.requests += 1
        actor = connection.actor
        try:
            if request.token is not None:
                actor = self._authenticate(request.token, actor)
            handler, _, with_actor = self._permitted(request.command, actor)
            outcome = handler(request.args, actor) if with_actor else handler(request.args)
        except AdminError as error:  # a refused token, an unknown command, a low role
            self._send(connection, request, error_response(request.request_id, error))
            return
        except Exception as error:
            error = self._handler_error(error, request.command, actor)
            self._send(connection, request, error_response(request.request_id, error))
            return
        if isinstance(outcome, asyncio.Future):  # one callback: the reply, then untracked
            connection.running.add(outcome)
            outcome.add_done_callback(functools.partial(
                self._settled, request, actor, connection))
        elif inspect.isawaitable(outcome):
            connection.track(asyncio.ensure_future(
                self._finish(request, actor, connection, outcome)))
        else:
            self._send(connection, request, Response(request.request_id, outcome))

    def _settled(self, request: Request, actor: Actor, connection: _Connection,
                 future: asyncio.Future[Any]) -> None:
        """Queue the reply of a pipelined request whose future is done, and stop counting
        it as running (after queuing: `settle` then finds its reply queued)."""
        if future.cancelled():
            connection.running.discard(future)
            return  # only a closing connection cancels: nobody to tell
        reply = self._replies.get(request.command)
        failure = future.exception() if reply is None else None
        if failure is None:
            try:
                response = Response(request.request_id,
                                    future.result() if reply is None else reply(future))
            except Exception as error:  # the reply's verdict on a failed or refused future
                failure = error
        if failure is not None:
            response = error_response(request.request_id, self._handler_error(
                failure if isinstance(failure, Exception) else Exception(failure),
                request.command, actor))
        self._send(connection, request, response)
        connection.running.discard(future)

    async def _finish(self, request: Request, actor: Actor, connection: _Connection,
                      outcome: Awaitable[Any]) -> None:
        try:
            response = Response(request.request_id, await outcome)
        except Exception as error:
            response = error_response(request.request_id,
                                      self._handler_error(error, request.command, actor))
        self._send(connection, request, response)

    async def _answer(self, request: Request, connection: _Connection) -> None:
        response = await self._dispatch(request, connection.actor)
        self._send(connection, request, response)  # a switch's own answer is a JSON line
        if request.command == PROTOCOL_COMMAND and response.ok:
            connection.framed = True
        with contextlib.suppress(ConnectionError, OSError):  # the client went away
            await connection.writer.drain()

    async def _refuse_request(self, connection: _Connection, error: AdminError) -> None:
        """A malformed request gets one error reply (after the answers of the requests before
        it) and the connection is closed."""
        self._counters.errors += 1
        _log.warning("admin_request_malformed", uid=connection.credentials.uid,
                     reason=error.message)
        await connection.settle()
        connection.send(error_response(0, error))
        connection.flush()
        with contextlib.suppress(ConnectionError, OSError):
            await connection.writer.drain()

    def _send(self, connection: _Connection, request: Request, response: Response) -> None:
        self._log_too_large(request.command, connection.send(response))

    def _log_too_large(self, command: str, line: bytes) -> None:
        """Log the first `too_large` reply of each command (a client that does not page would
        otherwise repeat it on every call)."""
        if command in self._too_large_logged or not _is_too_large(line):
            return
        self._too_large_logged.add(command)
        _log.warning("admin_reply_too_large", command=command,
                     hint="the client must page with limit and cursor")

    async def _dispatch(self, request: Request, actor: Actor) -> Response:
        self._counters.requests += 1
        try:
            if request.token is not None:
                actor = self._authenticate(request.token, actor)
            result = await self.invoke(request.command, request.args, actor)
            return Response(request.request_id, result)
        except AdminError as error:
            return error_response(request.request_id, error)

    async def invoke(self, command: str, args: Mapping[str, Any], actor: Actor) -> Any:
        """Run one command for `actor`: the one path every interface takes (the socket, the
        web console and its API), so checks and records made here hold for all of them
        (a pipelined request of a command that does not mutate takes `_begin`, which
        makes the same checks).

        Raises:
            AdminError: unknown command, a role below the command's (permission_denied), or
                the handler's failure (never a traceback).
        """
        entry = self._lookup(command)
        access = command_access(command)
        refusal = self._denial(command, actor)
        if refusal is not None:
            if access.mutates:
                await self._record(AuditEvent(actor, command, subject_of(args), "denied",
                                              refusal.message))
            raise refusal
        if not access.mutates:
            return await self._run(entry, command, args, actor)
        try:
            result = await self._run(entry, command, args, actor)
        except AdminError as error:
            await self._record(AuditEvent(actor, command, subject_of(args), "error",
                                          f"{error.code}: {error.message}"))
            raise
        await self._record(AuditEvent(actor, command, subject_of(args), "ok"))
        return result

    def _lookup(self, command: str) -> tuple[Handler, str, bool]:
        entry = self._handlers.get(command)
        if entry is None:
            self._counters.errors += 1
            close = difflib.get_close_matches(command, self._handlers, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AdminError(ErrorCode.UNKNOWN_COMMAND, f"unknown command {command!r}{hint}")
        return entry

    def _denial(self, command: str, actor: Actor) -> AdminError | None:
        """The refusal of a role below the command's (counted), or None."""
        access = command_access(command)
        if actor.role >= access.role:
            return None
        self._counters.errors += 1
        return AdminError(
            ErrorCode.PERMISSION_DENIED,
            f"{actor.name} holds the {actor.role.name.lower()} role; {command} needs "
            f"{access.role.name.lower()}")

    def _permitted(self, command: str, actor: Actor) -> tuple[Handler, str, bool]:
        """The handler of a command that does not mutate, if `actor` may run it.

        Raises:
            AdminError: unknown command, or permission_denied.
        """
        entry = self._lookup(command)
        refusal = self._denial(command, actor)
        if refusal is not None:
            raise refusal
        return entry

    async def _record(self, event: AuditEvent) -> None:
        """Hand the event to the recorder; a recorder failure is logged, never raised (the
        action has happened, or been refused, already)."""
        try:
            await self._recorder(event)
        except Exception:
            _log.exception("audit_record_failed", action=event.action, actor=event.actor.name)

    async def _run(self, entry: tuple[Handler, str, bool], command: str,
                   args: Mapping[str, Any], actor: Actor) -> Any:
        handler, _, with_actor = entry
        try:
            result = handler(args, actor) if with_actor else handler(args)
            reply = self._replies.get(command)
            if reply is not None and isinstance(result, asyncio.Future):
                with contextlib.suppress(Exception):  # the reply judges a failed future
                    await result
                return reply(result)
            if inspect.isawaitable(result):
                result = await result
            return result
        except Exception as error:
            raise self._handler_error(error, command, actor) from None

    def _handler_error(self, error: Exception, command: str, actor: Actor) -> AdminError:
        """What a handler's failure tells the client (counted): its AdminError, a WarmdError
        as `failed`, anything else as `internal` (the traceback goes to the log only)."""
        self._counters.errors += 1
        if isinstance(error, AdminError):
            return error
        if isinstance(error, WarmdError):
            return AdminError(ErrorCode.FAILED, str(error))
        _log.error("admin_handler_failed", command=command, actor=actor.name,
                   exc_info=(type(error), error, error.__traceback__))
        return AdminError(ErrorCode.INTERNAL, "internal error; the daemon log has details")

    def _refusal(self, credentials: PeerCredentials) -> AdminError | None:
        """None when the peer may operate the daemon, else the error to send it."""
        if credentials.uid in (0, os.geteuid()):
            return None
        if self._group_id is not None and self._group_id in peer_groups(credentials):
            return None
        allowed = f"root and uid {os.geteuid()} ({_user_name(os.geteuid())})"
        if self._group_id is not None:
            allowed += f" and members of group {_group_name(self._group_id)}"
        return AdminError(
            ErrorCode.PERMISSION_DENIED,
            f"uid {credentials.uid} ({_user_name(credentials.uid)}) may not use this admin "
            f"socket; only {allowed} may",
        )

    def _overload(self) -> AdminError | None:
        """Refuse connections past the limit, so idle clients cannot exhaust descriptors."""
        if len(self._writers) <= self._connections_max:
            return None
        return AdminError(
            ErrorCode.UNAVAILABLE,
            f"too many admin connections (limit {self._connections_max}); try again",
        )

    def _protocol(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Accept a switch to msgpack frames; the connection switches after this reply."""
        if args.get("frames") != FRAMES_MSGPACK:
            raise AdminError(ErrorCode.BAD_REQUEST,
                             f"protocol needs frames={FRAMES_MSGPACK!r} (the one binary encoding)")
        return {"frames": FRAMES_MSGPACK, "frame_bytes_max": LINE_BYTES_MAX}

    async def _ping(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {"pong": True, "pid": os.getpid()}

    async def _commands(self, args: Mapping[str, Any]) -> dict[str, str]:
        return {name: summary for name, (_, summary, _) in sorted(self._handlers.items())}


def peer_credentials(sock: Any) -> PeerCredentials:
    """Read SO_PEERCRED (pid, uid, gid) from a connected Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


def socket_actor(credentials: PeerCredentials) -> Actor:
    """The actor of an admin-socket call: the kernel vouched for the uid, and the socket's
    mode and the credential check already limited it to those who may administer warmd."""
    name = f"uid {credentials.uid} ({_user_name(credentials.uid)})"
    return Actor(name=name, role=Role.ADMIN, interface=Interface.WARMCTL,
                 source=f"pid {credentials.pid}")


def peer_groups(credentials: PeerCredentials) -> set[int]:
    """The peer process's primary and supplementary groups.

    /proc/<pid>/status shows the groups the process really holds (after `newgrp`, `sg` or
    setgroups); when it cannot be read, the group database is the fallback.
    """
    groups = {credentials.gid}
    try:
        status = Path(f"/proc/{credentials.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("Groups:"):
                return groups | {int(value) for value in line.split()[1:]}
    except (OSError, ValueError):
        pass
    name = _user_name(credentials.uid)
    return groups | {entry.gr_gid for entry in grp.getgrall() if name in entry.gr_mem}


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a dead daemon; refuse to touch a live one or a non-socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AdminError(ErrorCode.UNAVAILABLE, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: a leftover from a crash
        return
    finally:
        probe.close()
    raise AdminError(ErrorCode.UNAVAILABLE, f"another process already listens on {path}")


class _Connection:
    """One client's connection: who it is, how it is encoded, its pipelined requests still
    running, and the replies of this turn of the loop, written together (many pipelined
    answers resolve at once when a batch of entries applies: one write, not one per reply)."""

    def __init__(self, writer: asyncio.StreamWriter, credentials: PeerCredentials,
                 actor: Actor) -> None:
        self.writer, self.credentials, self.actor = writer, credentials, actor
        self.framed = False  # msgpack frames instead of JSON lines (after `protocol`)
        self.running: set[asyncio.Future[Any]] = set()
        self._admitted = 0
        self._outbox: list[bytes] = []
        # Kept: asyncio.get_running_loop() makes a getpid() system call per use on 3.11.
        self._loop = asyncio.get_running_loop()

    async def admit(self) -> None:
        """Wait for room for one more pipelined request (PIPELINE_DEPTH_MAX at once).

        Every PIPELINE_BURST_MAX requests the reader yields to the loop: a thousand
        buffered requests would otherwise all start in one turn of the loop, and on a
        leader the Raft driver, whose heartbeats keep followers from electing another
        leader, waited behind them (1,024 in flight on a loaded machine: an election per
        run, and the window of proposals in flight lost)."""
        if len(self.running) >= PIPELINE_DEPTH_MAX:
            await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
        self._admitted += 1
        if self._admitted % PIPELINE_BURST_MAX == 0:
            await asyncio.sleep(0)

    def admit_now(self) -> bool:
        """Admit one more pipelined request if that needs no wait (room in the pipeline, not
        a burst's last): True; False leaves the admission to `admit`."""
        if (len(self.running) >= PIPELINE_DEPTH_MAX
                or (self._admitted + 1) % PIPELINE_BURST_MAX == 0):
            return False
        self._admitted += 1
        return True

    def track(self, pending: asyncio.Future[Any]) -> None:
        """Count a pipelined request's future (or task) until it is done; its reply is
        queued by a callback added before this one, so `settle` sees it queued."""
        self.running.add(pending)
        pending.add_done_callback(self.running.discard)

    async def settle(self) -> None:
        """Wait until every pipelined request started so far has answered."""
        if self.running:
            await asyncio.wait(set(self.running))

    def cancel(self) -> None:
        for pending in self.running:
            pending.cancel()

    def send(self, response: Response) -> bytes:
        """Queue the reply for this turn's write; return its encoding (b"" when no one is
        left to tell)."""
        if self.writer.is_closing():
            return b""
        encoded = (encode_response_frame if self.framed else encode_response)(response)
        self._outbox.append(encoded)
        if len(self._outbox) == 1:
            self._loop.call_soon(self.flush)
        return encoded

    def flush(self) -> None:
        if self._outbox and not self.writer.is_closing():
            self.writer.write(b"".join(self._outbox))
        self._outbox.clear()


async def _reply(writer: asyncio.StreamWriter, response: Response) -> bytes:
    """Send the reply; return its line (b"" when no one is left to tell)."""
    if writer.is_closing():  # the server is shutting down, or the client left: no one to tell
        return b""
    line = encode_response(response)
    writer.write(line)
    await writer.drain()
    return line


def _is_too_large(encoded: bytes) -> bool:
    """Whether a reply (a JSON line or a msgpack frame) is the `too_large` error."""
    head = encoded[:200]
    return b'"code":"too_large"' in head or b"\xa4code\xa9too_large" in head


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "unknown user"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
