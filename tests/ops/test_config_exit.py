"""`warmd run` exits 78 with the key named for every configuration error, however it arrives:
from the file (a NUL in a path, a duplicate peer), the environment (a log level override) or a
file the config points at (a certificate that is not one). Never a traceback, never exit 1:
under systemd only 78 stops the restart loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from warmd.testing.configs import ONE_NODE, write_config

CASES = [
    ("nul-in-path", ONE_NODE.replace('data_dir = "data"', 'data_dir = "data\\u0000x"'), {},
     "node.data_dir"),
    ("duplicate-peer", ONE_NODE + '[peers.01]\naddress = "127.0.0.1:7002"\n', {}, "peers.01"),
    ("log-level-env", ONE_NODE, {"WARMD_LOG_LEVEL": "verbose"}, "WARMD_LOG_LEVEL"),
    ("log-format-env", ONE_NODE, {"WARMD_LOG_FORMAT": "xml"}, "WARMD_LOG_FORMAT"),
    ("bad-certificate", ONE_NODE + '[cluster.tls]\ncert_file = "node.crt"\n'
     'key_file = "node.key"\nca_file = "node.crt"\n', {}, "cluster.tls"),
]


@pytest.mark.parametrize(("text", "environment", "key"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_configuration_error_exits_78_naming_the_key(
        tmp_path: Path, text: str, environment: dict[str, str], key: str) -> None:
    """The daemon refuses to start with status 78 and one line naming the key."""
    for name in ("node.crt", "node.key"):
        (tmp_path / name).write_text("-----BEGIN NOTHING-----\n")
        (tmp_path / name).chmod(0o600)
    path = write_config(tmp_path, text)
    env = {**os.environ, **environment}
    result = subprocess.run([sys.executable, "-m", "warmd", "run", "--config", str(path)],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 78, result.stderr
    assert key in result.stderr and "Traceback" not in result.stderr, result.stderr
