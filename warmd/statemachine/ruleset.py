"""The replicated rule set: the `SetRules` command and the record every replica holds (pure).

A node checks rule files before it proposes them (warmd/runtime/commands/rules.py); the log
carries each file's name and text with the set's version, the SHA-256 of those names and
texts. The command re-derives the version on construction and on decode, so a corrupted
or hand-made entry cannot install text under a version it does not have.

Beside the set, the state keeps its history (the newest RULE_HISTORY_KEPT versions, with
their texts while those fit in HISTORY_TEXT_CHARS_MAX) and the rules an operator switched
off by name (`SetRuleEnabled`): a switch outlives new versions of the set, because an
operator who silenced a rule does not expect the next upload to wake it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from warmd.statemachine.schema import Validated, check_name, check_text, fail

RULE_FILES_MAX = 64
RULE_SET_CHARS_MAX = 4_000_000  # all texts together; well under the command size limit
VERSION_CHARS = 64  # hex SHA-256


def rules_digest(files: Sequence[tuple[str, str]]) -> str:
    """The rule set's version: SHA-256 over each file's name and text, length-prefixed, in order."""
    hasher = hashlib.sha256()
    for name, text in files:
        for part in (name, text):
            encoded = part.encode("utf-8", "surrogatepass")
            hasher.update(len(encoded).to_bytes(8, "big") + encoded)
    return hasher.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class SetRules(Validated):
    """Replace the cluster's rule set with checked files; applied value: the version."""

    version: str
    file_names: tuple[str, ...]
    texts: tuple[str, ...]
    now_ms: int
    actor: str = ""  # who uploaded it (kept in the history; "" from a node's own start load)

    def _check_values(self) -> None:
        check_text("SetRules.actor", self.actor)
        if len(self.file_names) != len(self.texts):
            fail("SetRules.texts", f"needs one text per file name ({len(self.file_names)} names, "
                                   f"{len(self.texts)} texts)")
        if len(self.file_names) > RULE_FILES_MAX:
            fail("SetRules.file_names", f"at most {RULE_FILES_MAX} files, got {len(self.file_names)}")
        for name in self.file_names:
            check_name("SetRules.file_names", name)
        total = sum(map(len, self.texts))
        if total > RULE_SET_CHARS_MAX:
            fail("SetRules.texts", f"at most {RULE_SET_CHARS_MAX} characters in all, got {total}")
        expected = rules_digest(tuple(zip(self.file_names, self.texts, strict=True)))
        if self.version != expected:
            fail("SetRules.version", f"is not the digest of the files (expected {expected})")

    @classmethod
    def of(cls, files: Sequence[tuple[str, str]], now_ms: int = 0, actor: str = "") -> SetRules:
        """The command for `(name, text)` files, with their version computed."""
        return cls(version=rules_digest(files), file_names=tuple(name for name, _ in files),
                   texts=tuple(text for _, text in files), now_ms=now_ms, actor=actor)


@dataclass(frozen=True, slots=True)
class RuleSetRecord:
    """The committed rule set: what every replica holds after applying a SetRules."""

    version: str
    file_names: tuple[str, ...]
    texts: tuple[str, ...]
    index: int  # log index of the SetRules that installed it
    set_ms: int

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        """(name, text) pairs in order."""
        return tuple(zip(self.file_names, self.texts, strict=True))


RULE_HISTORY_KEPT = 20  # versions listed on /rules and by `warmctl rules history`
HISTORY_TEXT_CHARS_MAX = 2_000_000  # texts kept for diffs, newest first; older keep digests
DISABLED_RULES_MAX = 1_000


@dataclass(frozen=True, slots=True)
class RuleVersion:
    """One committed version of the rule set. `texts` is empty once the history's texts
    passed HISTORY_TEXT_CHARS_MAX (then only the digest tells what it held)."""

    version: str
    index: int
    set_ms: int
    actor: str
    file_names: tuple[str, ...]
    texts: tuple[str, ...]

    @property
    def chars(self) -> int:
        return sum(map(len, self.texts))


def add_version(history: list[RuleVersion], record: RuleVersion) -> None:
    """Append `record`, keep the newest RULE_HISTORY_KEPT, and drop the texts of the oldest
    while all texts together pass HISTORY_TEXT_CHARS_MAX (the newest keeps its own)."""
    history.append(record)
    del history[:-RULE_HISTORY_KEPT]
    total = sum(version.chars for version in history)
    for position, version in enumerate(history[:-1]):
        if total <= HISTORY_TEXT_CHARS_MAX:
            return
        total -= version.chars
        history[position] = RuleVersion(version.version, version.index, version.set_ms,
                                         version.actor, version.file_names, ())


@dataclass(frozen=True, slots=True, kw_only=True)
class SetRuleEnabled(Validated):
    """Switch one rule of the set on or off by name; applied value: the name. A disabled rule
    plans nothing (the planner skips it) until it is enabled again."""

    name: str
    enabled: bool
    now_ms: int
    actor: str = ""

    def _check_values(self) -> None:
        check_name("SetRuleEnabled.name", self.name)
        check_text("SetRuleEnabled.actor", self.actor)


@dataclass(frozen=True, slots=True)
class DisabledRule:
    """A rule switched off: since when (index and leader time) and by whom."""

    name: str
    index: int
    set_ms: int
    actor: str
