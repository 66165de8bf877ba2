"""The command-line entry points start and answer --help and version."""

from __future__ import annotations

import subprocess
import sys


def test_warmctl_version_prints_version(capsys) -> None:
    """`warmctl version` prints the package version and exits 0."""
    from warmd.cli.warmctl import main

    assert main(["version"]) == 0
    assert "warmctl 0.1.0" in capsys.readouterr().out


def test_python_dash_m_warmd_help() -> None:
    """`python -m warmd --help` lists the subcommands and exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "warmd", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_unknown_subcommand_exits_2() -> None:
    """An unknown subcommand is a usage error (exit 2) with a message on stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "warmd", "no-such-command"], capture_output=True, text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
