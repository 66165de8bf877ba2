"""The soak: what a long run costs each node, sampled while the chaos run goes on.

`python -m chaos --soak 30m` runs the usual nemesis and workload for that long while a
sampler thread reads, every few seconds, each running daemon's resident memory and open
descriptors from /proc and its data directory's size (log segments and snapshots). A
daemon that leaks shows as growth after the warm-up: the verdict compares the cluster's
worst node at the end with its worst node just after the warm-up, so a node restarted by
the nemesis (small again) cannot hide a leak, nor look like one.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

WARMUP_S_MAX = 300.0  # "after the first 5 minutes"; shorter runs warm up for a sixth
GROWTH_MAX = 0.10  # RSS may grow 10 % after the warm-up
FD_SLACK = 8  # descriptors come and go with peer connections and clients
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smh]?)$")


def parse_duration(text: str) -> float:
    """`30m` -> 1800.0, `90s`/`90` -> 90.0, `1h` -> 3600.0. Raises: ValueError with the form."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration (e.g. 90s, 30m, 1h)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@dataclass(frozen=True, slots=True)
class Sample:
    """One node at one moment of the run."""

    at_s: float  # since the soak began
    node_id: int
    rss_mb: float
    fds: int
    data_mb: float


def process_sample(pid: int) -> tuple[float, int] | None:
    """(resident MB, open descriptors) of a live process; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return (int(match.group(1)) / 1024 if match else 0.0), fds


def directory_mb(path: Path) -> float:
    """Bytes under `path` (files vanish while we walk: compaction), in MB."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total / 1e6


class SampledNode(Protocol):
    """What the sampler reads of a node (a ProcessCluster's NodeProcess has it)."""

    @property
    def process(self) -> subprocess.Popen[Any] | None: ...

    @property
    def data_dir(self) -> Path: ...


class SampledCluster(Protocol):
    @property
    def nodes(self) -> Mapping[int, SampledNode]: ...


BoundsProbe = Callable[[], Mapping[str, bool] | None]  # bound name -> reached (None: no answer)


class Sampler:
    """A thread sampling every running node of `cluster` each `interval_s`.

    With a `probe`, it also asks the cluster at each sample which of the state's bounds
    (finished tasks kept, audit records kept) are reached, and notes when each first is:
    until then the state grows by design, so the soak's warm-up lasts at least that long.
    """

    def __init__(self, cluster: SampledCluster, interval_s: float = 5.0,
                 report: Callable[[str], None] | None = None, report_every_s: float = 60.0,
                 probe: BoundsProbe | None = None) -> None:
        self.cluster = cluster
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.bounds_reached_s: dict[str, float] = {}
        self._probe = probe
        self._bounds_pending: set[str] | None = None  # None: not asked yet
        self._report = report
        self._report_every_s = report_every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-sampler", daemon=True)
        self._started_s = 0.0

    def start(self) -> Sampler:
        self._started_s = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 30)

    def sample_once(self) -> list[Sample]:
        at_s = time.monotonic() - self._started_s
        taken = []
        for node_id, node in sorted(self.cluster.nodes.items()):
            process = node.process
            if process is None or process.poll() is not None:
                continue
            measured = process_sample(process.pid)
            if measured is not None:
                taken.append(Sample(at_s, node_id, measured[0], measured[1],
                                    directory_mb(node.data_dir)))
        self.samples.extend(taken)
        self._probe_bounds(at_s)
        return taken

    @property
    def settled_s(self) -> float | None:
        """When the last bound was first seen reached; None while any is not (or unknown)."""
        if self._bounds_pending is None or self._bounds_pending:
            return None
        return max(self.bounds_reached_s.values(), default=0.0)

    def _probe_bounds(self, at_s: float) -> None:
        if self._probe is None or self._bounds_pending == set():
            return  # every bound reached: stop asking (the audit listing is not free)
        answer = self._probe()
        if answer is None:
            return
        if self._bounds_pending is None:
            self._bounds_pending = set(answer)
        for name, reached in answer.items():
            if reached and name in self._bounds_pending:
                self._bounds_pending.discard(name)
                self.bounds_reached_s[name] = at_s
                if self._report is not None:
                    self._report(f"soak t={at_s:.0f}s bound reached: {name}")

    def _run(self) -> None:
        next_report_s = self._report_every_s
        while not self._stop.wait(self.interval_s):
            taken = self.sample_once()
            if self._report is not None and taken and taken[0].at_s >= next_report_s:
                next_report_s += self._report_every_s
                self._report(describe_moment(taken))


def describe_moment(samples: Sequence[Sample]) -> str:
    return (f"soak t={samples[0].at_s:.0f}s nodes={len(samples)} "
            f"rss_max_mb={max(s.rss_mb for s in samples):.1f} "
            f"fds_max={max(s.fds for s in samples)} "
            f"data_max_mb={max(s.data_mb for s in samples):.1f}")


@dataclass(frozen=True, slots=True)
class SoakVerdict:
    """Growth from just after the warm-up to the end, of the worst node at each moment."""

    warmup_s: float
    rss_start_mb: float
    rss_end_mb: float
    fds_start: int
    fds_end: int
    data_start_mb: float
    data_end_mb: float
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rss_growth(self) -> float:
        return self.rss_end_mb / self.rss_start_mb - 1 if self.rss_start_mb else 0.0

    def describe(self) -> str:
        return (f"rss_mb {self.rss_start_mb:.1f} -> {self.rss_end_mb:.1f} "
                f"({self.rss_growth:+.1%}), fds {self.fds_start} -> {self.fds_end}, "
                f"data_mb {self.data_start_mb:.1f} -> {self.data_end_mb:.1f} "
                f"(after a {self.warmup_s:.0f} s warm-up)")


def judge(samples: Sequence[Sample], duration_s: float,
          settled_s: float | None = 0.0) -> SoakVerdict:
    """Compare the worst node in the window right after the warm-up with the last window.

    Windows are a third of the judged time after the warm-up (at least a tenth of the
    run): medians over a window smooth the sawtooth of a log compacted by snapshots and
    of the garbage collector, and a transient of a few minutes (a wiped node catching up
    from a snapshot, then killed) cannot decide a window alone.
    The warm-up lasts the first 5 minutes (a sixth of a shorter run) and at least until
    `settled_s`, when the state's bounds were all reached (None: never, in this run: the
    state was still growing by design, so a leak cannot be told from it).
    """
    if settled_s is None:
        return SoakVerdict(duration_s, 0, 0, 0, 0, 0, 0,
                           ("the state's bounds were not all reached: growth not judged",))
    warmup_s = max(min(WARMUP_S_MAX, duration_s / 6), settled_s)
    window_s = max(duration_s / 10, (duration_s - warmup_s) / 3, 1e-9)
    worst = _worst_by_moment(samples)
    start = [row for at_s, row in worst if warmup_s <= at_s < warmup_s + window_s]
    end = [row for at_s, row in worst if at_s >= duration_s - window_s]
    if not start or not end or warmup_s + window_s > duration_s - window_s:
        return SoakVerdict(warmup_s, 0, 0, 0, 0, 0, 0, ("too few samples to judge",))
    rss = (statistics.median(r[0] for r in start), statistics.median(r[0] for r in end))
    fds = (int(statistics.median(r[1] for r in start)), int(statistics.median(r[1] for r in end)))
    data = (statistics.median(r[2] for r in start), statistics.median(r[2] for r in end))
    problems = []
    if rss[1] > rss[0] * (1 + GROWTH_MAX):
        problems.append(f"resident memory grew {rss[1] / rss[0] - 1:.0%} after the warm-up "
                        f"({rss[0]:.1f} -> {rss[1]:.1f} MB; allowed {GROWTH_MAX:.0%})")
    if fds[1] > fds[0] + FD_SLACK:
        problems.append(f"open descriptors grew {fds[0]} -> {fds[1]} (a leak?)")
    if data[1] > data[0] * (1 + GROWTH_MAX) + 1.0:
        problems.append(f"the data directory grew {data[0]:.1f} -> {data[1]:.1f} MB: "
                        "the log or the snapshots are not bounded by live work")
    return SoakVerdict(warmup_s, rss[0], rss[1], fds[0], fds[1], data[0], data[1],
                       tuple(problems))


def _worst_by_moment(samples: Sequence[Sample]) -> list[tuple[float, tuple[float, int, float]]]:
    """For each sampling moment: the largest RSS, descriptor count and data size of any node."""
    moments: dict[float, list[Sample]] = {}
    for sample in samples:
        moments.setdefault(sample.at_s, []).append(sample)
    return [(at_s, (max(s.rss_mb for s in group), max(s.fds for s in group),
                    max(s.data_mb for s in group)))
            for at_s, group in sorted(moments.items())]
