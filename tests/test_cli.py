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


def _registered(module_name: str) -> tuple[tuple[str, str], ...]:
    import argparse
    import importlib

    subparsers = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(module_name).register(subparsers)
    return tuple((action.dest, action.help) for action in subparsers._choices_actions)


def test_lazy_command_listings_match_what_each_module_registers() -> None:
    """Each entry point's table names exactly the subcommands and help its module registers."""
    from warmd.cli import warmctl, warmd

    for entry in (*warmctl.COMMAND_MODULES, *warmd.command_modules()):
        assert _registered(entry.module) == entry.commands, entry.module


def test_help_and_dispatch_import_only_the_chosen_module() -> None:
    """`warmctl --help` imports no command module; `warmctl ping` imports ping's only."""
    probe = (
        "import sys\n"
        "from warmd.cli.warmctl import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('MODULES', *sorted(m for m in sys.modules if m.startswith(('warmd.cli.', 'aiohttp', 'redis'))))\n"
    )
    def loaded(*args: str) -> set[str]:
        result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                                text=True, check=True, env={"WARMD_SOCKET": "/nonexistent/admin.sock"})
        return set(result.stdout.splitlines()[-1].split()[1:])

    assert loaded("--help") == {"warmd.cli.command", "warmd.cli.warmctl"}
    assert loaded("ping") == {"warmd.cli.command", "warmd.cli.warmctl", "warmd.cli.ping"}
