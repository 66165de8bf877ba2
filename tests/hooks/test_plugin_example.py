"""The example plugin package's declared entry points load and run inside the warmer.

The package is made importable from its source directory and given a dist-info built
from its own pyproject.toml (the same metadata pip would write), so the test is fast and
leaves the venv untouched.
"""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path

import pytest

from warmd.cache.redis import RedisBackend
from warmd.hooks.base import WarmRequest
from warmd.hooks.registry import ENTRY_POINT_GROUP, HookRegistry
from warmd.hooks.task import TaskOutcome, WarmTask
from warmd.runtime.execute.warmer import WarmRunner

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "warmd-plugin-example"


@pytest.fixture
def installed_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the example on sys.path with a dist-info listing its entry points."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist_info = tmp_path / f"warmd_plugin_example-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    points = project["entry-points"][ENTRY_POINT_GROUP]
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))


def test_entry_points_register_every_kind(installed_example: None) -> None:
    """All four entry points load, each under its kind and its own plugin name."""
    registry = HookRegistry()
    loaded = registry.load_entry_points()
    assert set(loaded) >= {"example_loader", "example_key_mapper", "example_readiness",
                           "example_listener"}
    assert registry.load_errors == {}
    assert registry.get("loader", "reversed_path").uses_origin is False
    assert registry.get("key_mapper", "tenant_key").name == "tenant_key"
    assert registry.get("readiness", "env_flag").name == "env_flag"
    assert isinstance(registry.get("listener", "event_log").events, list)


async def test_example_plugins_run_a_task(installed_example: None, redis_server) -> None:
    """A task using the example loader, mapper, gate and listener warms redis."""
    registry = HookRegistry()
    registry.load_entry_points()
    backend = RedisBackend(redis_server.address)
    tenant = uuid.uuid4().hex[:8]
    requests = tuple(WarmRequest(f"/doc/{n}", params={"tenant": tenant}) for n in range(30))
    task = WarmTask("example", requests, "r", "reversed_path", key_mapper="tenant_key",
                    readiness=("env_flag",), context={"ready": "yes"})
    result = await WarmRunner({"r": backend}, registry).run(task)
    assert result.outcome is TaskOutcome.SUCCEEDED and result.keys_ok == 30
    assert await backend.read_many([f"{tenant}:/doc/7"]) == {f"{tenant}:/doc/7": b"7/cod/"}
    gated = await WarmRunner({"r": backend}, registry).run(
        WarmTask("gated", requests, "r", "reversed_path", readiness=("env_flag",)))
    assert gated.outcome is TaskOutcome.NOT_READY and "ready=<unset>" in gated.reason
    events = registry.get("listener", "event_log").events
    assert events[-4:] == [("started", "example"), ("finished", "succeeded"),
                      ("started", "gated"), ("finished", "not_ready")]
    await backend.close()


def test_broken_entry_point_is_reported_not_raised(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry point that cannot be imported lands in load_errors; loading goes on."""
    dist_info = tmp_path / "broken_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\n"
                                        "Version: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[warmd.hooks.test]\nbroken = no_such_module_xyz:Thing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = HookRegistry()
    assert registry.load_entry_points("warmd.hooks.test") == []
    assert "ModuleNotFoundError" in registry.load_errors["broken"]
