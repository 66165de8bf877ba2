"""`warmd check-config` and `warmctl ping` as real processes: output and exit statuses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from warmd.admin.server import AdminServer
from warmd.testing.configs import ONE_NODE, TEST_SECRET, write_config

SECRET = TEST_SECRET
CONFIG = ONE_NODE + """
[peers.2]
address = "127.0.0.1:7002"
"""


def run_warmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warmd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def run_warmctl(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run warmctl without blocking the event loop that serves its admin socket."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from warmd.cli.warmctl import main; raise SystemExit(main())",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stdout.decode(), stderr.decode()


def write(tmp_path: Path, text: str) -> Path:
    return write_config(tmp_path, text)


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    """A valid file prints its summary (no secret) and exits 0."""
    result = run_warmd("check-config", "--config", str(write(tmp_path, CONFIG)), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["node_id"] == 1 and summary["peers"] == {
        "1": "127.0.0.1:7001",
        "2": "127.0.0.1:7002",
    }
    assert SECRET.strip().decode() not in result.stdout


def test_check_config_exits_78_naming_the_key(tmp_path: Path) -> None:
    """A wrong value exits 78 with one line naming the file, the dotted key and the reason."""
    path = write(tmp_path, CONFIG.replace('"127.0.0.1:7002"', '"127.0.0.1:70000"'))
    result = run_warmd("check-config", "--config", str(path))
    assert result.returncode == 78
    assert result.stderr.strip() == (
        f"warmd: error: {path}: peers.2.address: port 70000 is outside 1..65535"
    )


def test_check_config_refuses_world_readable_secret(tmp_path: Path) -> None:
    """A world-readable secret exits 78 and says which chmod fixes it."""
    path = write(tmp_path, CONFIG)
    (tmp_path / "cluster.secret").chmod(0o644)
    result = run_warmd("check-config", "--config", str(path))
    assert result.returncode == 78 and "cluster.secret_file" in result.stderr
    assert "chmod 600" in result.stderr


async def test_warmctl_ping_with_socket_before_or_after_the_command(tmp_path: Path) -> None:
    """`warmctl --socket P ping` and `warmctl ping --socket P` both reach the daemon."""
    server = AdminServer(tmp_path / "admin.sock")
    await server.start()
    try:
        for args in (
            ("--socket", str(server.socket_path), "ping", "--json"),
            ("ping", "--json", "--socket", str(server.socket_path)),
        ):
            status, stdout, stderr = await run_warmctl(*args)
            assert status == 0, stderr
            assert json.loads(stdout) == {"pong": True, "pid": os.getpid()}
        status, stdout, _ = await run_warmctl("ping", env={"WARMD_SOCKET": str(server.socket_path)})
        assert status == 0 and str(server.socket_path) in stdout
    finally:
        await server.close()


async def test_warmctl_without_daemon_exits_69_with_a_hint(tmp_path: Path) -> None:
    """With no daemon behind the socket path, warmctl exits 69 and names the path and --socket."""
    path = tmp_path / "none.sock"
    status, _, stderr = await run_warmctl("--socket", str(path), "ping")
    assert status == 69
    assert str(path) in stderr and "--socket" in stderr and stderr.startswith("warmctl: error:")
