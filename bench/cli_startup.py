"""Start-up time of `warmctl --help` and `warmctl status`, beside the bare interpreter.

The peer is `python -c pass` with the same interpreter: the floor any Python CLI pays.
`warmctl status` asks a real one-node daemon started by this script. Each figure is the
median wall time of N runs (one warm-up run first). Not a test: run with
`.venv/bin/python bench/cli_startup.py`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from warmd.testing.procs import ProcessCluster

RUNS = 21


def _median_ms(argv: Sequence[str], runs: int) -> float:
    subprocess.run(argv, capture_output=True, check=False)  # warm the page cache
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _warmctl(*args: str) -> list[str]:
    script = "from warmd.cli.warmctl import main; raise SystemExit(main())"
    return [sys.executable, "-c", script, *args]


def main() -> None:
    """Print the median start-up figures beside the bare interpreter's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    runs = 5 if parser.parse_args().quick else RUNS
    floor_ms = _median_ms([sys.executable, "-c", "pass"], runs)
    help_ms = _median_ms(_warmctl("--help"), runs)
    with ProcessCluster(1) as cluster:
        cluster.start_all().wait_for_leader()
        socket_path = str(Path(cluster.nodes[1].socket_path))
        status_ms = _median_ms(_warmctl("--socket", socket_path, "status"), runs)
    print(f"python -c pass   {floor_ms:7.1f} ms (the peer: interpreter floor)")
    print(f"warmctl --help   {help_ms:7.1f} ms  ratio {help_ms / floor_ms:5.2f}")
    print(f"warmctl status   {status_ms:7.1f} ms  ratio {status_ms / floor_ms:5.2f}")
    print(f"floor_ms={floor_ms:.1f} help_ms={help_ms:.1f} status_ms={status_ms:.1f}")


if __name__ == "__main__":
    main()
