"""SetRules: a validated, replicated rule set that survives snapshots and matches the checker's version."""

from __future__ import annotations

import pytest

from warmd.rules.compile import check_files
from warmd.statemachine import ruleset
from warmd.statemachine.commands import InvalidCommand, decode_command, encode_command
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.ruleset import DisabledRule, SetRuleEnabled, SetRules
from warmd.statemachine.state import Applied, Rejected

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


def test_history_keeps_the_newest_versions_with_actor_and_drops_old_texts_past_the_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each SetRules adds a version (index, time, actor); only RULE_HISTORY_KEPT stay, and
    the oldest lose their texts first when all texts pass the bound."""
    monkeypatch.setattr(ruleset, "HISTORY_TEXT_CHARS_MAX", 120)
    machine = StateMachine()
    for number in range(ruleset.RULE_HISTORY_KEPT + 3):
        text = f"rule r{number} {{\n    match GET /r{number}\n}}\n"
        machine.apply(number + 1, SetRules.of((("a.rules", text),), now_ms=number, actor=f"u{number}"))
    history = machine.state.rule_history
    assert len(history) == ruleset.RULE_HISTORY_KEPT
    assert [version.index for version in history] == list(range(4, ruleset.RULE_HISTORY_KEPT + 4))
    assert history[-1].actor == f"u{ruleset.RULE_HISTORY_KEPT + 2}"
    assert history[-1].version == machine.state.rules.version
    kept = [version for version in history if version.texts]
    assert sum(version.chars for version in kept) <= 120 and history[-1].texts
    assert not history[0].texts and history[0].file_names == ("a.rules",)


def test_a_rule_is_disabled_and_enabled_once_and_the_switch_survives_snapshots() -> None:
    """Disable records who and when; a second disable or an enable of an enabled rule is
    refused; snapshots keep switches and history, digests equal."""
    machine = StateMachine()
    machine.apply(1, SetRules.of(FILES, now_ms=5, actor="alice"))
    assert machine.apply(2, SetRuleEnabled(name="a", enabled=False, now_ms=6, actor="bob")) == Applied("a")
    assert machine.state.disabled_rules["a"] == DisabledRule("a", 2, 6, "bob")
    refused = machine.apply(3, SetRuleEnabled(name="a", enabled=False, now_ms=7))
    assert isinstance(refused, Rejected) and "already disabled" in refused.reason
    copy = StateMachine()
    copy.restore(machine.snapshot())
    assert copy.state.disabled_rules == machine.state.disabled_rules
    assert copy.state.rule_history == machine.state.rule_history
    assert copy.digest() == machine.digest()
    assert machine.apply(4, SetRuleEnabled(name="a", enabled=True, now_ms=8)) == Applied("a")
    assert not machine.state.disabled_rules
    assert isinstance(machine.apply(5, SetRuleEnabled(name="a", enabled=True, now_ms=9)), Rejected)
