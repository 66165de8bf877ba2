"""A daemon whose metrics listener cannot bind stops at start with a clear config error."""

from __future__ import annotations

import socket

from warmd.testing.procs import ProcessCluster


def test_a_taken_metrics_port_stops_the_daemon_with_status_78() -> None:
    """The port is named in the message, and nothing is left running."""
    with ProcessCluster(1) as one_node, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        node = one_node.nodes[1]
        node.extra_config = f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
        one_node.write_config(node)
        one_node.start_all()
        assert node.process is not None
        assert node.process.wait(timeout=30) == 78
        assert f"metrics.listen 127.0.0.1:{port}: cannot listen" in node.log_text()
