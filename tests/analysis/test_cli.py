"""The analyze, predict and backtest commands keep their output contracts."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from warmd.cli.progress import Progress
from warmd.cli.warmd import main
from warmd.testing.loggen import LogSpec, generate_lines


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("logs") / "access.log.gz"
    lines = list(generate_lines(LogSpec(seed=21, days=2.0, requests_per_day=3_000,
                                        malformed_share=0.01)))
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return str(path)


def test_analyze_json_lists_templates_diagnoses_and_bad_lines(log_path: str, capsys) -> None:
    """`analyze --json` reports templates with counts, diagnoses with evidence, bad lines."""
    assert main(["analyze", log_path, "--json", "--workers", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["malformed"] > 0 and report["malformed_samples"][0].startswith("garbage")
    templates = {t["template"]: t for t in report["templates"]}
    daily = templates["/reports/daily?date={}&region={}"]
    assert daily["count"] > 100
    date = next(p for p in daily["parameters"] if p["slot"] == "date")
    assert date["class"] == "date_relative" and date["date_offset_days"] == 1
    assert date["evidence"]


def test_predict_prints_budget_requests_before_at(log_path: str, capsys) -> None:
    """`predict` prints at most N `GET /path?query` lines, using only lines before --at."""
    assert main(["predict", log_path, "--budget", "200", "--at", "2024-03-05T00:00:00",
                 "--horizon", "6h"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 0 < len(lines) <= 200
    assert all(line.startswith("GET /") for line in lines)
    assert any("date=2024-03-06" in line for line in lines)
    assert not any("date=2024-03-07" in line for line in lines)


def test_predict_json_gives_the_same_requests_as_fields(log_path: str, capsys) -> None:
    """`predict --json` lists the requests the text form prints, each with its fields."""
    arguments = ["predict", log_path, "--budget", "50", "--at", "2024-03-05T00:00:00"]
    assert main(arguments) == 0
    lines = capsys.readouterr().out.splitlines()
    assert main([*arguments, "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [entry["request"] for entry in entries] == lines
    for entry in entries:
        assert entry["request"] == "GET " + entry["target"]
        assert entry["expected_hits"] > 0 and 0 <= entry["first_use_after_s"] <= 6 * 3600
        assert entry["source"] and entry["template"]


def test_backtest_json_reports_every_strategy(log_path: str, capsys) -> None:
    """`backtest --json` reports all five strategies and warmd's share of the oracle's gain."""
    assert main(["backtest", log_path, "--capacity", "60", "--split",
                 "2024-03-05T00:00:00", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in report["results"]]
    assert names == ["cold", "most_frequent", "most_recent", "warmd", "oracle"]
    for result in report["results"]:
        assert {"hit_rate_first_1000", "hit_rate_first_10pct", "hit_rate_all", "waste"} <= set(
            result)
    assert "warmd_share_of_oracle_gain_first_10pct" in report


def test_bad_arguments_are_clear_errors(log_path: str, tmp_path: Path, capsys) -> None:
    """A missing file, a bad time or a bad capacity exits non-zero with a message."""
    assert main(["analyze", str(tmp_path / "missing.log")]) == 78
    assert "cannot read log" in capsys.readouterr().err
    assert main(["predict", log_path, "--budget", "5", "--at", "tomorrow"]) == 78
    assert "bad time" in capsys.readouterr().err
    assert main(["backtest", log_path, "--capacity", "0"]) == 78
    for command in (["predict", log_path, "--budget", "5"], ["analyze", log_path]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--workers", "0"])
        assert exit_info.value.code == 2
        assert "--workers: 0 must be 1 or more" in capsys.readouterr().err


def test_progress_is_silent_when_piped_and_draws_on_a_tty() -> None:
    """The progress bar writes nothing to a pipe and lines, rate and time left to a TTY."""
    piped = io.StringIO()
    progress = Progress(total_lines=100, stream=piped)
    progress(50)
    progress.close()
    assert piped.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    drawn = Progress(total_lines=100, stream=terminal, interval_s=0.0)
    drawn(50)
    assert "50 lines" in terminal.getvalue() and "s left" in terminal.getvalue()
    assert "50%" in drawn.render(1.0)
