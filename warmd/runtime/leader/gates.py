"""Readiness gates in the daemon: poll each gate of the committed rules, open WAITING tasks.

A gate (rules: `gate NAME { check HOOK arg=value ... poll D timeout D }`) passes when all
its checks pass; a plugin check receives its `arg=value` pairs in its context, beside the
dates. The leader polls each gate at its own `poll` interval; when a gate turns
from closed to open, it reports a "gate-ready" event (a trigger for rules with
`on gate-ready NAME`), and every WAITING task held by an open gate is made READY. Tasks
whose gate stays closed are skipped by the scheduler after their gate timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from warmd.clock import Clock, SystemClock
from warmd.errors import ConfigError
from warmd.hooks.base import PluginError, Readiness, call_plugin
from warmd.hooks.readiness import HttpProbeCheck, MarkerFileCheck, RedisKeyCheck, SqlQueryCheck
from warmd.hooks.registry import HookRegistry
from warmd.logging import get_logger
from warmd.rules.compiled import Gate, GateCheck

_log = get_logger("warmd.gates")
CHECK_TIMEOUT_S = 10.0


def build_check(check: GateCheck, registry: HookRegistry) -> Any:
    """The object whose `check(context)` answers a rule's `check HOOK args`.

    Raises:
        ConfigError: an unknown hook (neither built in nor an installed plugin).
    """
    args = dict(check.args)
    if check.hook == "file":
        return MarkerFileCheck(args["path"])
    if check.hook == "http":
        return HttpProbeCheck(args["url"], timeout_s=float(args.get("timeout", "5")))
    if check.hook == "sql":
        return SqlQueryCheck(args["url"], args["query"])
    if check.hook == "redis-key":
        return RedisKeyCheck(args["address"], args["key"])
    try:
        return registry.get("readiness", check.hook)
    except LookupError:
        raise ConfigError(f"gate hook {check.hook!r} is not installed on this node") from None


def gate_context(now_s: float) -> dict[str, str]:
    """Placeholders a gate's templates may use: today's and tomorrow's date (UTC)."""
    today = datetime.fromtimestamp(now_s, UTC).date()
    return {"date": today.isoformat(), "today": today.isoformat(),
            "tomorrow": (today + timedelta(days=1)).isoformat()}


@dataclass(slots=True)
class GateState:
    """What the leader last saw of one gate."""

    open: bool = False
    detail: str = "not checked yet"
    checked_s: float = 0.0  # monotonic; 0 = never
    opened: int = 0  # closed -> open transitions seen


@dataclass(slots=True)
class GatePoller:
    """Polls the gates it is given; `poll()` returns the names that just opened."""

    registry: HookRegistry = field(default_factory=HookRegistry)
    states: dict[str, GateState] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)

    async def poll(self, gates: Mapping[str, Gate]) -> list[str]:
        """Check every gate whose poll interval has passed; the newly opened ones."""
        opened = []
        now_s = self.clock.monotonic()
        for name in list(self.states):
            if name not in gates:
                del self.states[name]  # gone from the rules
        for name, gate in gates.items():
            state = self.states.setdefault(name, GateState())
            if state.checked_s and now_s - state.checked_s < gate.poll_s:
                continue
            was_open = state.open
            state.open, state.detail = await self._check(gate)
            state.checked_s = now_s
            if state.open and not was_open:
                state.opened += 1
                opened.append(name)
                _log.info("gate_opened", gate=name, detail=state.detail)
        return opened

    def is_open(self, name: str) -> bool:
        state = self.states.get(name)
        return bool(state and state.open)

    def closed_detail(self, name: str) -> str | None:
        """Why gate `name` was closed at its last check; None if open or not checked yet."""
        state = self.states.get(name)
        if state is None or state.open or not state.checked_s:
            return None
        return state.detail

    async def _check(self, gate: Gate) -> tuple[bool, str]:
        """(all checks pass, the evidence of the first that fails or of all)."""
        now_context = gate_context(self.clock.wall_ms() / 1000)
        details = []
        for check in gate.checks:
            context = {**now_context, **dict(check.args)}  # a plugin reads its args here
            try:
                hook = build_check(check, self.registry)
                answer = await call_plugin(check.hook, hook.check, context,
                                           timeout_s=CHECK_TIMEOUT_S)
            except (ConfigError, PluginError) as error:
                return False, f"{check.hook}: {error}"
            if not isinstance(answer, Readiness):
                return False, f"{check.hook}: returned {type(answer).__name__}, not Readiness"
            if not answer.ready:
                return False, f"{check.hook}: {answer.detail}"
            details.append(f"{check.hook}: {answer.detail}")
        return True, "; ".join(details)
