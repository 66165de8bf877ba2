"""Golden corpus: every testdata/*.rules file's exact check output is in its .golden file.

Regenerate after an intended change with `WARMD_REWRITE=1 pytest tests/rules/test_golden.py`
and review the diff before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from warmd.rules.compile import KnownNames, check
from warmd.rules.errors import render_all
from warmd.rules.parser import parse
from warmd.rules.pretty import pretty

TESTDATA = Path(__file__).parent / "testdata"
CASES = sorted(TESTDATA.glob("*.rules"))
REWRITE = os.environ.get("WARMD_REWRITE") == "1"


def golden_output(path: Path) -> str:
    """What `rules check` reports for a file, plus the canonical form of valid files."""
    text = path.read_text(encoding="utf-8")
    result = check(text, KnownNames())
    shown = f"testdata/{path.name}"
    if result.ok:
        assert result.ruleset is not None
        return (f"{shown}: ok ({len(result.ruleset.rules)} rules)\n--- canonical form ---\n"
                + pretty(parse(text)))
    count = sum(1 for d in result.diagnostics if d.severity == "error")
    return render_all(shown, text, result.diagnostics) + f"\n\n{count} error{'s' if count != 1 else ''}\n"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_output(path: Path) -> None:
    """The checker's output for the file matches its golden file exactly."""
    golden = path.with_suffix(".golden")
    actual = golden_output(path)
    if REWRITE:
        golden.write_text(actual, encoding="utf-8")
    assert golden.exists(), f"missing {golden.name}: run with WARMD_REWRITE=1"
    assert actual == golden.read_text(encoding="utf-8")


def test_corpus_has_valid_and_invalid_files() -> None:
    """The corpus covers both outcomes, so a checker that accepts or rejects all would fail."""
    outcomes = {check(p.read_text(encoding="utf-8")).ok for p in CASES}
    assert outcomes == {True, False}
    assert len(CASES) >= 10


def test_valid_files_are_named_valid() -> None:
    """Files named valid_* check clean and error_* files do not (the naming is the contract)."""
    for path in CASES:
        assert check(path.read_text(encoding="utf-8")).ok == path.name.startswith("valid_"), path.name
