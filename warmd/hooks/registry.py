"""Load plugins from the `warmd.hooks` entry point group into a name → object registry.

An entry point names a factory (a class or function) that returns the plugin object; its
kind is decided by which Protocol the object satisfies. A plugin that fails to load is
reported, not raised, so one broken package does not stop the daemon.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from warmd.hooks.base import KeyMapper, LifecycleListener, Loader, ReadinessCheck, Verifier

ENTRY_POINT_GROUP = "warmd.hooks"
KINDS: tuple[tuple[str, type], ...] = (
    ("loader", Loader), ("readiness", ReadinessCheck), ("key_mapper", KeyMapper),
    ("verifier", Verifier), ("listener", LifecycleListener),
)


def plugin_kind(plugin: object) -> str | None:
    """The first extension point `plugin` satisfies, or None."""
    for kind, protocol in KINDS:
        if isinstance(plugin, protocol):
            return kind
    return None


@dataclass
class HookRegistry:
    """Plugins by kind and name, plus the entry points that could not be loaded."""

    plugins: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {kind: {} for kind, _ in KINDS})
    load_errors: dict[str, str] = field(default_factory=dict)

    def add(self, plugin: object, kind: str | None = None) -> str:
        """Register an object under its `name`; return its kind.

        Raises:
            TypeError: it satisfies no extension point (a programmer error in the caller).
        """
        kind = kind or plugin_kind(plugin)
        if kind is None or kind not in self.plugins:
            raise TypeError(f"{plugin!r} implements no warmd extension point")
        self.plugins[kind][plugin.name] = plugin  # type: ignore[attr-defined]
        return kind

    def get(self, kind: str, name: str) -> Any:
        try:
            return self.plugins[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.plugins.get(kind, {}))) or "none"
            raise LookupError(f"no {kind} plugin named {name!r} (known: {known})") from None

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Load every entry point of `group`; return the names loaded."""
        loaded = []
        for entry_point in entry_points(group=group):
            try:
                self.add(_instantiate(entry_point))
                loaded.append(entry_point.name)
            except Exception as error:  # a broken plugin package is reported, not fatal
                self.load_errors[entry_point.name] = f"{type(error).__name__}: {error}"
        return loaded


def _instantiate(entry_point: EntryPoint) -> object:
    factory = entry_point.load()
    # A class or function is a factory; any other object is the plugin itself.
    plugin = factory() if inspect.isclass(factory) or inspect.isfunction(factory) else factory
    if not getattr(plugin, "name", None):
        raise TypeError(f"entry point {entry_point.name} gave an object without a name")
    return plugin
