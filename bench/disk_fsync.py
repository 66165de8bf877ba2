"""DiskStorage throughput: group commit (one fsync per batch) against one fsync per entry,
and the resident memory of a long log snapshotted every 100k entries.

Not a test. Prints its figures as the last line: `name=value ...`.
Usage: python bench/disk_fsync.py [--quick] [--dir PATH]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

from warmd.raft.types import ConfState, Entry, HardState
from warmd.runtime.node.disk import DiskStorage

PAYLOAD = b"p" * 100
VOTERS = ConfState(voters=(1, 2, 3))


def _entries(first: int, count: int, term: int = 1) -> list[Entry]:
    return [Entry(term, index, data=PAYLOAD) for index in range(first, first + count)]


def measure_fsync(directory: Path, total: int, batch: int) -> float:
    """Entries per second when every `batch` entries share one synced save."""
    shutil.rmtree(directory, ignore_errors=True)
    storage = DiskStorage.open(directory, conf_state=VOTERS)
    started = time.perf_counter()
    for first in range(1, total + 1, batch):
        storage.save(HardState(1, 1, first), _entries(first, batch), None, sync=True)
    elapsed_s = time.perf_counter() - started
    storage.close()
    return total / elapsed_s


def measure_memory(directory: Path, total: int, snapshot_every: int) -> tuple[float, float]:
    """(peak RSS in MB, entries/s without fsync) after `total` entries, snapshotting as told."""
    shutil.rmtree(directory, ignore_errors=True)
    storage = DiskStorage.open(directory, conf_state=VOTERS)
    batch = 1000
    started = time.perf_counter()
    for first in range(1, total + 1, batch):
        storage.save(HardState(1, 1, first + batch - 1), _entries(first, batch), None, sync=False)
        last = first + batch - 1
        if last % snapshot_every == 0:
            storage.create_snapshot(last, 1, VOTERS, b"state" * 1000)
    elapsed_s = time.perf_counter() - started
    storage.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return rss_mb, total / elapsed_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (under a minute)")
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default: a temp dir)")
    arguments = parser.parse_args()
    base = arguments.dir or Path(tempfile.mkdtemp(prefix="warmd-bench-"))
    per_entry_total = 300 if arguments.quick else 2000
    grouped_total = 20_000 if arguments.quick else 100_000
    memory_total = 200_000 if arguments.quick else 1_000_000
    try:
        one_fsync_each = measure_fsync(base / "single", per_entry_total, 1)
        grouped = measure_fsync(base / "grouped", grouped_total, 64)
        rss_mb, unsynced = measure_memory(base / "memory", memory_total, 100_000)
    finally:
        if arguments.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"fsync per entry: {one_fsync_each:,.0f} entries/s; group commit of 64: {grouped:,.0f} "
          f"entries/s; {memory_total:,} entries with a snapshot every 100k: peak RSS {rss_mb:.0f} MB")
    print(f"disk_entries_s_fsync_each={one_fsync_each:.0f} disk_entries_s_group64={grouped:.0f} "
          f"group_commit_ratio={grouped / one_fsync_each:.1f} disk_entries_s_nosync={unsynced:.0f} "
          f"disk_rss_mb_{memory_total // 1000}k={rss_mb:.0f}")


if __name__ == "__main__":
    main()
