"""README.md's offline-tools block, run as written from a clone: every command exits 0 with
no traceback. The commands are read from the README itself, so an edit there is tested.

`access.log` is a generated combined log in a scratch directory (the README's reader brings
their own); the cluster and demo blocks are covered by tests/demo and tests/cluster.
"""

from __future__ import annotations

import glob
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from warmd.testing.loggen import LogSpec, generate_lines

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def offline_commands() -> list[str]:
    """The commands of the README's "Offline tools" code block, comments stripped."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Offline tools", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README.md has no sh block under 'Offline tools'"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def argv(command: str, log: Path) -> list[str]:
    """The command's words: `.venv/bin/X` is this venv's entry point, globs expand from the
    clone, `access.log` is the scratch log."""
    words = []
    for word in shlex.split(command):
        if word.startswith(".venv/bin/"):
            words.append(str(BIN / word.removeprefix(".venv/bin/")))
        elif word == "access.log":
            words.append(str(log))
        elif "*" in word:
            words.extend(sorted(glob.glob(str(REPO / word))) or [word])
        else:
            words.append(word)
    return words


@pytest.fixture(scope="module")
def access_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("readme") / "access.log"
    lines = generate_lines(LogSpec(seed=3, days=2.0, requests_per_day=4_000))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_block_is_found() -> None:
    commands = offline_commands()
    assert [shlex.split(c)[:2] for c in commands] == [
        [".venv/bin/warmd", "analyze"], [".venv/bin/warmd", "predict"],
        [".venv/bin/warmd", "backtest"], [".venv/bin/warmctl", "rules"]]


@pytest.mark.parametrize("command", offline_commands())
def test_offline_command_runs_cleanly(command: str, access_log: Path) -> None:
    result = subprocess.run(argv(command, access_log), cwd=REPO, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr + result.stdout, command
    assert result.stdout.strip(), f"{command} printed nothing"
