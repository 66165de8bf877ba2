"""conf/grafana/warmd.json: a valid dashboard whose queries use only metrics warmd exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from warmd import metrics
from warmd.runtime.ingest.pipeline import SourceStatus
from warmd.runtime.node.status import DriverStatus, PeerView
from warmd.statemachine.machine import StateMachine
from warmd.web.collector import NodeCollector, NodeReaders

DASHBOARD = Path(__file__).resolve().parents[2] / "conf" / "grafana" / "warmd.json"
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")


def exported_names() -> set[str]:
    """Every sample name a node can expose: the event registry and the scrape-time families."""
    status = DriverStatus(node_id=1, role="leader", term=1, leader_id=1, commit_index=1,
                          applied_index=1, last_index=1, snapshot_index=0, voters=(1,),
                          learners=(), peers=(PeerView(2, "", True, 1, 2, 0, "probe", 1.0),),
                          removed=False)
    machine = StateMachine()
    source = SourceStatus("web", (), 1, 0, (), None, None, cache_requests=(("/", "hit", 1),))
    registry = CollectorRegistry()
    registry.register(NodeCollector(NodeReaders(
        status=lambda: status, state=lambda: machine.state, proposals_pending=lambda: 0,
        sources=lambda: [source])))
    families = [*registry.collect(), *metrics.REGISTRY.collect()]
    return {family.name + suffix for family in families for suffix in SUFFIXES} | {"up"}


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_the_dashboard_is_valid_json_with_the_three_rows() -> None:
    dashboard = load()
    assert dashboard["uid"] == "warmd" and dashboard["schemaVersion"] >= 30
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == ["Cluster", "Tasks and warm-up", "Effect per pattern"]


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = load()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(box["x"], box["x"] + box["w"])
                 for y in range(box["y"], box["y"] + box["h"])}
        assert not cells & taken, panel["title"]
        taken |= cells


def test_every_query_uses_metrics_warmd_exports() -> None:
    """A renamed metric would leave an empty panel; this catches it."""
    known = exported_names()
    used = {name for panel in load()["panels"] for target in panel.get("targets", [])
            for name in re.findall(r"\b(warmd_\w+|up)\{", target["expr"])}
    assert used and used <= known, used - known


def test_warm_ups_show_as_annotations() -> None:
    """Warm-ups posted by warmd (tag `warmd`) are drawn on every panel."""
    annotations = load()["annotations"]["list"]
    assert any(item.get("target", {}).get("tags") == ["warmd"] for item in annotations)
