"""systemd integration files: the unit verifies, users and directories come out right, and
MemoryDenyWriteExecute=yes is compatible with CPython, uvloop and our C extensions."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze missing: apt-get install systemd (the Makefile does)"
)

# Runs under W^X enforcement: proves enforcement is on, then does what the daemon does.
MDWE_PROBE = r"""
import asyncio, ctypes, mmap, sys
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    sys.exit("W+X mapping was allowed: enforcement is not active")
except OSError:
    pass
callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)
assert callback(1) == 2
import hiredis, lark, msgpack, pymemcache, redis, structlog, uvloop
from aiohttp import web
from warmd.admin.client import AdminClient
from warmd.admin.server import AdminServer
import warmd.config, warmd.runtime.sdnotify

async def main(path):
    server = AdminServer(path)
    await server.start()
    result = await asyncio.to_thread(lambda: AdminClient(path).call("ping"))
    await server.close()
    runner = web.AppRunner(web.Application())
    await runner.setup()
    await runner.cleanup()
    assert msgpack.unpackb(msgpack.packb({"a": 1})) == {"a": 1}
    hiredis.Reader().feed(b"+OK\r\n")
    print("ok", result["pong"])

uvloop.run(main(sys.argv[1]))
"""
PRCTL_MDWE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(f"PR_SET_MDWE unsupported: errno {ctypes.get_errno()}")
os.execv(sys.argv[1], sys.argv[1:])
"""
# The filter systemd installs for MemoryDenyWriteExecute= (seccomp-util.c), via libseccomp.
SECCOMP_MDWE = r"""
import errno, mmap, os, sys, seccomp
deny = seccomp.ERRNO(errno.EPERM)
wx, x = mmap.PROT_WRITE | mmap.PROT_EXEC, mmap.PROT_EXEC
rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
rules.add_rule(deny, "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
rules.add_rule(deny, "mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, x, x))
rules.add_rule(deny, "pkey_mprotect", seccomp.Arg(2, seccomp.MASKED_EQ, x, x))
rules.add_rule(deny, "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, 0o100000, 0o100000))
rules.load()
os.execv(sys.argv[1], sys.argv[1:])
"""


# systemd's default search path for ExecStart executables (and for `env`'s lookup of warmd).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def exec_start_words() -> list[str]:
    line = next(line for line in (SYSTEMD / "warmd.service").read_text().splitlines()
                if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ANALYZE, "verify", str(path)], capture_output=True, text=True,
                          timeout=120, check=False)


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@needs_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts warmd.service as shipped, with no warning about it."""
    result = verify(SYSTEMD / "warmd.service")
    assert result.returncode == 0, result.stderr
    assert "warmd.service" not in result.stderr, result.stderr


@needs_analyze
def test_verify_would_catch_a_misspelled_directive(tmp_path: Path) -> None:
    """The check above can fail: a misspelled hardening directive is reported by verify."""
    text = (SYSTEMD / "warmd.service").read_text().replace("ProtectSystem=", "ProtectSytem=")
    path = tmp_path / "warmd.service"
    path.write_text(text)
    result = verify(path)
    assert "Unknown key 'ProtectSytem'" in result.stderr


def test_unit_has_the_settings_the_daemon_relies_on() -> None:
    """Type=notify, watchdog, state/runtime dirs, restart policy, user and hardening are set."""
    unit = directives((SYSTEMD / "warmd.service").read_text())
    expected = {
        "Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
        "RestartPreventExitStatus": "78", "ExecReload": "/bin/kill -HUP $MAINPID",
        "StateDirectory": "warmd", "RuntimeDirectory": "warmd", "User": "warmd",
        "SupplementaryGroups": "adm", "ProtectSystem": "strict", "ProtectHome": "yes",
        "NoNewPrivileges": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    }
    assert {key: unit.get(key, ["<missing>"])[0] for key in expected} == expected
    assert "@system-service" in unit["SystemCallFilter"]
    assert unit["WatchdogSec"][0].endswith("s")
    assert unit["ExecStart"][0].startswith(
        "/usr/bin/env --ignore-signal=HUP warmd run --config ")
    assert int(unit["LimitNOFILE"][0]) >= 65536


def test_exec_start_finds_warmd_where_pip_or_a_package_puts_it(tmp_path: Path) -> None:
    """The unit's launcher finds `warmd` on systemd's default PATH (here the venv's entry
    point linked into a stand-in for /usr/local/bin) and runs it; with no warmd there it
    fails with env's clear message, not a silent success."""
    words = exec_start_words()
    assert words[:3] == ["/usr/bin/env", "--ignore-signal=HUP", "warmd"]
    local_bin = tmp_path / "usr-local-bin"
    local_bin.mkdir()
    (local_bin / "warmd").symlink_to(Path(sys.executable).parent / "warmd")
    found = subprocess.run([*words[:3], "--help"], capture_output=True, text=True, timeout=60,
                           env={"PATH": f"{local_bin}:{SYSTEMD_PATH}"}, check=False)
    assert found.returncode == 0 and found.stdout.startswith("usage: warmd"), found.stderr
    missing = subprocess.run([*words[:3], "--help"], capture_output=True, text=True,
                             timeout=60, env={"PATH": str(tmp_path)}, check=False)
    assert missing.returncode == 127 and "warmd" in missing.stderr


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers missing")
def test_sysusers_and_tmpfiles_create_user_and_private_directories(tmp_path: Path) -> None:
    """In a scratch root, sysusers creates warmd and tmpfiles makes /etc/warmd and /var/lib/warmd."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    for tool, name in (("systemd-sysusers", "warmd.sysusers.conf"),
                       ("systemd-tmpfiles", "warmd.tmpfiles.conf")):
        extra = ["--create"] if tool == "systemd-tmpfiles" else []
        subprocess.run([tool, *extra, f"--root={root}", str(SYSTEMD / name)], check=True,
                       capture_output=True, timeout=60)
    user = next(line for line in (root / "etc/passwd").read_text().splitlines()
                if line.startswith("warmd:"))
    uid, gid = int(user.split(":")[2]), int(user.split(":")[3])
    config_dir, state_dir = (root / "etc/warmd").stat(), (root / "var/lib/warmd").stat()
    assert (config_dir.st_mode & 0o777, config_dir.st_uid, config_dir.st_gid) == (0o750, 0, gid)
    assert (state_dir.st_mode & 0o777, state_dir.st_uid) == (0o700, uid)


def run_probe(launcher: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "probe.py"
    probe.write_text(MDWE_PROBE)
    return subprocess.run(
        [*launcher, sys.executable, str(probe), str(tmp_path / "probe.sock")],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )


def test_memory_deny_write_execute_fits_python_and_uvloop(tmp_path: Path) -> None:
    """With W^X enforced by the kernel (PR_SET_MDWE), the daemon's stack imports and serves."""
    result = run_probe([sys.executable, "-c", PRCTL_MDWE], tmp_path)
    if "PR_SET_MDWE unsupported" in result.stderr:
        pytest.skip("kernel older than 6.3 has no PR_SET_MDWE; " + result.stderr.strip())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok True")


def _system_python_with_seccomp() -> str | None:
    for candidate in ("/usr/bin/python3",):
        if Path(candidate).exists() and subprocess.run(
            [candidate, "-c", "import seccomp"], capture_output=True, check=False
        ).returncode == 0:
            return candidate
    return None


@pytest.mark.skipif(
    _system_python_with_seccomp() is None,
    reason="python3-seccomp not installed (apt-get install python3-seccomp) for systemd's exact filter",
)
def test_memory_deny_write_execute_with_systemds_seccomp_filter(tmp_path: Path) -> None:
    """Under the very seccomp rules systemd installs for MemoryDenyWriteExecute=, all still works."""
    python = _system_python_with_seccomp()
    assert python is not None
    result = run_probe([python, "-c", SECCOMP_MDWE], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok True")
