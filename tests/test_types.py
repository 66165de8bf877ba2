"""The build fails on a new type error: mypy runs here, so `make test` (and CI) runs it.

Plain mypy checks the whole package with pyproject's [tool.mypy] settings; the pure core is
checked once more with `mypy --strict` itself, so that a flag a newer mypy adds to --strict
applies to it without anyone copying it into the overrides.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.test_layering import PURE_PACKAGES

REPO = Path(__file__).resolve().parent.parent


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False)


def test_the_package_type_checks() -> None:
    result = _mypy()
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pure_core_type_checks_under_strict() -> None:
    paths = [f"warmd/{package}" for package in PURE_PACKAGES]
    result = _mypy("--strict", "--follow-imports=silent", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_strict_overrides_name_every_pure_package() -> None:
    """Plain `mypy` in an editor applies --strict's checks to exactly the pure packages."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    strict = [o for o in config["overrides"] if o.get("disallow_untyped_defs")]
    assert len(strict) == 1
    assert sorted(strict[0]["module"]) == sorted(f"warmd.{p}.*" for p in PURE_PACKAGES)
