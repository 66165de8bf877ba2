"""Load plugins from the `warmd.hooks` entry point group into a name → object registry.

An entry point names a factory (a class or function) that returns the plugin object; its
kind is decided by which Protocol the object satisfies. A plugin that fails to load is
reported, not raised, so one broken package does not stop the daemon. The daemon loads
the group at start and again on SIGHUP (a package installed meanwhile is picked up), and
`warmctl plugins` lists what was loaded, from which package and version.
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


def plugin_name(plugin: object) -> str:
    """The name rules use for `plugin` (every extension point has one).

    Raises:
        TypeError: it has none, or not a string (a broken plugin, reported by the caller).
    """
    name = getattr(plugin, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{plugin!r} has no name (a non-empty string) for rules to use")
    return name


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One entry point as `warmctl plugins` shows it: what it registered, from where."""

    entry_point: str
    kind: str  # "" when it failed to load
    name: str  # the plugin's own name, the one rules use ("" when it failed)
    package: str  # the distribution that declares it ("" when unknown)
    version: str
    error: str = ""  # why it failed to load; "" when loaded


@dataclass
class HookRegistry:
    """Plugins by kind and name, plus what each entry point gave (or why it failed)."""

    plugins: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {kind: {} for kind, _ in KINDS})
    load_errors: dict[str, str] = field(default_factory=dict)
    entry_points: dict[str, PluginInfo] = field(default_factory=dict)

    def add(self, plugin: object, kind: str | None = None) -> str:
        """Register an object under its `name`; return its kind.

        Raises:
            TypeError: it satisfies no extension point (a programmer error in the caller).
        """
        kind = kind or plugin_kind(plugin)
        if kind is None or kind not in self.plugins:
            raise TypeError(f"{plugin!r} implements no warmd extension point")
        self.plugins[kind][plugin_name(plugin)] = plugin
        return kind

    def get(self, kind: str, name: str) -> Any:
        try:
            return self.plugins[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.plugins.get(kind, {}))) or "none"
            raise LookupError(f"no {kind} plugin named {name!r} (known: {known})") from None

    def names(self) -> frozenset[str]:
        """Every registered plugin name, of any kind (what rules may refer to)."""
        return frozenset(name for by_name in self.plugins.values() for name in by_name)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Load every entry point of `group` (again: a reload replaces what it gave before);
        return the names loaded."""
        loaded = []
        for entry_point in entry_points(group=group):
            package, version = _distribution(entry_point)
            try:
                plugin = _instantiate(entry_point)
                kind = self.add(plugin)
            except Exception as error:  # a broken plugin package is reported, not fatal
                reason = f"{type(error).__name__}: {error}"
                self.load_errors[entry_point.name] = reason
                self.entry_points[entry_point.name] = PluginInfo(
                    entry_point.name, "", "", package, version, reason)
                continue
            self.load_errors.pop(entry_point.name, None)
            self.entry_points[entry_point.name] = PluginInfo(
                entry_point.name, kind, plugin_name(plugin), package, version)
            loaded.append(entry_point.name)
        return loaded


def _distribution(entry_point: EntryPoint) -> tuple[str, str]:
    """(package name, version) of the distribution declaring `entry_point`, if known."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "", ""
    return dist.metadata["Name"] or "", dist.version or ""


def _instantiate(entry_point: EntryPoint) -> object:
    factory = entry_point.load()
    # A class or function is a factory; any other object is the plugin itself.
    plugin = factory() if inspect.isclass(factory) or inspect.isfunction(factory) else factory
    if not getattr(plugin, "name", None):
        raise TypeError(f"entry point {entry_point.name} gave an object without a name")
    plugin_name(plugin)  # a name that is not a string is refused here, with the entry point
    return plugin
