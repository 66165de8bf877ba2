"""The extension points as Protocols, and `call_plugin`, which bounds every plugin call.

A plugin that raises, hangs or returns the wrong type becomes a `PluginError` naming the
plugin, so the warmer fails that one task and the daemon goes on.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from warmd.errors import CacheError, WarmdError

if TYPE_CHECKING:
    from warmd.hooks.task import WarmResult, WarmTask

T = TypeVar("T")
DEFAULT_PLUGIN_TIMEOUT_S = 5.0


class PluginError(WarmdError):
    """A plugin raised, timed out or returned nonsense."""

    def __init__(self, plugin: str, detail: str) -> None:
        super().__init__(f"plugin {plugin}: {detail}")
        self.plugin = plugin
        self.detail = detail


@dataclass(frozen=True, slots=True)
class WarmRequest:
    """One predicted request: the path (or full URL), its query parameters, and the cache
    key when the planner already knows it."""

    path: str
    key: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    value: bytes | None = None  # known value (direct fill) or None to load it


@dataclass(frozen=True, slots=True)
class Readiness:
    """A readiness answer with the evidence, so `warmctl explain` can show it."""

    ready: bool
    detail: str


@runtime_checkable
class ReadinessCheck(Protocol):
    """Gate a task until its data exists (a marker file, a probe, a key, a row)."""

    name: str

    async def check(self, context: Mapping[str, str]) -> Readiness: ...


@runtime_checkable
class KeyMapper(Protocol):
    """Map a predicted request to the cache key the service would use."""

    name: str

    def key_for(self, request: WarmRequest) -> str: ...


@runtime_checkable
class Loader(Protocol):
    """Produce the value to cache for a request, or None when the request itself warms
    (HTTP replay). `uses_origin` puts its calls behind the adaptive origin limiter."""

    name: str
    uses_origin: bool

    async def load(self, request: WarmRequest) -> bytes | None: ...


@runtime_checkable
class Verifier(Protocol):
    """Judge a value read back after warming (e.g. parse the JSON it should be)."""

    name: str

    def verify(self, key: str, expected: bytes | None, actual: bytes | None) -> bool: ...


@runtime_checkable
class LifecycleListener(Protocol):
    """Told when a task starts and ends (for notifications, custom metrics)."""

    name: str

    async def task_started(self, task: WarmTask) -> None: ...

    async def task_finished(self, task: WarmTask, result: WarmResult) -> None: ...


async def call_plugin(plugin_name: str, function: Callable[..., Awaitable[T] | T],
                      *args: Any, timeout_s: float = DEFAULT_PLUGIN_TIMEOUT_S,
                      expect: type | tuple[type, ...] | None = None) -> T:
    """Call a plugin function (sync or async) under a timeout and check its return type.

    A synchronous plugin runs in a thread, so one that blocks cannot stall the event loop;
    its thread is abandoned on timeout (Python cannot kill it) but the task moves on.

    Raises:
        PluginError: the plugin raised, exceeded `timeout_s` or returned a wrong type.
        CacheError: passed through: an origin or cache failure of one key, not a bug.
    """
    try:
        if inspect.iscoroutinefunction(function):
            async with asyncio.timeout(timeout_s):  # no extra Task, unlike wait_for
                result = await function(*args)
        else:
            result = await asyncio.wait_for(asyncio.to_thread(function, *args), timeout_s)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, timeout_s)
    except TimeoutError:
        raise PluginError(plugin_name, f"timed out after {timeout_s}s") from None
    except (asyncio.CancelledError, CacheError):
        raise  # a cache/origin error is the key's failure, judged by the caller
    except Exception as error:  # any plugin bug is contained here, by design
        raise PluginError(plugin_name, f"{type(error).__name__}: {error}") from error
    if expect is not None and not isinstance(result, expect):
        raise PluginError(plugin_name, f"returned {type(result).__name__}, expected {expect}")
    return result
