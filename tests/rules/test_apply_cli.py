"""`warmd predict|backtest --rules`, `warmctl rules test` predictions, and `analyze | head`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from warmd.cli.warmctl import main as warmctl
from warmd.cli.warmd import main as warmd
from warmd.testing.loggen import LogSpec, generate_lines

ITEMS = "rule items {\n    match GET /api/items/{item:int}\n    budget top 4\n}\n"
SEARCH = "rule search {\n    match GET /search\n}\n"
LINE = '192.0.2.{client} - - [27/Nov/2026:{hour:02d}:00:00 +0000] "GET {target} HTTP/1.1" 200 10 "-" "curl/8"'


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("logs") / "access.log"
    lines = generate_lines(LogSpec(seed=8, days=1.5, requests_per_day=3_000))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_predict_with_rules_warms_only_selected_within_budgets(
        log_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`predict --rules` prints only requests of the rules, items capped at their `budget top 4`."""
    rules = _write(tmp_path, "a.rules", ITEMS + SEARCH)
    assert warmd(["predict", log_path, "--budget", "30", "--rules", rules]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 30
    assert sum(line.startswith("GET /api/items/") for line in lines) == 4
    assert all(line.startswith(("GET /api/items/", "GET /search")) for line in lines)
    assert "matched no rule (never warmed)" in captured.err


def test_predict_with_a_bad_rule_file_exits_2_with_the_errors(
        log_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule file that fails its check stops predict with exit 2 and the checker's message."""
    rules = _write(tmp_path, "bad.rules", "rule r {\n    match GET /a\n    ttl 5x\n}\n")
    assert warmd(["predict", log_path, "--budget", "5", "--rules", rules]) == 2
    err = capsys.readouterr().err
    assert "bad.rules:3:" in err and "error" in err


def test_backtest_with_rules_changes_warmds_warm_set(
        log_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`backtest --rules` with a never-warm rule leaves warmd's strategy warming nothing."""
    base = ["backtest", log_path, "--capacity", "50", "--json"]
    assert warmd(base) == 0
    plain = json.loads(capsys.readouterr().out)
    rules = _write(tmp_path, "n.rules", "rule items {\n    match GET /api/items/{item:int}\n"
                                        "    param item never-warm\n}\n")
    assert warmd([*base, "--rules", rules]) == 0
    ruled = json.loads(capsys.readouterr().out)
    warmed = {r["name"]: r["warmed"] for r in plain["results"]}
    assert warmed["warmd"] > 0
    assert {r["name"]: r["warmed"] for r in ruled["results"]}["warmd"] == 0


def _spec(tmp_path: Path, must: str, must_not: str) -> str:
    _write(tmp_path, "item.rules", "rule item {\n    match GET /item/{id:int}\n}\n")
    log = "\n".join(LINE.format(client=1 + n % 3, hour=n % 20, target="/item/7") for n in range(12))
    return _write(tmp_path, "t.toml", f'rule_files = ["item.rules"]\n[[tests]]\nname = "n"\n'
                  f'log = """\n{log}\n/"""\n'.replace('/"""', '"""')
                  + f'[tests.predict]\nmust = ["{must}"]\nmust_not = ["{must_not}"]\n')


def test_rules_test_checks_real_predictions(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """must/must_not pass against the engine: a request asked 12 times is predicted, another not."""
    assert warmctl(["rules", "test", _spec(tmp_path, "GET /item/7", "GET /item/8")]) == 0
    out = capsys.readouterr().out
    assert "2 passed, 0 failed, 0 pending" in out


def test_rules_test_fails_when_the_engine_disagrees(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A must for a request never seen and a must_not for the hot one both fail, exit 2."""
    assert warmctl(["rules", "test", _spec(tmp_path, "GET /item/8", "GET /item/7")]) == 2
    out = capsys.readouterr().out
    assert "FAIL    n: must predict GET /item/8 -- not predicted" in out
    assert "FAIL    n: must_not predict GET /item/7 -- predicted" in out


def test_analyze_into_a_closed_pipe_prints_no_traceback(log_path: str) -> None:
    """`warmd analyze LOG | true` (a reader gone before the output) exits 0 without a traceback."""
    installed = Path(sys.executable).parent / "warmd"
    script = f"{installed} analyze {log_path} --workers 1 --json | true"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True,
                          text=True, timeout=60)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert done.returncode == 0


def test_backtest_keys_follow_the_rules_drops(
        log_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With `param q drop` the replayed keys lose q like the warmed ones, so warmed keys get used."""
    rules = _write(tmp_path, "d.rules", "rule search {\n    match GET /search\n    param q drop\n}\n")
    assert warmd(["backtest", log_path, "--capacity", "50", "--json", "--rules", rules]) == 0
    warmd_result = next(r for r in json.loads(capsys.readouterr().out)["results"]
                        if r["name"] == "warmd")
    assert warmd_result["warmed"] > 0 and warmd_result["hit_rate_all"] > 0
    assert warmd_result["waste"] < 0.5  # without the drop in the replay keys: 1.0
