"""Example warmd plugins, one per extension point, loaded through entry points."""

from __future__ import annotations

from collections.abc import Mapping

from warmd.hooks.base import Readiness, WarmRequest


class ReversedPathLoader:
    """Loader: a value computed without any origin (a stand-in for a database read)."""

    name = "reversed_path"
    uses_origin = False

    async def load(self, request: WarmRequest) -> bytes | None:
        return request.path[::-1].encode()


class TenantKeyMapper:
    """KeyMapper: the service keys its cache by tenant, taken from the query parameters."""

    name = "tenant_key"

    def key_for(self, request: WarmRequest) -> str:
        return f"{request.params.get('tenant', 'default')}:{request.path}"


class EnvFlagReadiness:
    """ReadinessCheck: ready when the context says `ready=yes` (a toy gate; in a rule,
    `check env_flag ready="yes"`). Any value but yes or no is a bug it raises on."""

    name = "env_flag"

    async def check(self, context: Mapping[str, str]) -> Readiness:
        flag = context.get("ready", "<unset>")
        if flag not in ("yes", "no", "<unset>"):
            raise ValueError(f"ready must be yes or no, got {flag!r}")
        return Readiness(flag == "yes", f"ready={flag}")


class EventLog:
    """LifecycleListener: keeps the task events it saw (an instance, not a class)."""

    name = "event_log"

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def task_started(self, task: object) -> None:
        self.events.append(("started", task.task_id))  # type: ignore[attr-defined]

    async def task_finished(self, task: object, result: object) -> None:
        self.events.append(("finished", result.outcome.value))  # type: ignore[attr-defined]


listener = EventLog()
