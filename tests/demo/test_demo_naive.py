"""The naive warm set: the last day's most requested targets over every node's log."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from warmd.demo.naive import top_targets

END_S = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()


def _line(target: str, at_s: float, method: str = "GET") -> str:
    stamp = datetime.fromtimestamp(at_s, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'10.0.0.1 - - [{stamp}] "{method} {target} HTTP/1.1" 200 10 "-" "ua" 0.001\n'


def test_top_targets_of_the_last_day_over_every_log(tmp_path: Path) -> None:
    """Counts merge across logs; older lines, other methods and lines at or after the end
    are left out; ties go by target, so the set is reproducible."""
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text(_line("/a", END_S - 60) * 2 + _line("/old", END_S - 90_000) * 9
                     + _line("/b", END_S - 30) + _line("/post", END_S - 10, "POST") * 5)
    second.write_text(_line("/b", END_S - 20) * 2 + _line("/c", END_S - 10)
                      + _line("/later", END_S + 5) * 7 + _line("/d", END_S - 40))
    assert top_targets([first, second], END_S, 3) == ["/b", "/a", "/c"]
    assert top_targets([first, second], END_S, 10) == ["/b", "/a", "/c", "/d"]
    assert top_targets([first, second], END_S, 0) == []
