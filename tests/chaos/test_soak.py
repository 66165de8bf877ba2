"""The soak's judge and sampler: growth after the warm-up is caught, restarts and sawtooths
are not mistaken for leaks, and a real process is measured from /proc."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chaos.soak import Sample, Sampler, judge, parse_duration


def test_durations_parse_with_units_and_refuse_nonsense() -> None:
    assert parse_duration("30m") == 1800 and parse_duration("90s") == 90
    assert parse_duration("90") == 90 and parse_duration("1h") == 3600
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("half an hour")


def _run(rss: list[float], fds: list[int] | None = None, data: list[float] | None = None,
         nodes: int = 3) -> list[Sample]:
    """Samples every 10 s; node 1 follows the given series, the others stay small."""
    samples = []
    for step, value in enumerate(rss):
        at_s = step * 10.0
        samples.append(Sample(at_s, 1, value, (fds or [20] * len(rss))[step],
                              (data or [5.0] * len(rss))[step]))
        samples.extend(Sample(at_s, node, 40.0, 18, 4.0) for node in range(2, nodes + 1))
    return samples


def test_flat_run_passes_and_steady_growth_fails() -> None:
    flat = judge(_run([60.0 + (step % 3) for step in range(60)]), 600)
    assert flat.ok, flat.problems
    leaking = judge(_run([60.0 + step for step in range(60)]), 600)
    assert not leaking.ok and "resident memory grew" in leaking.problems[0]
    assert leaking.rss_growth > 0.3  # first third after the warm-up against the last


def test_a_node_restarted_small_is_neither_a_leak_nor_hides_one() -> None:
    # node 1 is killed at 300 s and comes back small: the worst node is then another one
    restarted = [80.0] * 30 + [30.0] * 30
    assert judge(_run(restarted), 600).ok


def test_descriptor_leak_and_unbounded_disk_are_named() -> None:
    fds = [20 + step for step in range(60)]
    data = [5.0 + step for step in range(60)]
    verdict = judge(_run([60.0] * 60, fds=fds, data=data), 600)
    assert any("descriptors" in problem for problem in verdict.problems)
    assert any("data directory" in problem for problem in verdict.problems)


def test_too_short_a_run_says_so() -> None:
    assert judge(_run([60.0]), 600).problems == ("too few samples to judge",)


@dataclass
class _Node:
    process: subprocess.Popen[bytes]
    data_dir: Path


@dataclass
class _Cluster:
    nodes: dict[int, _Node] = field(default_factory=dict)


def test_sampler_reads_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "segment").write_bytes(b"x" * 2_000_000)
    holder = subprocess.Popen(  # holds ~50 MB and a few extra descriptors
        [sys.executable, "-c", "import sys,time; b=bytearray(50_000_000); "
         "f=[open(sys.executable,'rb') for _ in range(5)]; print('ok', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        cluster = _Cluster({7: _Node(holder, tmp_path)})
        sampler = Sampler(cluster)
        (sample,) = sampler.sample_once()
        assert sample.node_id == 7 and sample.rss_mb > 45
        assert sample.fds >= 8 and 1.9 < sample.data_mb < 2.1
        holder.kill()
        holder.wait()
        assert sampler.sample_once() == []  # a dead node is skipped, not an error
    finally:
        holder.kill()


def test_the_warm_up_lasts_until_the_bounds_are_reached() -> None:
    """Growth toward the state's bounds is by design: the warm-up ends when they are
    reached (here at 400 s, after the usual 100 s), and a run that never reaches them
    says so instead of judging."""
    filling = [60.0 + min(step, 40) for step in range(60)]  # grows until 400 s, then flat
    assert not judge(_run(filling), 600).ok
    settled = judge(_run(filling), 600, settled_s=400.0)
    assert settled.ok and settled.warmup_s == 400.0, settled.problems
    never = judge(_run(filling), 600, settled_s=None)
    assert never.problems == ("the state's bounds were not all reached: growth not judged",)
    assert judge(_run(filling), 600, settled_s=590.0).problems == ("too few samples to judge",)


def test_sampler_notes_when_each_bound_is_first_reached(tmp_path: Path) -> None:
    """The probe's answers are read at each sample; each bound's first `True` is kept,
    a probe that does not answer changes nothing, and once all are reached it is not
    asked again."""
    answers: list[dict[str, bool] | None] = [
        None, {"a": False, "b": False}, {"a": True, "b": False}, None, {"a": False, "b": True}]
    asked: list[int] = []

    def probe() -> dict[str, bool] | None:
        asked.append(1)
        return answers.pop(0) if answers else {"a": True, "b": True}

    reports: list[str] = []
    sampler = Sampler(_Cluster(), report=reports.append, probe=probe)
    for _ in range(4):
        sampler.sample_once()
        assert sampler.settled_s is None
    reached_a = sampler.bounds_reached_s["a"]
    sampler.sample_once()
    assert sampler.settled_s == sampler.bounds_reached_s["b"] >= reached_a
    sampler.sample_once()
    assert len(asked) == 5 and len(reports) == 2 and "bound reached: a" in reports[0]


def test_a_transient_at_the_start_of_the_judged_time_neither_hides_nor_fakes_growth() -> None:
    """A node at twice the size for a minute right after the warm-up (caught up from a
    snapshot, then killed) does not decide the first window: flat stays flat, and growth
    after it is still seen."""
    flat = [60.0] * 60
    spiked = [*flat[:12], *[120.0] * 6, *flat[18:]]
    verdict = judge(_run(spiked), 600)
    assert verdict.ok and abs(verdict.rss_growth) < 0.05, verdict.describe()
    growing = [*spiked[:40], *[60.0 + 2 * step for step in range(20)]]
    assert not judge(_run(growing), 600).ok
