"""The `plugins` admin command: what the `warmd.hooks` entry points gave this node.

Also the block `status` carries, so `warmctl status` shows the plugins with their versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from warmd.admin.server import AdminServer
from warmd.hooks.registry import HookRegistry


def plugins_document(registry: HookRegistry) -> list[dict[str, str]]:
    """Every entry point, loaded or failed, sorted by plugin then entry point name."""
    infos = sorted(registry.entry_points.values(), key=lambda info: (info.name, info.entry_point))
    return [asdict(info) for info in infos]


class PluginCommands:
    """Handlers bound to the daemon's registry; `register(server)` adds them."""

    def __init__(self, registry: HookRegistry) -> None:
        self._registry = registry

    def register(self, server: AdminServer) -> None:
        server.register("plugins", self.plugins,
                        summary="plugins loaded from entry points, with package and version")

    def plugins(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return {"plugins": plugins_document(self._registry)}
