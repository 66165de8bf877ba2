"""The demo's three-node warmd cluster: real `warmd run` processes on loopback, configured to
read the history logs, watch the shop's Redis and warm it through HTTP replay.

The shop's live access log is not tailed: the measured first screens must never reach warmd
before it warms, or a phase would be predicted from its own requests.

The processes, the secret, the temporary directory and the base of each node's config are
ProcessCluster's (warmd.testing); the demo adds the product's sections ([caches], [sources],
[analysis], [planner]) and enables the executor. The
waits are async and sleep on the loop between admin calls; each call is a short blocking
exchange on a local socket (no thread, so Ctrl-C never waits for a poller to give up).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmd.admin.client import AdminClientError
from warmd.admin.protocol import ErrorCode
from warmd.errors import WarmdError
from warmd.testing.procs import NodeProcess, ProcessCluster, Timing
from warmd.testing.servers import free_port

SHOP_CACHE = "shop"  # the http cache: replay through the shop fills its read-through Redis
REDIS_CACHE = "redis"  # the watched cache: a flush or a restart makes the leader plan
SOURCE_NAME = "shop"
# 20 ms ticks: elections within 0.5-1 s, and three idle daemons stay light on a small machine.
DEMO_TIMING = Timing(tick_interval_ms=20, election_timeout_ticks=25, heartbeat_ticks=3)
POLL_INTERVAL_S = 0.25
DAEMON_NICENESS = 10
STOP_TIMEOUT_S = 10.0
FINISHED_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "EXPIRED", "pruned"})


class DemoClusterError(WarmdError):
    """The demo cluster did not reach the awaited state (the message says which, and where
    the daemons' logs are)."""


@dataclass(frozen=True, slots=True)
class DemoClusterSpec:
    """What the demo cluster serves: the shop, its Redis, and one history log per node (as a
    round-robin load balancer spreads sessions); `horizon_ms` is the window the plan warms for."""

    shop_url: str
    redis_address: str
    history_paths: tuple[Path, ...]
    budget: int = 2000
    horizon_ms: int = 3_600_000
    ship_interval_ms: int = 1000
    poll_interval_ms: int = 200
    min_interval_ms: int = 2000
    effect_window_ms: int = 5000

    def validate(self) -> DemoClusterSpec:
        if not self.history_paths:
            raise ValueError("the demo cluster needs one history log per node, got none")
        if self.budget < 0 or self.horizon_ms <= 0:
            raise ValueError(f"budget must be >= 0 and horizon_ms > 0, got {self.budget} "
                             f"and {self.horizon_ms}")
        if not self.shop_url.startswith("http://"):
            raise ValueError(f"shop_url must be an http:// URL, got {self.shop_url!r}")
        return self

    @property
    def size(self) -> int:
        return len(self.history_paths)

    def source_paths(self, node_id: int) -> tuple[Path, ...]:
        """Node n reads history log n, and nothing else."""
        return (self.history_paths[node_id - 1],)


def _toml_string(text: str | os.PathLike[str]) -> str:
    """A TOML basic string; paths and URLs here hold no control characters."""
    escaped = os.fspath(text).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


DEMO_SECTIONS = """\
[caches.{shop_cache}]
kind = "http"
url = {shop_url}

[caches.{redis_cache}]
kind = "redis"
address = {redis_address}

[sources.{source}]
format = "combined"
paths = [{sources}]

[analysis]
ship_interval_ms = {ship_interval_ms}
poll_interval_ms = {poll_interval_ms}

[planner]
target = "{shop_cache}"
watch = ["{redis_cache}"]
interval_ms = 0
min_interval_ms = {min_interval_ms}
budget = {budget}
horizon_ms = {horizon_ms}
effect_window_ms = {effect_window_ms}
"""


def demo_sections(node_id: int, spec: DemoClusterSpec) -> str:
    """The product's sections of a demo node's config, appended to the cluster's own
    ([node], [cluster], [peers], [raft], [admin], [executor] come from ProcessCluster)."""
    return DEMO_SECTIONS.format(
        shop_cache=SHOP_CACHE, redis_cache=REDIS_CACHE,
        shop_url=_toml_string(spec.shop_url), redis_address=_toml_string(spec.redis_address),
        source=SOURCE_NAME, sources=", ".join(_toml_string(path)
                                              for path in spec.source_paths(node_id)),
        ship_interval_ms=spec.ship_interval_ms, poll_interval_ms=spec.poll_interval_ms,
        min_interval_ms=spec.min_interval_ms, budget=spec.budget, horizon_ms=spec.horizon_ms,
        effect_window_ms=spec.effect_window_ms)


@dataclass(frozen=True, slots=True)
class PlanProgress:
    """One plan as `warmctl plans` shows it: its trigger and its tasks counted by state."""

    plan_id: str
    trigger: str
    requests: int
    tasks: int
    tasks_by_state: Mapping[str, int]

    @property
    def succeeded(self) -> int:
        return self.tasks_by_state.get("SUCCEEDED", 0)

    @property
    def finished(self) -> bool:
        """Every task reached an end state (not necessarily SUCCEEDED)."""
        done = sum(count for state, count in self.tasks_by_state.items()
                   if state in FINISHED_STATES)
        return done >= self.tasks

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> PlanProgress:
        """Read one entry of the admin `plans` reply.

        Raises:
            DemoClusterError: the entry lacks a field the demo needs.
        """
        try:
            return cls(plan_id=str(document["plan_id"]), trigger=str(document["trigger"]),
                       requests=int(document.get("requests", 0)), tasks=int(document["tasks"]),
                       tasks_by_state=dict(document.get("tasks_by_state") or {}))
        except (KeyError, TypeError, ValueError) as error:
            raise DemoClusterError(f"unexpected plan document {document!r}: {error}") from None

    def describe(self) -> str:
        states = ", ".join(f"{count} {state}" for state, count in
                           sorted(self.tasks_by_state.items())) or "no task"
        return (f"plan {self.plan_id} ({self.trigger}): {self.tasks} tasks, "
                f"{self.requests} requests; {states}")


@dataclass(frozen=True, slots=True)
class ShippedLines:
    """Log lines each node's newest summaries hold, by node id."""

    per_node: Mapping[int, int]

    def covers(self, minimum_lines: Mapping[int, int]) -> bool:
        """Every node shipped at least its minimum."""
        return all(self.per_node.get(node, 0) >= want for node, want in minimum_lines.items())

    def describe(self) -> str:
        return ", ".join(f"node {node} {lines} lines"
                         for node, lines in sorted(self.per_node.items()))


class DemoCluster(ProcessCluster):
    """ProcessCluster with the demo's configs, graceful stop, and the waits of the demo."""

    def __init__(self, spec: DemoClusterSpec, timing: Timing = DEMO_TIMING) -> None:
        self.spec = spec.validate()  # before super().__init__: it writes the configs
        super().__init__(spec.size, timing, cluster_id="warmd-demo")

    def write_config(self, node: NodeProcess, secret_path: Path | None = None) -> None:
        node.executor = {"enabled": True}
        if not node.web.get("enabled"):  # the console, on loopback (a port kept across rewrites)
            node.web = {"enabled": True, "listen": f"127.0.0.1:{free_port()}"}
        node.extra_config = demo_sections(node.node_id, self.spec)
        super().write_config(node, secret_path)

    def start_all(self) -> DemoCluster:
        """Start every daemon at nice DAEMON_NICENESS (their analysis workers inherit it):
        warmd is a background helper on the shop's host, and must not take the CPU from the
        shop while its first screens are measured."""
        super().start_all()
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.setpriority(os.PRIO_PROCESS, pid, DAEMON_NICENESS)
        return self

    def stop_all(self, keep_files: bool = False) -> None:
        """SIGTERM every daemon at once (a clean shutdown), SIGKILL those still up after
        STOP_TIMEOUT_S, then delete the directory unless `keep_files`. Idempotent."""
        processes = [node.process for node in self.nodes.values() if node.process is not None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline_s = time.monotonic() + STOP_TIMEOUT_S
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline_s - time.monotonic()))
        if not keep_files:
            self.close()  # SIGKILLs what is left, reaps it, removes the directory
            return
        for node in self.nodes.values():
            if node.process is not None and node.process.poll() is None:
                self.kill(node.node_id)
            node.process = None

    def pids(self) -> list[int]:
        return [node.process.pid for node in self.nodes.values() if node.process is not None]

    def call_any(self, command: str, /, **args: Any) -> Any:
        """An admin call on the first running node that answers (every replica can read).

        Raises:
            AdminClientError: no node answered; the last error is raised.
        """
        last: AdminClientError | None = None
        for node_id, node in self.nodes.items():
            if not node.running():
                continue
            try:
                return self.call(node_id, command, timeout_s=5.0, **args)
            except AdminClientError as error:
                if error.code == ErrorCode.UNKNOWN_COMMAND:
                    raise
                last = error
        raise last or AdminClientError(ErrorCode.UNAVAILABLE, "no demo node is running")

    async def _poll(self, probe: Any, timeout_s: float, what: str) -> Any:
        """Call `probe()` every POLL_INTERVAL_S until it returns a truthy value."""
        deadline_s = time.monotonic() + timeout_s
        while True:
            self._check_alive()
            try:
                value = probe()
            except AdminClientError as error:
                if error.code == ErrorCode.UNKNOWN_COMMAND:
                    raise DemoClusterError(f"this warmd cannot show {what}: {error}") from None
                value = None  # no leader yet, a node restarting: ask again
            if value:
                return value
            if time.monotonic() >= deadline_s:
                raise DemoClusterError(f"timed out after {timeout_s:g} s waiting for {what}; "
                                       f"daemon logs: {self.root}/node*/daemon.log")
            await asyncio.sleep(POLL_INTERVAL_S)

    def _check_alive(self) -> None:
        for node_id, node in self.nodes.items():
            if node.process is not None and node.process.poll() is not None:
                tail = "\n".join(node.log_text().splitlines()[-5:])
                raise DemoClusterError(f"warmd node {node_id} exited with "
                                       f"{node.process.returncode}:\n{tail}")

    async def wait_leader(self, timeout_s: float = 30.0) -> int:
        """The node every running node names as leader."""
        return int(await self._poll(self.leader, timeout_s, "a leader"))

    def shipped_lines(self) -> ShippedLines:
        """Lines read per node (well-formed and malformed), from its newest summaries."""
        per_node: dict[int, int] = {}
        for entry in self.call_any("summaries").get("summaries", []):
            read = int(entry.get("lines", 0)) + int(entry.get("malformed", 0))
            per_node[int(entry["node_id"])] = per_node.get(int(entry["node_id"]), 0) + read
        return ShippedLines(per_node)

    async def wait_summaries(self, minimum_lines: Mapping[int, int], timeout_s: float = 60.0
                             ) -> ShippedLines:
        """Wait until each node's shipped summaries hold at least `minimum_lines[node]`."""
        def shipped() -> ShippedLines | None:
            lines = self.shipped_lines()
            return lines if lines.covers(minimum_lines) else None
        found: ShippedLines = await self._poll(
            shipped, timeout_s, f"every node's summary (lines wanted: {dict(minimum_lines)})")
        return found

    def plans(self) -> list[PlanProgress]:
        """The newest plans, newest first."""
        reply = self.call_any("plans", limit=20)
        return [PlanProgress.from_document(entry) for entry in reply.get("plans", [])]

    async def wait_new_plan(self, known: set[str], timeout_s: float = 30.0) -> PlanProgress:
        """The newest plan whose id is not in `known` (one submitted after the call began)."""
        def newest() -> PlanProgress | None:
            fresh = [plan for plan in self.plans() if plan.plan_id not in known]
            return fresh[0] if fresh else None
        plan: PlanProgress = await self._poll(newest, timeout_s, "a new plan")
        return plan

    async def wait_plan_finished(self, plan_id: str, timeout_s: float = 120.0) -> PlanProgress:
        """Wait until every task of the plan is finished; return its final counts."""
        def finished() -> PlanProgress | None:
            plan = next((p for p in self.plans() if p.plan_id == plan_id), None)
            return plan if plan is not None and plan.finished else None
        plan: PlanProgress = await self._poll(finished, timeout_s,
                                        f"the tasks of plan {plan_id} to finish")
        return plan

    def submit_replay(self, targets: list[str], batch: int = 500) -> list[str]:
        """Submit `targets` as replay tasks into the shop cache (the executors GET each one
        through the shop, as they do for a plan), `batch` per task; return the task ids."""
        return [str(self.call_any("task-submit", keys=targets[start:start + batch],
                                  target=SHOP_CACHE, loader="replay")
                    ["task_id"]) for start in range(0, len(targets), batch)]

    async def wait_tasks_finished(self, task_ids: list[str], timeout_s: float = 120.0
                                  ) -> dict[str, str]:
        """Wait until every task is in an end state; return each one's state."""
        def states() -> dict[str, str] | None:
            found = {task_id: str(self.call_any("task-show", task_id=task_id)["task"]["state"])
                     for task_id in task_ids}
            return found if all(state in FINISHED_STATES for state in found.values()) else None
        found: dict[str, str] = await self._poll(states, timeout_s,
                                                 f"tasks {', '.join(task_ids)} to finish")
        return found

    def plan_targets(self, plan_id: str) -> list[str]:
        """Every request a plan's tasks replay (its warm set), a page of keys at a time."""
        tasks = self.call_any("task-list", plan=plan_id, limit=1000).get("tasks", [])
        targets: list[str] = []
        for task in tasks:
            cursor = None
            while True:
                reply = self.call_any("task-show", task_id=task["task_id"], keys=True,
                                      keys_limit=1000, keys_cursor=cursor)
                targets += reply["task"].get("key_list", [])
                cursor = reply.get("next_keys_cursor")
                if not cursor:
                    break
        return targets
