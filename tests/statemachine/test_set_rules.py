"""SetRules: a validated, replicated rule set that survives snapshots and matches the checker's version."""

from __future__ import annotations

import pytest

from warmd.rules.compile import check_files
from warmd.statemachine.commands import InvalidCommand, decode_command, encode_command
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.ruleset import SetRules
from warmd.statemachine.state import Applied

FILES = (("a.rules", "rule a {\n    match GET /a\n}\n"), ("b.rules", "rule b {\n    match GET /b\n}\n"))


def test_version_is_the_checkers_digest() -> None:
    """The command's version equals the digest `check_files` reports for the same files."""
    assert SetRules.of(FILES).version == check_files(FILES).digest


def test_a_version_that_is_not_the_digest_is_refused() -> None:
    """A command whose version does not match its texts cannot be built."""
    good = SetRules.of(FILES)
    with pytest.raises(InvalidCommand, match=r"SetRules\.version"):
        SetRules(version="0" * 64, file_names=good.file_names, texts=good.texts, now_ms=1)
    with pytest.raises(InvalidCommand, match="one text per file name"):
        SetRules(version=good.version, file_names=good.file_names, texts=good.texts[:1], now_ms=1)


def test_apply_installs_the_set_and_a_later_one_replaces_it() -> None:
    """Applying SetRules records version, files and index; a second one replaces the first."""
    machine = StateMachine()
    first = SetRules.of(FILES, now_ms=5)
    assert machine.apply(1, first) == Applied(first.version)
    assert machine.state.rules is not None and machine.state.rules.files == FILES
    assert machine.state.rules.index == 1
    second = SetRules.of(FILES[:1], now_ms=6)
    machine.apply(2, second)
    assert machine.state.rules.version == second.version and machine.state.rules.index == 2


def test_the_rule_set_survives_a_snapshot() -> None:
    """restore(snapshot()) gives the same rule set and the same state digest."""
    machine = StateMachine()
    machine.apply(1, SetRules.of(FILES, now_ms=5))
    copy = StateMachine()
    copy.restore(machine.snapshot())
    assert copy.state.rules == machine.state.rules
    assert copy.digest() == machine.digest()


def test_wire_round_trip_and_tampered_text_is_refused() -> None:
    """SetRules encodes and decodes as a command; changing a text on the wire is refused."""
    command = SetRules.of(FILES, now_ms=5)
    data = encode_command(command)
    assert decode_command(data) == command
    tampered = data.replace(b"GET /a", b"GET /x")
    with pytest.raises(InvalidCommand, match=r"SetRules\.version"):
        decode_command(tampered)
