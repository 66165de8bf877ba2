"""The daemon's exit paths on real processes and real filesystems (issue #3): a second stop
signal while the shutdown waits on a frozen disk, a disk that fills up at runtime (exit 70,
nothing acknowledged), SIGHUP applying [logging] live while [raft] waits for a restart, and
SIGTERM during a pending admin request.

The disks are real: a size-limited tmpfs fills up like a full partition, and a loop-mounted
ext4 image is frozen with fsfreeze (what LVM and VM snapshot tools do to a host's disk).
Both need root, as mounting does; the fixture cleans up even when a test fails.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from warmd.admin.client import AdminClientError
from warmd.testing.procs import NodeProcess, ProcessCluster

EXIT_FORCED = 1
EXIT_SOFTWARE = 70
TMPFS_BYTES = 2 * 1024 * 1024
EXT4_IMAGE_BYTES = 8 * 1024 * 1024
FILL_CHUNK_BYTES = 64 * 1024


class Disks:
    """Filesystems mounted over nodes' data directories, each undone at teardown."""

    def __init__(self) -> None:
        self._mounted: list[Path] = []
        self._frozen: set[Path] = set()

    def tmpfs(self, target: Path, size_bytes: int = TMPFS_BYTES) -> Path:
        """A tmpfs of `size_bytes` at `target`: writes past its size fail with ENOSPC."""
        target.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(target))
        self._mounted.append(target)
        return target

    def ext4(self, target: Path, image: Path, size_bytes: int = EXT4_IMAGE_BYTES) -> Path:
        """An ext4 filesystem in the file `image`, loop-mounted at `target` (freezable)."""
        with image.open("wb") as handle:
            handle.truncate(size_bytes)
        _run("mkfs.ext4", "-q", "-F", str(image))
        target.mkdir(parents=True, exist_ok=True)
        _run("mount", "-o", "loop", str(image), str(target))
        self._mounted.append(target)
        (target / "lost+found").rmdir()  # the data directory holds only warmd's files
        return target

    def freeze(self, target: Path) -> None:
        """Block every write to the filesystem at `target` until `thaw`."""
        _run("fsfreeze", "--freeze", str(target))
        self._frozen.add(target)

    def thaw(self, target: Path) -> None:
        """Let the blocked writes through."""
        _run("fsfreeze", "--unfreeze", str(target))
        self._frozen.discard(target)

    def close(self) -> None:
        """Thaw, then unmount (lazily when a process still holds files there); one failed
        step does not leave the other mounts behind."""
        failures: list[str] = []
        for target in list(self._frozen):
            try:
                self.thaw(target)
            except RuntimeError as error:
                failures.append(str(error))
        for target in reversed(self._mounted):
            if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
                try:
                    _run("umount", "-l", str(target))
                except RuntimeError as error:
                    failures.append(str(error))
        self._mounted.clear()
        if failures:
            raise RuntimeError("cleaning up the test mounts failed: " + "; ".join(failures))


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")


@functools.cache
def _mount_refusal() -> str:
    """Why this machine cannot mount test filesystems ("" when it can): not root, or a
    container without the mount capability. Probed once, with a tiny tmpfs."""
    if os.geteuid() != 0:
        return "mounting a tmpfs or a loop device needs root"
    with tempfile.TemporaryDirectory() as directory:
        probe = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", directory],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            return f"this machine refuses mounts: {probe.stderr.strip()}"
        subprocess.run(["umount", directory], capture_output=True)
    return ""


@pytest.fixture
def disks(make_cluster: Callable[..., ProcessCluster]) -> Iterator[Disks]:
    """Mounts for data directories; set up after (so torn down before) the clusters."""
    refusal = _mount_refusal()
    if refusal:
        pytest.skip(refusal)
    mounts = Disks()
    try:
        yield mounts
    finally:
        mounts.close()


# ---------------------------------------------------------------------- observing a process


def _events(node: NodeProcess, name: str) -> list[dict[str, object]]:
    """The JSON log events called `name` in the node's log."""
    found = []
    for line in node.log_text().splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def _thread_states(pid: int) -> dict[int, str]:
    """Each thread's scheduler state letter (R, S, D, Z...) from /proc."""
    states = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # thread ended
            stat = (task / "stat").read_text()
            states[int(task.name)] = stat.rsplit(")", 1)[1].split()[0]
    return states


def _fill(directory: Path) -> int:
    """Write a filler file until the filesystem is full; returns the bytes written."""
    written = 0
    chunk = b"\0" * FILL_CHUNK_BYTES
    with (directory / "filler").open("wb", buffering=0) as handle:
        try:
            while True:
                written += handle.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return written


def _write_in_background(cluster: ProcessCluster, node_id: int, count: int
                         ) -> tuple[threading.Thread, dict[str, object]]:
    """check-write on another thread; the outcome dict gets "result" or "error"."""
    outcome: dict[str, object] = {}

    def write() -> None:
        try:
            outcome["result"] = cluster.call(node_id, "check-write", timeout_s=30, count=count)
        except AdminClientError as error:
            outcome["error"] = error

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread, outcome


# ---------------------------------------------------------------------- tests


def test_a_second_stop_signal_while_the_disk_is_frozen_forces_exit_status_1(
        make_cluster: Callable[..., ProcessCluster], disks: Disks) -> None:
    """With the data disk frozen under a pending write, SIGTERM's clean shutdown waits for
    the disk; a second stop signal (SIGINT here) logs forced_exit and ends the event loop at
    once, and the process reports status 1 (not a clean 0) as soon as the kernel lets it go."""
    cluster = make_cluster(1)
    node = cluster.nodes[1]
    disks.ext4(node.data_dir, cluster.root / "disk.img")
    cluster.start(1)
    cluster.wait_for_leader()
    assert cluster.call(1, "check-write", count=5)["rejected"] == 0
    assert node.process is not None
    pid = node.process.pid
    disks.freeze(node.data_dir)
    _write_in_background(cluster, 1, 1)
    cluster.wait_until(lambda: "D" in _thread_states(pid).values(), 10,
                       "the disk thread to block on the frozen filesystem")
    node.process.send_signal(signal.SIGTERM)
    cluster.wait_until(lambda: _events(node, "shutdown_requested"), 5, "shutdown_requested")
    time.sleep(1.0)
    assert node.process.poll() is None, "the clean shutdown cannot finish on a frozen disk"
    assert not _events(node, "daemon_stopped")
    forced_at_s = time.monotonic()
    node.process.send_signal(signal.SIGINT)  # as Ctrl-C after `systemctl stop`: either counts
    cluster.wait_until(lambda: _events(node, "forced_exit"), 2, "forced_exit")
    # The main thread exits at once; the thread inside the frozen write is in
    # uninterruptible sleep, which no signal (not even SIGKILL) ends before the thaw.
    cluster.wait_until(lambda: _thread_states(pid).get(pid) == "Z", 2, "the main thread to exit")
    assert time.monotonic() - forced_at_s < 2.0
    disks.thaw(node.data_dir)
    assert node.process.wait(timeout=5) == EXIT_FORCED
    node.process = None
    assert _events(node, "shutdown_requested")[0]["signal"] == "SIGTERM"
    assert _events(node, "forced_exit")[0]["signal"] == "SIGINT"
    assert not _events(node, "daemon_stopped")


def test_a_follower_whose_disk_fills_up_exits_70_and_the_cluster_carries_on(
        make_cluster: Callable[..., ProcessCluster], disks: Disks) -> None:
    """A follower that gets ENOSPC appending entries logs disk_failed, stops (exit 70) instead
    of voting on what it could not persist; the other two keep committing; restarted on the
    still-full disk it fails the same way, and once space is freed it catches up."""
    cluster = make_cluster(3)
    for node in cluster.nodes.values():
        disks.tmpfs(node.data_dir)
    cluster.start_all()
    leader = cluster.wait_for_leader()
    victim = next(node_id for node_id in cluster.nodes if node_id != leader)
    victim_node = cluster.nodes[victim]
    assert cluster.call(leader, "check-write", count=20)["rejected"] == 0
    assert _fill(victim_node.data_dir) > 0
    result = cluster.call(leader, "check-write", count=300)
    assert result["rejected"] == 0  # the leader and the other follower are a quorum
    assert victim_node.process is not None
    assert victim_node.process.wait(timeout=10) == EXIT_SOFTWARE
    victim_node.process = None
    failure = _events(victim_node, "disk_failed")
    assert failure and failure[0]["error"] == "disk full"
    assert _events(victim_node, "driver_failed")
    assert _events(victim_node, "daemon_stopped")  # still an orderly stop, not a crash
    assert cluster.status(leader)["role"] == "leader"
    cluster.start(victim)  # as systemd's Restart=on-failure would, on a disk still full
    assert cluster.call(leader, "check-write", count=300)["rejected"] == 0
    assert victim_node.process is not None
    assert victim_node.process.wait(timeout=10) == EXIT_SOFTWARE
    victim_node.process = None
    assert len(_events(victim_node, "disk_failed")) == 2
    (victim_node.data_dir / "filler").unlink()
    cluster.start(victim)
    cluster.wait_applied(victim, result["applied_index"], timeout_s=15)
    assert len(_events(victim_node, "disk_failed")) == 2  # none once there is room again


def test_a_leader_whose_disk_fills_up_acknowledges_nothing_and_exits_70(
        make_cluster: Callable[..., ProcessCluster], disks: Disks) -> None:
    """A single node that cannot persist a proposal fails the request instead of
    acknowledging it, and exits 70; after space is freed it restarts with every write it
    did acknowledge."""
    cluster = make_cluster(1)
    node = cluster.nodes[1]
    disks.tmpfs(node.data_dir)
    cluster.start(1)
    cluster.wait_for_leader()
    acknowledged = cluster.call(1, "check-write", count=20)
    _fill(node.data_dir)
    with pytest.raises(AdminClientError) as refused:
        cluster.call(1, "check-write", count=300)
    assert "disk full" in str(refused.value)  # the caller learns why, not just a dropped socket
    assert node.process is not None
    assert node.process.wait(timeout=10) == EXIT_SOFTWARE
    node.process = None
    assert _events(node, "disk_failed")[0]["error"] == "disk full"
    (node.data_dir / "filler").unlink()
    cluster.start(1)
    cluster.wait_for_leader()
    cluster.wait_applied(1, acknowledged["applied_index"])


def test_sighup_applies_a_new_log_level_and_leaves_raft_changes_for_a_restart(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """SIGHUP with [logging] level = "warning" silences info events at once while warnings
    still appear; a changed [raft] section is logged as needing a restart and is not taken
    into the running config, so a later reload still reports it."""
    cluster = make_cluster(1).start_all()
    cluster.wait_for_leader()
    node = cluster.nodes[1]
    assert node.process is not None

    taken: list[int] = []

    def snapshot_lines_after_a_write() -> int:
        """Take a new snapshot (the index must grow) and count the snapshot_taken lines."""
        cluster.call(1, "check-write", count=1)
        taken.append(cluster.call(1, "snapshot")["index"])
        assert taken == sorted(set(taken)), taken
        time.sleep(0.2)  # the line is flushed before the reply; margin for a slow machine
        return len(_events(node, "snapshot_taken"))

    def reload(level: str) -> None:
        text = node.config_path.read_text()
        text = text.replace('level = "info"', f'level = "{level}"').replace(
            'level = "warning"', f'level = "{level}"')
        node.config_path.write_text(text.replace("election_timeout_ticks = 25",
                                                 "election_timeout_ticks = 40"))
        count = len(_events(node, "reload_needs_restart"))
        node.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        cluster.wait_until(lambda: len(_events(node, "reload_needs_restart")) > count, 10,
                           "the reload")

    assert snapshot_lines_after_a_write() == 1  # visible at level info
    reload("warning")
    assert _events(node, "reload_needs_restart")[-1]["sections"] == ["raft"]
    assert not _events(node, "config_reloaded")  # an info event, now below the level
    assert snapshot_lines_after_a_write() == 1  # a new snapshot, but no new line
    reload("info")
    assert _events(node, "reload_needs_restart")[-1]["sections"] == ["raft"]
    assert _events(node, "config_reloaded")[-1]["applied"] == ["logging"]
    assert snapshot_lines_after_a_write() == 2
    assert cluster.stop(1) == 0


def test_sigterm_during_a_pending_admin_request_stops_without_an_unhandled_error(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """SIGTERM while an admin write waits for a quorum (both followers SIGSTOPped) stops the
    leader cleanly with status 0, and the waiting request ends without an unhandled error."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    followers = [node_id for node_id in cluster.nodes if node_id != leader]
    for node_id in followers:
        os.killpg(cluster.nodes[node_id].process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        writer, outcome = _write_in_background(cluster, leader, 1)

        def pending() -> bool:
            status = cluster.status(leader)
            return status is not None and status["last_index"] > status["commit_index"]

        cluster.wait_until(pending, 5, "a proposal waiting for its quorum")
        assert cluster.stop(leader) == 0
        writer.join(10)
        assert "error" in outcome  # never acknowledged
        errors = [line for line in cluster.nodes[leader].log_text().splitlines()
                  if '"level": "error"' in line]
        assert not errors, errors[0][:300]
    finally:
        for node_id in followers:
            os.killpg(cluster.nodes[node_id].process.pid, signal.SIGCONT)  # type: ignore[union-attr]
