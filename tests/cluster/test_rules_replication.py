"""Rule sets through Raft on real processes: start-up load, reload on a follower, refused bad sets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from warmd.cli.warmctl import main as warmctl_main
from warmd.statemachine.ruleset import rules_digest
from warmd.testing.procs import ProcessCluster

START = "rule start {\n    match GET /start/{id:int}\n}\n"
NEWER = "rule newer {\n    match GET /newer\n    param cb drop\n}\n"
BROKEN = "rule broken {\n    match GET /x\n    ttl 5x\n}\n"


def _versions(cluster: ProcessCluster) -> set[str | None]:
    return {cluster.call(node_id, "rules-show")["version"] for node_id in cluster.nodes}


def _wait_version(cluster: ProcessCluster, version: str) -> None:
    cluster.wait_until(lambda: _versions(cluster) == {version} or None, 15.0,
                       f"every node at rules version {version[:12]}")


def test_rules_load_at_start_reload_on_a_follower_and_refuse_a_bad_set(
        make_cluster: Callable[..., ProcessCluster], capsys: pytest.CaptureFixture[str]) -> None:
    """Configured rules are committed at start; a reload on a follower reaches every node;
    a bad file exits 2 with the checker's error and every node keeps the previous version;
    a reload without files re-commits the configured ones."""
    cluster = make_cluster(3)
    start_file = cluster.root / "start.rules"
    start_file.write_text(START)
    for node in cluster.nodes.values():
        with node.config_path.open("a") as config:
            config.write(f'\n[rules]\nfiles = ["{start_file}"]\n')
    cluster.start_all()
    leader = cluster.wait_for_leader()
    _wait_version(cluster, rules_digest([("start.rules", START)]))

    follower = next(node_id for node_id in cluster.nodes if node_id != leader)
    socket = str(cluster.nodes[follower].socket_path)
    newer = Path(cluster.root / "newer.rules")
    newer.write_text(NEWER)
    capsys.readouterr()
    assert warmctl_main(["--socket", socket, "rules", "reload", str(newer)]) == 0
    version = rules_digest([("newer.rules", NEWER)])
    assert f"rules version {version} committed" in capsys.readouterr().out
    _wait_version(cluster, version)

    broken = cluster.root / "broken.rules"
    broken.write_text(BROKEN)
    assert warmctl_main(["--socket", socket, "rules", "reload", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.rules:3:" in err and "error:" in err and f"(version {version})" in err
    assert _versions(cluster) == {version}

    assert warmctl_main(["--socket", str(cluster.nodes[leader].socket_path), "rules", "show"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"version {version}") and "# --- newer.rules" in shown
    assert "param cb drop" in shown

    assert warmctl_main(["--socket", socket, "rules", "reload"]) == 0  # the configured files again
    _wait_version(cluster, rules_digest([("start.rules", START)]))

    capsys.readouterr()
    assert warmctl_main(["--socket", socket, "rules", "disable", "start"]) == 0
    assert capsys.readouterr().out.strip() == "rule start disabled"
    cluster.wait_until(lambda: all(
        [d["name"] for d in cluster.call(node_id, "rules-history")["disabled"]] == ["start"]
        for node_id in cluster.nodes) or None, 15.0, "rule start disabled on every node")
    assert warmctl_main(["--socket", socket, "rules", "disable", "nosuch"]) != 0
    assert "no rule 'nosuch' in the committed set" in capsys.readouterr().err
    assert warmctl_main(["--socket", socket, "rules", "history"]) == 0
    history = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in history[:3]] == [
        rules_digest(files)[:12] for files in ([("start.rules", START)], [("newer.rules", NEWER)],
                                               [("start.rules", START)])]
    assert history[-1].startswith("disabled: start (index ")
    assert warmctl_main(["--socket", socket, "rules", "enable", "start"]) == 0
    assert cluster.call(leader, "rules-history")["disabled"] == []
