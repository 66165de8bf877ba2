"""docs/rules.md and conf/rules/ stay true: every example parses, checks and behaves as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from warmd.cli.rules import check_file, engine_predictor
from warmd.rules.compile import KnownNames, check, load
from warmd.rules.ruletest import parse_spec, run, summary_line

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/rules.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w[\w-]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
RULE_BLOCKS = [body for kind, body in FENCE.findall(DOC) if kind == "rules"]
CONF_FILES = sorted((ROOT / "conf/rules").glob("*.rules"))


def _block(kind: str, containing: str) -> str:
    return next(body for found, body in FENCE.findall(DOC) if found == kind and containing in body)


def test_docs_have_rule_examples() -> None:
    """The reference carries several complete examples (a vacuous pass is impossible)."""
    assert len(RULE_BLOCKS) >= 4


@pytest.mark.parametrize("number", range(len(RULE_BLOCKS)))
def test_docs_rules_blocks_are_valid(number: int) -> None:
    """Every ```rules block of docs/rules.md checks clean."""
    result = check(RULE_BLOCKS[number])
    assert result.ok, result.diagnostics


@pytest.mark.parametrize("path", CONF_FILES, ids=[p.name for p in CONF_FILES])
def test_conf_examples_are_valid(path: Path) -> None:
    """Every example rule file in conf/rules/ checks clean."""
    assert load(path.read_text(encoding="utf-8"), str(path)).rules


def test_docs_error_example_is_the_real_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The misspelt-backend example in the walkthrough is exactly what the checker prints."""
    first = RULE_BLOCKS[0].replace("    backend report-cache\n", "    backend report-cahce\n")
    (tmp_path / "reports.rules").write_text(first, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    ruleset, output = check_file(Path("reports.rules"), KnownNames())
    assert ruleset is None
    assert output + "\n" == _block("console", "report-cahce")


def test_docs_rule_test_example_runs(tmp_path: Path) -> None:
    """The documented rule unit test passes against the walkthrough's rule file, as shown."""
    spec = parse_spec(_block("toml", "rule_files"))
    ruleset = load(RULE_BLOCKS[0])
    outcomes = run(spec, ruleset, engine_predictor())
    assert summary_line(outcomes) == "5 passed, 0 failed, 0 pending"
    assert "5 passed, 0 failed, 0 pending" in _block("console", "rules test")


def test_docs_mention_every_parameter_class_and_hook() -> None:
    """The reference tables name every parameter class and built-in hook the checker accepts."""
    from warmd.rules.compile import HOOKS
    from warmd.rules.params import CLASSES

    for name in [*CLASSES, *HOOKS]:
        assert f"`{name}`" in DOC, name


def test_documented_error_messages_are_real() -> None:
    """Each message quoted in the docs' error table occurs in the golden corpus output."""
    table = DOC[DOC.index("| Kind | Example message |"):DOC.index("The golden files in")]
    quoted = [span for span in re.findall(r"`([^`]+)`", table) if "..." not in span]
    goldens = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests/rules/testdata").glob("*.golden"))
    assert len(quoted) >= 15
    missing = [span for span in quoted if span not in goldens]
    assert missing == []
