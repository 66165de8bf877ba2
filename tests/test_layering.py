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
     "random.random()", "from warmd.runtime.node import driver"],
)
def test_checker_catches_impurity(snippet: str, tmp_path: Path) -> None:
    """The checker itself flags each kind of impurity, so the guard above can fail."""
    path = ROOT / "raft" / "_layering_probe.py"
    try:
        path.write_text(snippet + "\n")
        assert _violations(path), snippet
    finally:
        path.unlink()


# The shell's wings (DESIGN.md §2): each may import only the wings named here. The modules
# directly in `runtime/` (daemon, services, recovery, sdnotify) wire the wings together.
WING_IMPORTS: dict[str, frozenset[str]] = {
    "node": frozenset(),
    "ingest": frozenset(),
    "leader": frozenset({"node"}),
    "execute": frozenset({"node"}),
    "commands": frozenset({"node", "ingest", "leader", "execute"}),
    "access": frozenset({"node"}),
}
# Packages that must not reach into the shell at all (`metrics` so every wing may import it).
SHELL_FREE = (*PURE_PACKAGES, "hooks", "cache", "admin", "metrics")
# The web server reads the wings' status and state and checks tokens (access); it never
# calls the admin handlers.
WEB_IMPORTS = frozenset({"node", "ingest", "leader", "execute", "access"})


def _unit(module: str) -> str:
    """The package a module belongs to; a runtime wing counts as a package of its own."""
    parts = module.split(".")
    if parts[:2] == ["warmd", "runtime"] and len(parts) > 2 \
            and (ROOT / "runtime" / parts[2]).is_dir():
        return ".".join(parts[:3])
    if len(parts) > 1 and (ROOT / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every warmd module a file imports, TYPE_CHECKING blocks included (a cycle hidden
    there is still a cycle), except under `if __name__ == "__main__":` (entry shims)."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'
               for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("warmd.")}


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        source = _unit(_module_name(path))
        targets = {_unit(name) for name in _imports(path)} - {source}
        graph.setdefault(source, set()).update(targets)
    return graph


def test_wings_import_only_the_wings_below_them() -> None:
    graph = _package_graph()
    wrong = []
    for wing, allowed in WING_IMPORTS.items():
        for target in graph.get(f"warmd.runtime.{wing}", set()):
            other = target.removeprefix("warmd.runtime.")
            if target.startswith("warmd.runtime.") and other not in allowed:
                wrong.append(f"runtime/{wing} imports runtime/{other}")
            if target == "warmd.runtime":
                wrong.append(f"runtime/{wing} imports the runtime wiring")
    assert wrong == []


def test_web_reads_the_wings_but_not_the_commands_or_the_wiring() -> None:
    graph = _package_graph()
    wrong = [target for target in graph.get("warmd.web", set())
             if target == "warmd.runtime" or (target.startswith("warmd.runtime.")
                                              and target.removeprefix("warmd.runtime.")
                                              not in WEB_IMPORTS)]
    assert wrong == []


def test_core_and_contracts_do_not_import_the_shell() -> None:
    graph = _package_graph()
    wrong = [f"{package} imports {target}" for package in SHELL_FREE
             for target in graph.get(f"warmd.{package}", set())
             if target == "warmd.runtime" or target.startswith("warmd.runtime.")]
    assert wrong == []


def test_no_import_cycles_between_packages() -> None:
    graph = _package_graph()
    assert _cycles(graph) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every package that lies on a cycle, with one cycle through it (depth-first search)."""
    found: list[list[str]] = []
    for start in sorted(graph):
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append([*path, start])
                    stack.clear()
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    return found


def test_cycle_finder_can_fail() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) != []
    assert _cycles({"a": {"b"}, "b": {"c"}, "d": {"a"}}) == []
