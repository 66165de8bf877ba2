"""`warmctl top`: the /metrics figures as a screen, from a real daemon and frame to frame."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from warmd.cli.top import Frame, quantile_ms, render
from warmd.testing.procs import ProcessCluster

TEXT = """\
warmd_is_leader 1
warmd_has_leader 1
warmd_term 4
warmd_commit_index {commit}
warmd_proposals_committed_total {commit}
warmd_tasks{{state="succeeded"}} 3
warmd_tasks{{state="ready"}} 0
warmd_wal_fsync_duration_seconds_bucket{{le="0.001"}} 90
warmd_wal_fsync_duration_seconds_bucket{{le="0.002"}} 100
warmd_wal_fsync_duration_seconds_bucket{{le="+Inf"}} 100
warmd_cache_requests_total{{target="web",pattern="/a/{{int}}",result="hit"}} {hits}
warmd_cache_requests_total{{target="web",pattern="/a/{{int}}",result="miss"}} 10
warmd_cache_requests_total{{target="web",pattern="/b",result="unknown"}} 5
warmd_peer_lag_entries{{peer="2"}} 7
"""


def frame(commit: int, hits: int, taken_s: float) -> Frame:
    return Frame.parse(TEXT.format(commit=commit, hits=hits), taken_s)


def test_the_first_screen_shows_totals_and_the_next_shows_rates() -> None:
    """Rates need two frames: the first screen counts, the second divides by the interval."""
    first = render(frame(100, 30, 0.0), None)
    assert "leader" in first and "term 4" in first and "commit 100" in first
    assert "peer   2   lag      7" in first
    assert "succeeded 3" in first and "ready" not in first  # empty states are left out
    assert "/a/{int}" in first and "75.0%" in first  # 30 hits of 40 known
    second = render(frame(120, 50, 2.0), frame(100, 30, 0.0))
    assert "(10.0/s)" in second  # 20 commits in 2 s
    row = next(line for line in second.splitlines() if "/a/{int}" in line)
    assert "10.0" in row and "100.0%" in row  # 20 hits, no new miss, over 2 s


def test_quantiles_come_from_the_histogram_buckets() -> None:
    assert quantile_ms(frame(1, 1, 0.0), "warmd_wal_fsync_duration_seconds", 0.5) == 1.0
    assert quantile_ms(frame(1, 1, 0.0), "warmd_wal_fsync_duration_seconds", 0.99) == 2.0


@pytest.fixture
def one_node() -> Iterator[ProcessCluster]:
    with ProcessCluster(1) as cluster:
        yield cluster


def test_warmctl_top_once_reads_a_running_daemon(one_node: ProcessCluster,
                                                 tmp_path: Path) -> None:
    """`warmctl top --once` prints one screen of the node's real figures."""
    log = tmp_path / "access.log"
    log.write_text('1.2.3.4 - - [06/Dec/2026:10:00:00 +0000] "GET /a/1 HTTP/1.1" 200 1 "-" "c" HIT\n')
    node = one_node.nodes[1]
    node.extra_config = f'[sources.web]\npaths = ["{log}"]\nformat = "combined"\n' \
                        '[analysis]\nship_interval_ms = 200\npoll_interval_ms = 100\n'
    one_node.write_config(node)
    one_node.start_all()
    one_node.wait_for_leader()

    def screen() -> str | None:
        result = subprocess.run([str(Path(sys.executable).parent / "warmctl"), "--socket",
                                 str(node.socket_path), "top", "--once"],
                                capture_output=True, text=True, timeout=30, check=True)
        return result.stdout if "/a/{int}" in result.stdout else None

    text = one_node.wait_until(screen, 20, "the log's template on the screen")
    assert "leader" in text and "source web" in text and "100.0%" in text

