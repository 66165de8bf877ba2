"""Forced recovery from a permanently lost quorum, and restoring a cluster from a snapshot
file, with the real `warmd recover` command and real daemons."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from warmd.testing.procs import ProcessCluster


def _warmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "warmd", *args], capture_output=True,
                          text=True, timeout=60)


def test_force_new_cluster_from_one_survivor(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """With two of three nodes lost, recovery is refused unless asked explicitly, then makes
    the survivor a one-voter cluster that keeps every committed write and accepts new ones."""
    cluster = make_cluster(3, snapshot_interval_entries=100).start_all()
    leader = cluster.wait_for_leader()
    written = cluster.call(leader, "check-write", count=250)
    survivor = next(node_id for node_id in (1, 2, 3) if node_id != leader)
    cluster.wait_applied(survivor, written["applied_index"])
    digest = cluster.call(survivor, "read")["digest"]
    for node_id in (1, 2, 3):
        cluster.kill(node_id)
    config = str(cluster.nodes[survivor].config_path)

    refused = _warmd("recover", "--config", config)
    assert refused.returncode == 64 and "--force-new-cluster" in refused.stderr
    cluster.start(survivor)
    cluster.wait_until(lambda: cluster.status(survivor), 10, "the survivor's socket")
    busy = _warmd("recover", "--config", config, "--force-new-cluster")
    assert busy.returncode == 75 and "stop it first" in busy.stderr
    cluster.kill(survivor)

    done = _warmd("recover", "--config", config, "--force-new-cluster")
    assert done.returncode == 0, done.stderr
    assert f"node {survivor} is now a one-voter cluster" in done.stdout
    cluster.start(survivor)
    assert cluster.wait_for_leader(among=[survivor]) == survivor
    status = cluster.status(survivor)
    assert status["voters"] == [survivor] and status["applied_index"] > written["applied_index"]
    assert cluster.call(survivor, "read")["digest"] == digest
    assert cluster.call(survivor, "check-write", count=20)["rejected"] == 0


def test_restore_a_new_cluster_from_a_snapshot_file(
        make_cluster: Callable[..., ProcessCluster], tmp_path: Path) -> None:
    """`warmctl snapshot save` output seeds an empty data directory that starts as a cluster
    with the saved state; a non-empty directory is refused."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    cluster.call(leader, "check-write", count=80)
    backup = tmp_path / "backup.snap"
    cluster.call(leader, "snapshot-save", timeout_s=30, path=str(backup))
    digest = cluster.call(leader, "read")["digest"]
    for node_id in (1, 2, 3):
        cluster.kill(node_id)
    config = str(cluster.nodes[1].config_path)

    occupied = _warmd("recover", "--config", config, "--force-new-cluster",
                      "--from-snapshot", str(backup))
    assert occupied.returncode != 0 and "empty data directory" in occupied.stderr
    shutil.rmtree(cluster.nodes[1].data_dir)
    done = _warmd("recover", "--config", config, "--force-new-cluster",
                  "--from-snapshot", str(backup))
    assert done.returncode == 0, done.stderr
    cluster.start(1)
    assert cluster.wait_for_leader(among=[1]) == 1
    assert cluster.call(1, "read")["digest"] == digest
