"""`warmctl rules check|fmt|test`: exit statuses, output, and no traceback for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from warmd.cli.warmctl import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = "backend cache redis\nrule r {\n    match GET /a/{id:int}\n    key \"a:{id}\"\n    load fetch \"http://o/a/{id}\"\n    backend cache\n}\n"
BAD = "rule s {\n    match GET /a\n    backend redis-mian\n    ttl 5x\n}\n"


def _write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def test_check_valid_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file prints ok with its rule count and exits 0."""
    path = _write(tmp_path, "good.rules", GOOD)
    assert main(["rules", "check", path]) == 0
    assert capsys.readouterr().out == f"{path}: ok (1 rules)\n"


def test_check_reports_every_error_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """All errors of all files are printed as FILE:LINE:COL with a caret; the status is 2."""
    good, bad = _write(tmp_path, "good.rules", GOOD), _write(tmp_path, "bad.rules", BAD)
    assert main(["rules", "check", good, bad]) == 2
    captured = capsys.readouterr()
    assert f"{good}: ok" in captured.out
    assert f"{bad}:3:13: error: unknown backend 'redis-mian'" in captured.err
    assert f"{bad}:4:9: error: bad duration '5x'" in captured.err
    assert "        ^~~~~~~~~~\n" in captured.err
    assert captured.err.rstrip().endswith(f"{bad}: 2 errors")


def test_backends_from_flag_and_config(tmp_path: Path) -> None:
    """--backends and --config [caches.NAME] make backend names known."""
    path = _write(tmp_path, "r.rules", BAD.replace("    ttl 5x\n", ""))
    assert main(["rules", "check", path]) == 2
    assert main(["rules", "check", "--backends", "redis-mian:redis", path]) == 0
    config = _write(tmp_path, "warmd.toml", '[caches.redis-mian]\nkind = "redis"\naddress = "127.0.0.1:6379"\n')
    assert main(["rules", "check", "--config", config, path]) == 0


def test_config_kind_enables_memcached_checks(tmp_path: Path) -> None:
    """A backend's kind from the config turns on the memcached TTL limit."""
    text = GOOD.replace("backend cache redis\n", "") + ""
    path = _write(tmp_path, "r.rules", text.replace("    backend cache\n", "    backend cache\n    ttl 40d\n"))
    config = _write(tmp_path, "warmd.toml", '[caches.cache]\nkind = "memcached"\n')
    assert main(["rules", "check", "--config", config, path]) == 2
    assert main(["rules", "check", "--backends", "cache:redis", path]) == 0


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"rule r {\n\x00\n}", b"}}}{{{"])
def test_unreadable_or_binary_input_is_an_error_not_a_crash(tmp_path: Path, content: bytes) -> None:
    """Binary or non-UTF-8 files exit 2 with a message."""
    assert main(["rules", "check", _write(tmp_path, "x.rules", content)]) == 2


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that does not exist is reported, not raised."""
    assert main(["rules", "check", str(tmp_path / "nope.rules")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_fmt_prints_canonical_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """fmt rewrites spacing and indentation but keeps the meaning."""
    path = _write(tmp_path, "r.rules", "rule   r {\nmatch   GET /a   # c\n  ttl 1h   jitter 5%\n}")
    assert main(["rules", "fmt", path]) == 0
    assert capsys.readouterr().out == "rule r {\n    match GET /a\n    ttl 1h jitter 5%\n}\n"
    assert main(["rules", "fmt", "--write", path]) == 0
    assert Path(path).read_text() == "rule r {\n    match GET /a\n    ttl 1h jitter 5%\n}\n"


def test_rules_test_on_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped reports.test.toml passes, engine checks included (none left pending)."""
    assert main(["rules", "test", str(ROOT / "conf/rules/reports.test.toml")]) == 0
    out = capsys.readouterr().out
    assert "9 passed, 0 failed, 0 pending" in out
    assert "PASS    tomorrow's daily report: must predict GET /api/report/2026-11-28" in out


def test_rules_test_failure_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong expectation fails with a message that says what differed."""
    _write(tmp_path, "good.rules", GOOD)
    spec = _write(tmp_path, "t.toml", 'rule_files = ["good.rules"]\n[[tests]]\nname = "n"\n'
                  '[[tests.selects]]\nrequest = "/a/7"\nrule = "r"\nkey = "a:8"\n')
    assert main(["rules", "test", spec]) == 2
    assert "FAIL    n: selects /a/7 -- key: want 'a:8', got 'a:7'" in capsys.readouterr().out


def test_rules_test_with_bad_toml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed test file is an error with exit status 2, not a traceback."""
    assert main(["rules", "test", _write(tmp_path, "t.toml", "rule_files = [\n")]) == 2
    assert "invalid TOML" in capsys.readouterr().err


def test_installed_warmctl_never_prints_a_traceback(tmp_path: Path) -> None:
    """Run as a real process on a broken file: exit 2, diagnostics, no Python traceback."""
    path = _write(tmp_path, "bad.rules", BAD + "rule {{\n")
    result = subprocess.run([sys.executable, "-c", "from warmd.cli.warmctl import main; raise SystemExit(main())",
                             "rules", "check", path], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error: unknown backend" in result.stderr


def test_files_form_one_rule_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule name used in two files is a duplicate reported in the later file."""
    first = _write(tmp_path, "a.rules", GOOD)
    second = _write(tmp_path, "b.rules", "rule r {\n    match GET /b\n}\n")
    assert main(["rules", "check", first, second]) == 2
    err = capsys.readouterr().err
    assert f"{second}:1:6: error: duplicate rule name 'r'" in err
    assert f"help: the first rule 'r' is in {first}" in err


def test_check_json_gives_each_diagnostic_as_fields(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`rules check --json` exits like the text form and gives each error's place, message
    and suggestion as fields, and a file that cannot be read as a problem."""
    bad = _write(tmp_path, "bad.rules", "rule a {\n    match GET /x\n    backend redsi\n}\n")
    good = _write(tmp_path, "good.rules", "rule b {\n    match GET /y\n}\n")
    assert main(["rules", "check", "--json", "--backends", "redis", bad, good,
                 str(tmp_path / "missing.rules")]) == 2
    document = json.loads(capsys.readouterr().out)
    first, second, third = document["files"]
    assert document["valid"] is False and second == {
        "file": good, "valid": True, "diagnostics": [], "rules": 1}
    (error,) = first["diagnostics"]
    assert (error["line"], error["column"], error["severity"]) == (3, 13, "error")
    assert error["message"] == "unknown backend 'redsi'" and "redis" in error["suggestion"]
    assert third["valid"] is False and "cannot read" in third["problem"]


def test_rules_test_and_version_speak_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`rules test --json` gives each check's outcome as fields; `version --json` too."""
    conf = Path(__file__).resolve().parents[2] / "conf" / "rules"
    assert main(["rules", "test", "--json", str(conf / "reports.test.toml")]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["passed"] is True and document["outcomes"]
    assert {outcome["status"] for outcome in document["outcomes"]} == {"pass"}
    assert main(["version", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"]
