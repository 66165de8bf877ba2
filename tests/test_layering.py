"""The pure packages stay pure: no I/O, clocks, threads or unseeded randomness.

DESIGN.md §2: `raft/`, `statemachine/`, `rules/`, `analysis/` and `scheduler/` are
functional cores driven by the shell in `runtime/`. A line may opt out with a
trailing `# io-ok` comment that says why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "warmd"
PURE_PACKAGES = ("raft", "statemachine", "rules", "analysis", "scheduler")
FORBIDDEN_MODULES = {
    "asyncio", "socket", "threading", "multiprocessing", "subprocess", "selectors",
    "aiohttp", "redis", "pymemcache", "uvloop", "time", "os", "pathlib", "shutil",
    "glob", "gzip", "signal", "concurrent", "warmd.runtime", "warmd.cache",
    "warmd.admin", "warmd.web", "warmd.cli", "warmd.hooks",
}
FORBIDDEN_CALLS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("random", "random"), ("random", "randint"), ("random", "choice"), ("random", "shuffle"),
    ("random", "uniform"), ("random", "randrange"), ("random", "sample"), ("random", "seed"),
}


def _pure_files() -> list[Path]:
    return sorted(p for package in PURE_PACKAGES for p in (ROOT / package).rglob("*.py"))


def _violations(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        problem = _problem(node)
        if problem and "# io-ok" not in lines[node.lineno - 1]:
            found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: {problem}")
    return found


def _problem(node: ast.AST) -> str | None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if _forbidden(alias.name):
                return f"imports {alias.name}"
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
            and _forbidden(node.module):
        return f"imports from {node.module}"
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            return "calls open()"
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and (func.value.id, func.attr) in FORBIDDEN_CALLS:
            return f"calls {func.value.id}.{func.attr}()"
    return None


def _forbidden(module: str) -> bool:
    return any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN_MODULES)


def test_pure_packages_do_no_io() -> None:
    """No module of a pure package imports I/O, reads a clock or uses unseeded randomness."""
    violations = [v for path in _pure_files() for v in _violations(path)]
    assert violations == []


@pytest.mark.parametrize(
    "snippet",
    ["import asyncio", "from time import monotonic", "open('x')", "datetime.now()",
     "random.random()", "from warmd.runtime import driver"],
)
def test_checker_catches_impurity(snippet: str, tmp_path: Path) -> None:
    """The checker itself flags each kind of impurity, so the guard above can fail."""
    path = ROOT / "raft" / "_layering_probe.py"
    try:
        path.write_text(snippet + "\n")
        assert _violations(path), snippet
    finally:
        path.unlink()
