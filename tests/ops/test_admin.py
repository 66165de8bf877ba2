"""The admin socket: file modes, peer credentials, the JSON-lines protocol and client errors."""

from __future__ import annotations

import asyncio
import functools
import grp
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import warmd
from warmd.admin.client import AdminClient, AdminClientError
from warmd.admin.protocol import (
    LINE_BYTES_MAX,
    ErrorCode,
    Request,
    Response,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    exit_status,
)
from warmd.admin.server import AdminServer
from warmd.errors import AdminError, WarmdError

NOBODY_UID = 65534
REPO = Path(warmd.__file__).resolve().parent.parent
# Runs as `nobody`: calls `ping` with warmd's client and prints the outcome as JSON.
NOBODY_CLIENT = """
import json, sys
from warmd.admin.client import AdminClient, AdminClientError
try:
    print(json.dumps({"result": AdminClient(sys.argv[1], timeout_s=10).call("ping")}))
except AdminClientError as error:
    print(json.dumps({"code": error.code, "message": error.message, "exit": error.exit_status}))
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching to nobody needs root")


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory under /tmp that `nobody` may traverse (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="warmd-admin-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def server(socket_dir: Path) -> AsyncIterator[AdminServer]:
    """A started AdminServer (mode 0600) with a few demo handlers."""
    admin = make_server(socket_dir / "admin.sock")
    await admin.start()
    yield admin
    await admin.close()


def make_server(path: Path, group_id: int | None = None) -> AdminServer:
    admin = AdminServer(path, group_id=group_id)
    admin.register("status", lambda args: {"role": "leader", "term": 3, "args": dict(args)})

    async def transfer(args: dict) -> None:
        raise AdminError(ErrorCode.NOT_LEADER, "not the leader; the leader is node 2")

    def rejected(args: dict) -> None:
        raise WarmdError("task t1 is already running")

    def broken(args: dict) -> None:
        raise RuntimeError("bug")

    admin.register("transfer-leader", transfer)
    admin.register("cancel", rejected)
    admin.register("broken", broken)
    return admin


def some_group() -> grp.struct_group:
    """An existing group other than root and nogroup, for the 0660 tests."""
    return next(g for g in grp.getgrall() if g.gr_gid not in (0, 65534))


@functools.cache
def nobody_python() -> str:
    """A Python interpreter that `nobody` can execute (the venv may live under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3", shutil.which("python3") or ""):
        if candidate and _runs_as_nobody([candidate, "-c", "pass"]):
            return candidate
    pytest.fail("no python interpreter is executable by nobody; install python3")


def _runs_as_nobody(command: list[str]) -> bool:
    try:
        return subprocess.run(command, preexec_fn=_become_nobody([]), capture_output=True,
                              timeout=30, check=False).returncode == 0
    except OSError:
        return False


def _become_nobody(groups: list[int]):
    def switch() -> None:
        os.setgroups(groups)
        os.setgid(NOBODY_UID)
        os.setuid(NOBODY_UID)
    return switch


async def call_as_nobody(path: Path, groups: list[int] | None = None) -> dict:
    """Run NOBODY_CLIENT as uid/gid nobody (with extra `groups`) and return its JSON outcome."""
    process = await asyncio.create_subprocess_exec(
        nobody_python(), "-c", NOBODY_CLIENT, str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_become_nobody(groups or []), cwd="/",
        env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    return json.loads(stdout)


async def call(path: Path, command: str, **args):
    """One call with warmd's (blocking) client, off the event loop that runs the server."""
    def run():
        with AdminClient(path, timeout_s=10) as client:
            return client.call(command, **args)
    return await asyncio.to_thread(run)


async def test_socket_is_created_0600(server: AdminServer) -> None:
    """Without a group the socket file is a socket with mode 0600 owned by the daemon's uid."""
    status = os.stat(server.socket_path)
    assert stat.S_ISSOCK(status.st_mode)
    assert stat.S_IMODE(status.st_mode) == 0o600
    assert status.st_uid == os.geteuid()


async def test_socket_with_group_is_0660_and_chgrp(socket_dir: Path) -> None:
    """With a configured group the socket is 0660 and owned by that group."""
    group = some_group()
    admin = make_server(socket_dir / "admin.sock", group_id=group.gr_gid)
    await admin.start()
    try:
        status = os.stat(admin.socket_path)
        assert stat.S_IMODE(status.st_mode) == 0o660 and status.st_gid == group.gr_gid
    finally:
        await admin.close()
    assert not admin.socket_path.exists()


async def test_round_trip_and_several_requests_per_connection(server: AdminServer) -> None:
    """Requests on one connection get their results in order; ping and commands are built in."""
    def run():
        with AdminClient(server.socket_path) as client:
            return [client.call("status", verbose=True), client.call("ping"),
                    client.call("commands")]
    status, ping, commands = await asyncio.to_thread(run)
    assert status == {"role": "leader", "term": 3, "args": {"verbose": True}}
    assert ping == {"pong": True, "pid": os.getpid()}
    assert {"status", "ping", "commands", "transfer-leader"} <= set(commands)
    assert server.statistics().requests == 3


@pytest.mark.parametrize(
    ("command", "code", "status", "fragment"),
    [
        ("stauts", ErrorCode.UNKNOWN_COMMAND, 64, "did you mean 'status'?"),
        ("transfer-leader", ErrorCode.NOT_LEADER, 75, "the leader is node 2"),
        ("cancel", ErrorCode.FAILED, 1, "already running"),
        ("broken", ErrorCode.INTERNAL, 70, "daemon log"),
    ],
)
async def test_errors_carry_code_and_exit_status(
    server: AdminServer, command: str, code: str, status: int, fragment: str
) -> None:
    """Handler errors come back typed; the code decides warmctl's exit status; serving goes on."""
    with pytest.raises(AdminClientError) as caught:
        await call(server.socket_path, command)
    assert caught.value.code == code and caught.value.exit_status == status
    assert fragment in caught.value.message
    assert (await call(server.socket_path, "ping"))["pong"] is True


@pytest.mark.parametrize(
    "line",
    [b"this is not json\n", b'["a list"]\n', b'{"command": 5}\n', b'{"command": "Bad Name"}\n',
     b'{"v": 99, "command": "ping"}\n', b'{"command": "ping", "args": []}\n', b"\xff\xfe\n"],
)
async def test_malformed_request_gets_error_then_close(server: AdminServer, line: bytes) -> None:
    """A malformed line gets one bad_request reply, the connection is closed, others still work."""
    reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
    writer.write(line)
    await writer.drain()
    reply = decode_response(await asyncio.wait_for(reader.readline(), 5))
    assert reply.error_code == ErrorCode.BAD_REQUEST
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    writer.close()
    assert (await call(server.socket_path, "ping"))["pong"] is True


async def test_oversized_request_is_refused_not_buffered(server: AdminServer) -> None:
    """A line over the size limit is answered with bad_request and the connection closed."""
    reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
    writer.write(b"x" * (LINE_BYTES_MAX + 10))
    await writer.drain()
    reply = decode_response(await asyncio.wait_for(reader.readline(), 5))
    assert reply.error_code == ErrorCode.BAD_REQUEST and "exceeds" in reply.error_message
    writer.close()
    assert (await call(server.socket_path, "ping"))["pong"] is True


async def test_peer_with_disallowed_uid_is_refused(server: AdminServer) -> None:
    """With the file mode opened up, SO_PEERCRED still refuses uid nobody with a clear error."""
    server.socket_path.chmod(0o666)  # as if an operator loosened the mode by hand
    outcome = await call_as_nobody(server.socket_path)
    assert outcome["code"] == ErrorCode.PERMISSION_DENIED and outcome["exit"] == 77
    assert f"uid {NOBODY_UID} (nobody) may not use this admin socket" in outcome["message"]
    assert server.statistics().connections_refused == 1
    assert (await call(server.socket_path, "ping"))["pong"] is True


async def test_group_member_is_allowed(socket_dir: Path) -> None:
    """A caller in the configured group (as a supplementary group) is served through 0660."""
    group = some_group()
    admin = make_server(socket_dir / "admin.sock", group_id=group.gr_gid)
    await admin.start()
    try:
        outcome = await call_as_nobody(admin.socket_path, groups=[group.gr_gid])
        assert outcome["result"]["pong"] is True
        refused = await call_as_nobody(admin.socket_path)
        assert refused["code"] == ErrorCode.PERMISSION_DENIED
        assert "run warmctl as root" in refused["message"]  # stopped by the file mode
    finally:
        await admin.close()


async def test_client_explains_permission_denied_by_file_mode(server: AdminServer) -> None:
    """A caller that the 0600 mode keeps out is told the path and the --socket option."""
    outcome = await call_as_nobody(server.socket_path)
    assert outcome["code"] == ErrorCode.PERMISSION_DENIED
    assert str(server.socket_path) in outcome["message"] and "--socket" in outcome["message"]


def test_client_explains_a_missing_socket(tmp_path: Path) -> None:
    """No socket at the path: unavailable (exit 69), naming the path and hinting --socket."""
    path = tmp_path / "absent.sock"
    with pytest.raises(AdminClientError) as caught:
        AdminClient(path).call("status")
    assert caught.value.code == ErrorCode.UNAVAILABLE and caught.value.exit_status == 69
    assert str(path) in caught.value.message and "--socket" in caught.value.message
    assert "is warmd running" in caught.value.message


def test_client_explains_a_stale_socket(tmp_path: Path) -> None:
    """A socket file nobody listens on (a crashed daemon's) is reported as such."""
    path = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()
    with pytest.raises(AdminClientError, match="nothing listens on admin socket"):
        AdminClient(path).call("status")


async def test_stale_socket_is_replaced_and_live_one_refused(socket_dir: Path) -> None:
    """start() replaces a dead daemon's socket but refuses to steal a live daemon's."""
    path = socket_dir / "admin.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()
    first = make_server(path)
    await first.start()
    try:
        second = make_server(path)
        with pytest.raises(AdminError, match="another process already listens"):
            await second.start()
        assert (await call(path, "ping"))["pong"] is True
    finally:
        await first.close()


async def test_regular_file_at_socket_path_is_not_removed(socket_dir: Path) -> None:
    """A non-socket file at the socket path is an error and is left alone."""
    path = socket_dir / "admin.sock"
    path.write_text("precious")
    with pytest.raises(AdminError, match="not a socket"):
        await make_server(path).start()
    assert path.read_text() == "precious"


def test_register_refuses_bad_and_duplicate_names() -> None:
    """Command names are lowercase words, registered once."""
    admin = AdminServer("/nonexistent/admin.sock")
    with pytest.raises(ValueError, match="must match"):
        admin.register("Status", lambda args: None)
    with pytest.raises(ValueError, match="already registered"):
        admin.register("ping", lambda args: None)


def test_protocol_round_trips_and_maps_exit_statuses() -> None:
    """Requests and replies survive encode/decode; each code has its sysexits status."""
    request = Request("add-learner", {"node_id": 4, "address": "127.0.0.1:7004"}, 9)
    assert decode_request(encode_request(request)) == request
    ok = Response(9, {"members": [1, 2, 3]})
    assert decode_response(encode_response(ok)) == ok
    failed = Response(9, None, ErrorCode.NOT_LEADER, "leader is 2")
    assert decode_response(encode_response(failed)) == failed
    with pytest.raises(AdminError) as caught:
        decode_response(encode_response(failed)).raise_for_error()
    assert caught.value.code == "not_leader"
    unencodable = decode_response(encode_response(Response(1, {"x": object()})))
    assert unencodable.error_code == ErrorCode.INTERNAL
    assert [exit_status(code) for code in ("permission_denied", "unavailable", "nonsense")] == [
        77, 69, 1
    ]
    with pytest.raises(AdminError) as caught:
        decode_response(b'{"v": 1, "id": 1}')
    assert caught.value.code == ErrorCode.PROTOCOL


async def test_idle_connection_is_closed(socket_dir: Path) -> None:
    """A client that connects and says nothing is disconnected after the idle timeout."""
    admin = AdminServer(socket_dir / "admin.sock", idle_timeout_s=0.2)
    await admin.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(admin.socket_path))
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await admin.close()


async def test_connections_past_the_limit_are_refused(socket_dir: Path) -> None:
    """Past connections_max, a new client is told to retry; a freed slot serves again."""
    admin = AdminServer(socket_dir / "admin.sock", connections_max=2)
    await admin.start()
    ping = encode_request(Request("ping", {}, 1))
    try:
        held = [await asyncio.open_unix_connection(str(admin.socket_path)) for _ in range(2)]
        for reader, writer in held:
            writer.write(ping)
            await writer.drain()
            assert decode_response(await asyncio.wait_for(reader.readline(), 5)).ok
        reader, writer = await asyncio.open_unix_connection(str(admin.socket_path))
        refused = decode_response(await asyncio.wait_for(reader.readline(), 5))
        writer.close()
        assert refused.error_code == ErrorCode.UNAVAILABLE
        assert "too many admin connections" in refused.error_message
        held[0][1].close()
        await asyncio.sleep(0.05)
        assert (await call(admin.socket_path, "ping"))["pong"] is True
        held[1][1].close()
    finally:
        await admin.close()


async def test_missing_socket_directory_is_created(socket_dir: Path) -> None:
    """A hand-started daemon (no systemd RuntimeDirectory) creates the socket's directory."""
    admin = AdminServer(socket_dir / "node1" / "admin.sock")
    await admin.start()
    try:
        assert (await call(admin.socket_path, "ping"))["pong"] is True
    finally:
        await admin.close()


async def test_uncreatable_socket_is_a_clear_error(socket_dir: Path) -> None:
    """If the socket cannot be created, start() names the path and the reason."""
    blocker = socket_dir / "file"
    blocker.write_text("")
    with pytest.raises(AdminError, match=f"cannot create {blocker}") as caught:
        await AdminServer(blocker / "admin.sock").start()
    assert caught.value.code == ErrorCode.UNAVAILABLE
