"""Crash and damage on real processes: kill -9 under load with a torn tail, a bit flip in the
middle of the log, and a peer with the wrong secret."""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from warmd.admin.client import AdminClientError
from warmd.testing.procs import ProcessCluster

EXIT_DATA_ERROR = 65


def _segments(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("log-*.seg"))


def _events(text: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def test_kill_9_under_writes_then_a_torn_tail_is_truncated_and_caught_up(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """A follower SIGKILLed during heavy writes restarts, truncates a torn record at the end
    of its log (as a power cut mid-write leaves it), and converges with the others."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    victim = next(node_id for node_id in (1, 2, 3) if node_id != leader)
    outcome: dict[str, object] = {}

    def load() -> None:
        try:
            outcome["result"] = cluster.call(leader, "check-write", timeout_s=60, count=3000)
        except AdminClientError as error:
            outcome["error"] = error

    writer = threading.Thread(target=load)
    writer.start()
    cluster.wait_until(lambda: cluster.status(victim)["applied_index"] > 300, 20, "writes")
    cluster.kill(victim)
    writer.join(60)
    assert "result" in outcome, outcome  # the two survivors are a quorum
    last = _segments(cluster.nodes[victim].data_dir)[-1]
    size_before = last.stat().st_size
    with last.open("ab") as segment:  # a record header promising 200 bytes, then only 7
        segment.write(struct.pack(">II", 200, 0xDEADBEEF) + b"partial")
    cluster.start(victim)
    final = outcome["result"]["applied_index"]  # type: ignore[index]
    cluster.wait_applied(victim, final, timeout_s=20)
    truncated = _events(cluster.nodes[victim].log_text(), "disk_torn_tail_truncated")
    assert truncated and truncated[0]["file"] == str(last)
    assert truncated[0]["offset"] == size_before
    digests = {cluster.call(node_id, "read")["digest"] for node_id in (1, 2, 3)}
    assert len(digests) == 1


def test_a_bit_flip_in_the_middle_of_the_log_refuses_to_start(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """Damage before the tail is never repaired silently: the node exits 65 naming the
    segment file and the offset of the bad record."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    cluster.call(leader, "check-write", count=300)
    victim = next(node_id for node_id in (1, 2, 3) if node_id != leader)
    assert cluster.stop(victim) == 0
    segment = _segments(cluster.nodes[victim].data_dir)[0]
    data = bytearray(segment.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0x10
    segment.write_bytes(bytes(data))
    node = cluster.start(victim)
    assert node.process is not None
    assert node.process.wait(timeout=20) == EXIT_DATA_ERROR
    node.process = None
    message = node.log_text()
    assert "refusing to start" in message and str(segment) in message
    assert "at offset" in message
    offset = int(message.split("at offset ")[1].split(":")[0])
    assert 0 < offset <= middle


def test_a_peer_with_the_wrong_secret_is_refused(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """Node 3 with another secret never joins: the others refuse its handshake, elect a
    leader between themselves, and node 3 never learns of it; node 3 itself logs that its
    proof was refused, naming the peer."""
    cluster = make_cluster(3)
    wrong = cluster.root / "wrong.secret"
    cluster._write_secret(wrong, b"this-is-not-the-cluster-secret-0123456789")
    cluster.write_config(cluster.nodes[3], secret_path=wrong)
    cluster.start_all()
    leader = cluster.wait_for_leader(among=[1, 2])
    assert cluster.call(leader, "check-write", count=20)["rejected"] == 0
    def refused(node_id: int, reason: str) -> list[dict[str, object]]:
        return [event for event in _events(cluster.nodes[node_id].log_text(), "handshake_refused")
                if event.get("reason") == reason]

    cluster.wait_until(lambda: refused(leader, "bad_proof"), 10, "the leader to refuse node 3")
    told = cluster.wait_until(lambda: refused(3, "refused_by_peer"), 10,
                              "node 3 to log that its proof was refused")
    assert told[0]["level"] == "warning" and told[0]["peer_id"] in (1, 2)
    assert "bad_proof" in str(told[0]["detail"])
    status = cluster.status(3)
    assert status is not None and status["leader_id"] == 0 and status["applied_index"] == 0


def test_a_leader_that_lost_its_followers_times_proposals_out(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """Without a quorum a proposal is never committed: the client gets `timeout` (exit 75)
    rather than a false success, and the daemon keeps serving status."""
    cluster = make_cluster(3, election_timeout_ticks=150, proposal_timeout_ms=400).start_all()
    leader = cluster.wait_for_leader(timeout_s=20)
    assert cluster.call(leader, "check-write", count=5)["rejected"] == 0
    for node_id in (1, 2, 3):
        if node_id != leader:
            cluster.kill(node_id)
    with pytest.raises(AdminClientError) as timed_out:
        cluster.call(leader, "check-write", count=1)
    assert timed_out.value.code == "timeout" and timed_out.value.exit_status == 75
    assert cluster.status(leader) is not None
