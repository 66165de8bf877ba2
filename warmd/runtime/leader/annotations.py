"""Warm-ups as Grafana annotations: the leader posts one region (start to end) per finished plan.

Off unless `[metrics] annotations_url` is set. Every node follows the finished plans, so a
node that becomes leader does not post again what its predecessor posted; only the leader
posts. A refused or failed post is retried on the next passes, then given up (logged):
annotations are a convenience, never a reason to hold the cluster up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from warmd.clock import Clock, SystemClock
from warmd.logging import get_logger
from warmd.statemachine.documents import plan_document
from warmd.statemachine.plans import PlanRecord
from warmd.statemachine.state import MachineState

_log = get_logger("warmd.annotations")
TAGS = ("warmd", "warm-up")
ATTEMPTS_MAX = 3


@dataclass(frozen=True, slots=True)
class AnnotationSettings:
    """url: Grafana's `/api/annotations`; token: a service account token (None: no header)."""

    url: str
    token: str | None = None
    interval_s: float = 2.0
    timeout_s: float = 5.0


def finished_plans(state: MachineState) -> Iterator[tuple[PlanRecord, int]]:
    """Each plan whose tasks have all ended, with when the last one ended (wall ms)."""
    for plan in state.plans.values():
        finished_ms = state.plan_finished_ms(plan)
        if finished_ms is not None:
            yield plan, finished_ms


def annotation(plan: PlanRecord, finished_ms: int, state: MachineState) -> dict[str, Any]:
    """The Grafana annotation of one warm-up: a region with the plan's figures as text."""
    by_state = plan_document(plan, state.tasks)["tasks_by_state"]
    text = (f"warm-up {plan.plan_id} ({plan.trigger}): {plan.requests} requests, "
            f"{by_state.get('SUCCEEDED', 0)}/{sum(by_state.values())} tasks succeeded")
    return {"time": plan.created_ms, "timeEnd": max(finished_ms, plan.created_ms),
            "tags": [*TAGS, plan.trigger], "text": text}


class AnnotationPoster:
    """`run()` until cancelled; see the module docstring."""

    def __init__(self, settings: AnnotationSettings, state: Callable[[], MachineState],
                 is_leader: Callable[[], bool], clock: Clock | None = None) -> None:
        self.settings = settings
        self._state = state
        self._is_leader = is_leader
        self._clock = clock or SystemClock()
        self._done: set[str] = set()  # posted, given up, or finished while not leading
        self._attempts: dict[str, int] = {}
        token = settings.token
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.posted = 0

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self.pass_once(session)
                await self._clock.sleep(self.settings.interval_s)

    async def pass_once(self, session: aiohttp.ClientSession) -> None:
        """Post the plans that finished since the last pass (when leading)."""
        state = self._state()
        leading = self._is_leader()
        self._done &= state.plans.keys()  # forget plans the state dropped: bounded
        for plan, finished_ms in list(finished_plans(state)):
            if plan.plan_id in self._done:
                continue
            if not leading or await self._post(session, annotation(plan, finished_ms, state),
                                               plan.plan_id):
                self._done.add(plan.plan_id)

    async def _post(self, session: aiohttp.ClientSession, body: dict[str, Any],
                    plan_id: str) -> bool:
        """Whether the plan is dealt with: posted, or given up after ATTEMPTS_MAX failures."""
        try:
            async with session.post(self.settings.url, json=body, headers=self._headers) as response:
                if response.status < 300:
                    self.posted += 1
                    return True
                error = f"HTTP {response.status}: {(await response.text())[:200]}"
        except (aiohttp.ClientError, TimeoutError) as failure:
            error = f"{type(failure).__name__}: {failure}"
        attempts = self._attempts[plan_id] = self._attempts.get(plan_id, 0) + 1
        _log.warning("annotation_post_failed", plan_id=plan_id, attempt=attempts, error=error)
        return attempts >= ATTEMPTS_MAX
