"""Three real `warmd run` processes: election, replication, leader SIGKILL, catch-up by snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from warmd.testing.procs import ProcessCluster


def _digests(cluster: ProcessCluster, node_ids: list[int]) -> set[str]:
    return {cluster.call(node_id, "read")["digest"] for node_id in node_ids}


def test_three_nodes_elect_replicate_and_survive_a_leader_kill(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """A killed leader is replaced, the survivors keep committing, and the restarted node
    catches up through a snapshot because its missing entries were compacted away."""
    cluster = make_cluster(3, snapshot_interval_entries=200).start_all()
    leader = cluster.wait_for_leader()
    first = cluster.call(leader, "check-write", count=150)
    assert first["rejected"] == 0
    for node_id in (1, 2, 3):
        cluster.wait_applied(node_id, first["applied_index"])
    assert len(_digests(cluster, [1, 2, 3])) == 1

    old_term = cluster.status(leader)["term"]
    cluster.kill(leader)
    survivors = [node_id for node_id in (1, 2, 3) if node_id != leader]
    new_leader = cluster.wait_for_leader(among=survivors)
    assert new_leader != leader
    assert cluster.status(new_leader)["term"] > old_term
    second = cluster.call(new_leader, "check-write", count=600)
    assert second["applied_index"] > first["applied_index"] + 600
    assert cluster.status(new_leader)["snapshot_index"] > first["applied_index"]

    cluster.start(leader)
    caught_up = cluster.wait_applied(leader, second["applied_index"], timeout_s=15)
    assert caught_up["snapshot_index"] > first["applied_index"]  # installed, not replayed
    assert caught_up["leader_id"] == new_leader
    assert len(_digests(cluster, [1, 2, 3])) == 1
    assert "snapshot_restored" in cluster.nodes[leader].log_text()


def test_warmctl_status_and_members_human_and_json(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """`warmctl status --json` carries the documented fields; `members` lists all voters."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    socket = str(cluster.nodes[leader].socket_path)

    def warmctl(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", "from warmd.cli.warmctl import main; "
                               "raise SystemExit(main())", *args],
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, "WARMD_SOCKET": socket})
        assert done.returncode == 0, done.stderr
        return done.stdout

    status = json.loads(warmctl("status", "--json"))
    for key in ("node_id", "role", "term", "leader_id", "commit_index", "applied_index"):
        assert key in status
    assert status["node_id"] == leader and status["role"] == "leader"
    assert status["leader_id"] == leader and status["term"] >= 1
    assert {peer["node_id"] for peer in status["peers"]} == {1, 2, 3}
    assert f"node {leader}: leader" in warmctl("status")
    members = json.loads(warmctl("members", "--json"))
    assert sorted(member["node_id"] for member in members["members"]) == [1, 2, 3]
    assert all(member["voter"] for member in members["members"])
    assert "(leader)" in warmctl("members")
    assert "10 writes in" in warmctl("check-write", "10")
    target = cluster.root / "saved.snap"
    assert f"wrote {target}: snapshot at index" in warmctl("snapshot", "save", str(target))
    assert target.stat().st_size > 0
    bad = subprocess.run([sys.executable, "-c", "from warmd.cli.warmctl import main; "
                          "raise SystemExit(main())", "add-learner", "4", "no-port"],
                         capture_output=True, text=True, timeout=30,
                         env={**os.environ, "WARMD_SOCKET": socket})
    assert bad.returncode == 2 and "no-port" in bad.stderr
