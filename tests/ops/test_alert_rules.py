"""The Prometheus alert rules: valid (`promtool check rules`), passing their unit tests
(`promtool test rules`), each alert tested both firing and silent, each with a runbook.

promtool comes from Debian's `prometheus` package, which `make system-deps` installs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "conf" / "prometheus" / "warmd-alerts.yml"
RULE_TESTS = ROOT / "tests" / "prometheus" / "warmd-alerts.test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
REQUIRED = ("NoLeader", "InsufficientMembers", "FrequentElections", "SlowFsync",
            "ProposalsFailing", "FollowerBehind", "TaskFailureRate", "TaskBacklog",
            "HitRatioDrop", "LogIngestStalled")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable is not None, "promtool is missing: run `make system-deps`"
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def alert_names() -> list[str]:
    return re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), flags=re.MULTILINE)


def test_the_rules_are_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists() -> None:
    assert sorted(alert_names()) == sorted(f"Warmd{name}" for name in REQUIRED)


@pytest.mark.parametrize("alert", [f"Warmd{name}" for name in REQUIRED])
def test_every_alert_is_tested_firing_and_silent(alert: str) -> None:
    """One promtool test expects the alert, another expects nothing at all."""
    text = RULE_TESTS.read_text()
    assert re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels:", text)
    assert re.search(rf"alertname: {alert}\n\s+exp_alerts: \[\]", text)


@pytest.mark.parametrize("alert", [f"Warmd{name}" for name in REQUIRED])
def test_every_alert_has_a_summary_and_a_runbook_paragraph(alert: str) -> None:
    """Its runbook annotation points at a heading of docs/operations.md with a paragraph."""
    rules = RULES.read_text()
    block = rules[rules.index(f"- alert: {alert}\n"):]
    block = block[:block.find("- alert:", 10)] if "- alert:" in block[10:] else block
    assert "summary:" in block
    assert f'runbook: "docs/operations.md#{alert.lower()}"' in block
    section = re.search(rf"^#### {alert}\n\n(.+?)(?=\n#|\Z)", OPERATIONS.read_text(),
                        flags=re.MULTILINE | re.DOTALL)
    assert section is not None and len(section.group(1).split()) > 30
