"""`[rules] files` in warmd.toml, and the node-side check that guards `rules reload`."""

from __future__ import annotations

from pathlib import Path

import pytest

from warmd.cli.rules import format_rules
from warmd.config import ConfigKeyError, load
from warmd.runtime.commands.rules import check_rule_files
from warmd.runtime.leader.rule_names import known_names
from warmd.testing.configs import ONE_NODE, write_config

CONFIG = ONE_NODE + """
[caches.pages]
kind = "redis"
address = "127.0.0.1:6379"
"""


def _config_path(directory: Path, extra: str) -> Path:
    return write_config(directory, CONFIG + extra)


def test_rules_files_resolve_against_the_config_directory(tmp_path: Path) -> None:
    """`[rules] files` become absolute paths beside the config; no section means no files."""
    config = load(_config_path(tmp_path, '\n[rules]\nfiles = ["a.rules", "/etc/b.rules"]\n'))
    assert config.rules.files == ((tmp_path / "a.rules").resolve(), Path("/etc/b.rules"))
    assert load(_config_path(tmp_path, "")).rules.files == ()


def test_an_empty_or_unknown_rules_key_is_a_config_error(tmp_path: Path) -> None:
    """An empty list and an unknown key under [rules] are refused, naming the key."""
    with pytest.raises(ConfigKeyError, match=r"rules\.files"):
        load(_config_path(tmp_path, "\n[rules]\nfiles = []\n"))
    with pytest.raises(ConfigKeyError, match=r"rules\.fils"):
        load(_config_path(tmp_path, '\n[rules]\nfils = ["a.rules"]\n'))


def test_node_check_knows_the_configured_caches(tmp_path: Path) -> None:
    """A rule naming a configured cache passes the node's check; a typo fails with a suggestion."""
    known = known_names(load(_config_path(tmp_path, "")))
    good = "rule r {\n    match GET /a\n    backend pages\n}\n"
    assert check_rule_files([("r.rules", good)], known) == ""
    errors = check_rule_files([("r.rules", good.replace("pages", "pagse"))], known)
    assert errors.startswith("r.rules:3:") and "did you mean 'pages'" in errors


def test_show_formats_version_and_files() -> None:
    """`rules show` prints the version and index, then each file under its name."""
    reply = {"version": "ab" * 32, "index": 7, "files": [{"name": "a.rules", "text": "rule a {}\n"}]}
    assert format_rules(reply) == f"version {'ab' * 32} (log index 7)\n# --- a.rules\nrule a {{}}"
    assert format_rules({"version": None, "files": []}) == "no rule set committed"
