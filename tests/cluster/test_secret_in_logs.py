"""The cluster secret never reaches a log: a real cluster at debug level, with a peer holding
the wrong secret, writes, a leadership transfer, a snapshot, a reload and a stop."""

from __future__ import annotations

import signal
from collections.abc import Callable

from warmd.testing.procs import ProcessCluster


def test_no_log_line_holds_either_secret(make_cluster: Callable[..., ProcessCluster]) -> None:
    """Every daemon log of the run is free of the cluster secret and of the wrong one."""
    cluster = make_cluster(3)
    wrong_secret = b"wrong-secret-6f1d0e4b9a7c2e85d3f0a1b2c3d4e5f6"
    wrong_path = cluster.root / "wrong.secret"
    cluster._write_secret(wrong_path, wrong_secret)
    cluster.write_config(cluster.nodes[3], secret_path=wrong_path)
    for node in cluster.nodes.values():
        node.extra_environment["WARMD_LOG_LEVEL"] = "debug"
    cluster.start_all()
    leader = cluster.wait_for_leader(timeout_s=20, among=[1, 2])
    follower = 3 - leader
    cluster.call(leader, "check-write", count=50)
    cluster.call(leader, "snapshot")
    cluster.call(leader, "transfer-leader", node_id=follower, timeout_s=30)
    cluster.wait_for_leader(timeout_s=20, among=[1, 2])
    cluster.wait_until(lambda: '"handshake_refused"' in cluster.nodes[3].log_text(), 20,
                       "node 3 to refuse or be refused")
    for node in cluster.nodes.values():
        assert node.process is not None
        node.process.send_signal(signal.SIGHUP)
    cluster.wait_until(lambda: all('"config_reloaded"' in node.log_text()
                                   for node in cluster.nodes.values()), 20, "three reloads")
    for node_id in (1, 2, 3):
        cluster.stop(node_id)
    secret = cluster.secret_path.read_bytes().strip()
    logs = {node_id: node.log_text() for node_id, node in cluster.nodes.items()}
    assert any('"level": "debug"' in text for text in logs.values())  # debug was on
    for node_id, text in logs.items():
        for value in (secret, wrong_secret):
            for shown in (value.decode(), value.decode()[:16], value.hex()[:32], repr(value)[2:18]):
                assert shown not in text, f"node {node_id}'s log holds part of a secret"
