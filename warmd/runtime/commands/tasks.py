"""The daemon's task and node commands on the admin socket: submit, list, show, cancel, retry
tasks; list nodes; drain a node. Writes go through Raft (any node forwards to the leader);
reads first take a ReadIndex read point, so what warmctl shows is linearizable.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from warmd.access import Actor
from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.cache.effect import TaskEffect
from warmd.errors import AdminError
from warmd.ids import NODE_ID_MAX
from warmd.runtime.commands.errors import propose_applied, raft_errors
from warmd.runtime.commands.paging import page_request, take_page
from warmd.runtime.node.driver import Driver
from warmd.statemachine.commands import (
    KEYS_PER_TASK_MAX,
    Cancel,
    Command,
    Drain,
    InvalidCommand,
    Rerun,
    Retry,
    SubmitTask,
    TaskSpec,
)
from warmd.statemachine.documents import result_fields
from warmd.statemachine.lifecycle import TERMINAL_STATES, TaskState
from warmd.statemachine.state import Applied, NodeRecord, TaskRecord

LIST_LIMIT_DEFAULT = 100
KEYS_LIMIT_DEFAULT = 1000
LIST_LIMIT_MAX = 10_000  # per page; the page is also cut at paging.PAGE_BYTES_MAX
STATE_RANK = {state: rank for rank, state in enumerate(TaskState)}
SPEC_FIELDS = ("rule", "priority", "not_before_ms", "deadline_ms", "max_attempts", "ttl_s",
               "value", "loader")


def _text(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise AdminError(ErrorCode.BAD_REQUEST, f"{name} must be a non-empty string, got {value!r}")
    return value


def _optional_text(args: Mapping[str, Any], name: str) -> str | None:
    return None if args.get(name) is None else _text(args, name)


def _states(wanted: Any) -> list[TaskState]:
    """Every state, or the one `wanted` names (bad_request for an unknown one)."""
    if wanted is None:
        return list(TaskState)
    try:
        return [TaskState(str(wanted).upper())]
    except ValueError:
        raise AdminError(ErrorCode.BAD_REQUEST, f"unknown state {wanted!r}; one of "
                         + ", ".join(state.value for state in TaskState)) from None


def _position(task: TaskRecord) -> str:
    """A task's place in a listing as a cursor: `<state rank>:<task id>`."""
    return f"{STATE_RANK[task.state]}:{task.task_id}"


def _position_key(task: TaskRecord) -> tuple[int, str]:
    return STATE_RANK[task.state], task.task_id


def _cursor_key(cursor: str) -> tuple[int, str]:
    rank, separator, task_id = cursor.partition(":")
    if not separator or not rank.isdigit():
        raise AdminError(ErrorCode.BAD_REQUEST, f"cursor {cursor!r} is not one this daemon gave")
    return int(rank), task_id


def _key_offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise AdminError(ErrorCode.BAD_REQUEST, f"keys_cursor {cursor!r} is not one this daemon gave")
    return int(cursor)


def task_document(task: TaskRecord) -> dict[str, Any]:
    """A task as JSON-able fields (its keys are paged by task-show: a task may hold 10^5)."""
    document = {
        "task_id": task.task_id, "state": task.state.value, "target": task.spec.target,
        "keys": len(task.spec.keys), "checkpoint": task.checkpoint, "owner": task.owner,
        "fence": task.fence, "attempt": task.attempt, "reassignments": task.reassignments,
        "submitted_ms": task.submitted_ms, "updated_ms": task.updated_ms,
        "reason": task.reason, "result": result_fields(task.result), "rule": task.spec.rule,
        "priority": task.spec.priority, "deadline_ms": task.spec.deadline_ms,
        "loader": task.spec.loader, "plan_id": task.spec.plan_id,
        "rules_version": task.spec.rules_version, "ttl_s": task.spec.ttl_s,
        "assigned_ms": task.assigned_ms,
        "attempts": [asdict(attempt) for attempt in task.attempts],
        "submitted_index": task.submitted_index,
        "notes": [asdict(note) for note in task.notes],  # gate answers, re-runs
        "pinned_node": task.pinned_node, "avoided_node": task.avoided_node,
    }
    return document


def effect_document(effect: TaskEffect, plan_keys_read: int) -> dict[str, Any]:
    """A task's effect: of a sample of its keys, how many were read in the window after it
    (useful), never read (waste) or already gone; its share of its plan's keys read."""
    never_read = effect.sampled_keys - effect.keys_read_in_window - effect.keys_gone
    share = effect.keys_read_in_window / plan_keys_read if plan_keys_read else None
    return {"window_s": effect.window_s, "cache_hits": effect.hits,
            "cache_misses": effect.misses, "sampled_keys": effect.sampled_keys,
            "keys_read": effect.keys_read_in_window, "keys_never_read": never_read,
            "keys_gone": effect.keys_gone,
            "waste_ratio": round(never_read / effect.sampled_keys, 3) if effect.sampled_keys
            else None,
            "share_of_plan_reads": round(share, 3) if share is not None else None}


def node_document(node: NodeRecord, load: int, now_ms: int) -> dict[str, Any]:
    """A node registry entry as JSON-able fields, with its current load and liveness.
    `alive` is the replicated verdict (the leader's); `live` compares the node's own stamp
    with this node's clock, a hint that skewed clocks can mislead."""
    live = node.alive and now_ms - node.last_heartbeat_ms <= node.lease_ms
    return {
        "node_id": node.node_id, "capacity": node.capacity, "load": load,
        "lease_ms": node.lease_ms, "alive": node.alive, "live": live,
        "draining": node.draining, "labels": dict(node.labels),
        "last_heartbeat_ms": node.last_heartbeat_ms, "heartbeats": node.heartbeats,
    }


def spec_from_args(args: Mapping[str, Any]) -> TaskSpec:
    """Build a TaskSpec from `keys` (a list) or `key_prefix` + `key_count`, and a target."""
    keys = args.get("keys")
    if keys is None and "key_prefix" in args:
        count = args.get("key_count")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= KEYS_PER_TASK_MAX:
            raise AdminError(ErrorCode.BAD_REQUEST,
                             f"key_count must be an integer 1..{KEYS_PER_TASK_MAX}, got {count!r:.40}")
        keys = [f"{args['key_prefix']}{number}" for number in range(count)]
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise AdminError(ErrorCode.BAD_REQUEST, "keys must be a list of strings (or give key_prefix and key_count)")
    extra = {name: args[name] for name in SPEC_FIELDS if args.get(name) is not None}
    try:
        return TaskSpec(keys=tuple(keys), target=_text(args, "target"), **extra)
    except (InvalidCommand, TypeError) as error:
        raise AdminError(ErrorCode.BAD_REQUEST, f"invalid task: {error}") from None


class TaskCommands:
    """Handlers bound to one driver; `register(server)` adds them to the admin server."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._effects: Mapping[str, TaskEffect] = {}

    def attach_effects(self, effects: Mapping[str, TaskEffect]) -> None:
        """Show the effect and waste of the tasks this node ran (EffectRecorder.effects):
        measured where the task ran, so `tasks show` on that node has them."""
        self._effects = effects

    def register(self, server: AdminServer) -> None:
        server.register("task-submit", self.submit, summary="submit a task (keys and a target)")
        server.register("task-list", self.list_tasks, summary="list tasks, optionally by state")
        server.register("task-show", self.show, summary="one task in full")
        server.register("task-cancel", self.cancel, summary="cancel a task for good")
        server.register("task-retry", self.retry,
                        summary="send a FAILED task (or every FAILED task of a plan) back to PENDING")
        server.register("task-rerun", self.rerun, with_actor=True,
                        summary="a new attempt of a FAILED task on (or away from) a node")
        server.register("plan-cancel", self.cancel_plan,
                        summary="cancel every unfinished task of a plan")
        server.register("nodes", self.nodes, summary="the executor nodes and their load")
        server.register("drain", self.drain, summary="stop (or resume) assigning to a node")

    @property
    def _state(self) -> Any:
        return self._driver.state

    async def _write(self, command: Command) -> Any:
        return await propose_applied(self._driver, command)

    async def _read_point(self) -> int:
        async with raft_errors():
            return await self._driver.read()

    async def submit(self, args: Mapping[str, Any]) -> dict[str, Any]:
        spec = spec_from_args(args)
        task_id = args.get("task_id") or f"t-{secrets.token_hex(8)}"
        if not isinstance(task_id, str):
            raise AdminError(ErrorCode.BAD_REQUEST, f"task_id must be a string, got {task_id!r}")
        try:
            command = SubmitTask(task_id=task_id, spec=spec, now_ms=self._driver.clock.wall_ms())
        except InvalidCommand as error:
            raise AdminError(ErrorCode.BAD_REQUEST, f"invalid task: {error}") from None
        await self._write(command)
        return {"task_id": task_id, "applied_index": self._driver.applier.applied_index}

    async def list_tasks(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Tasks by state (in lifecycle order) then id, filtered by `state`, `plan` and
        `rule`, one page at a time (`limit`, `cursor` -> `next_cursor`)."""
        request = page_request(args, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, minimum=0)
        states = _states(args.get("state"))
        plan_id, rule = _optional_text(args, "plan"), _optional_text(args, "rule")
        read_index = await self._read_point()
        matching = [task for state in states for task in sorted(
            self._state.in_state(state), key=lambda task: task.task_id)
            if (plan_id is None or task.spec.plan_id == plan_id)
            and (rule is None or task.spec.rule == rule)]
        after = matching if request.cursor is None else \
            [task for task in matching if _position_key(task) > _cursor_key(request.cursor)]
        page = take_page(after, request, _position, task_document)
        return {"read_index": read_index, "total": len(matching), "counts": self._state.counts(),
                "tasks": page.documents, "next_cursor": page.next_cursor,
                "stale_fence_rejections": self._state.stale_fence_rejections,
                "finished_pruned": self._state.finished_pruned}

    async def show(self, args: Mapping[str, Any]) -> dict[str, Any]:
        task_id = _text(args, "task_id")
        read_index = await self._read_point()
        task = self._state.tasks.get(task_id)
        if task is None:
            raise AdminError(ErrorCode.FAILED, f"no task {task_id!r}")
        document = task_document(task)
        reply: dict[str, object] = {"read_index": read_index, "task": document}
        effect = self._effects.get(task_id)
        if effect is not None:
            document["effect"] = effect_document(effect, self._plan_keys_read(task))
        if args.get("keys"):  # a task may hold 10^5 keys: they come a page at a time
            request = page_request({"limit": args.get("keys_limit", KEYS_LIMIT_DEFAULT),
                                    "cursor": args.get("keys_cursor")},
                                   KEYS_LIMIT_DEFAULT, KEYS_PER_TASK_MAX)
            start = _key_offset(request.cursor)
            page = take_page(range(start, len(task.spec.keys)), request, lambda at: str(at + 1),
                             lambda at: task.spec.keys[at])
            document["key_list"] = page.documents
            reply["next_keys_cursor"] = page.next_cursor
        return reply

    def _plan_keys_read(self, task: TaskRecord) -> int:
        """Keys read after their task, summed over the tasks of `task`'s plan measured here."""
        if not task.spec.plan_id:
            return 0
        plan = self._state.plans.get(task.spec.plan_id)
        task_ids = plan.task_ids if plan is not None else (task.task_id,)
        return sum(self._effects[task_id].keys_read_in_window
                   for task_id in task_ids if task_id in self._effects)

    async def cancel(self, args: Mapping[str, Any]) -> dict[str, Any]:
        task_id = _text(args, "task_id")
        await self._write(Cancel(task_id=task_id, now_ms=self._driver.clock.wall_ms(), reason="cancelled by operator"))
        return {"task_id": task_id, "state": TaskState.CANCELLED.value}

    async def retry(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """One task by `task_id`, or with `failed` every FAILED task (of `plan`, if given)."""
        if not args.get("failed"):
            task_id = _text(args, "task_id")
            now_ms = self._driver.clock.wall_ms()
            await self._write(Retry(task_id=task_id, not_before_ms=now_ms, now_ms=now_ms,
                                    manual=True))
            return {"task_id": task_id, "state": TaskState.PENDING.value}
        plan_id = _optional_text(args, "plan")
        await self._read_point()
        failed = [task.task_id for task in self._state.in_state(TaskState.FAILED)
                  if plan_id is None or task.spec.plan_id == plan_id]
        retried = await self._each(failed, lambda task_id, now_ms: Retry(
            task_id=task_id, not_before_ms=now_ms, now_ms=now_ms, manual=True))
        return {"plan": plan_id, "retried": retried, "refused": len(failed) - len(retried)}

    async def rerun(self, args: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        """Re-run a FAILED task pinned to `node_id`, or kept off it with `away`; any other
        state is refused saying which (the table allows a re-run from FAILED only: the
        others are running, about to, or final)."""
        task_id = _text(args, "task_id")
        node_id, away = args.get("node_id"), args.get("away", False)
        if not isinstance(node_id, int) or isinstance(node_id, bool) or node_id < 1:
            raise AdminError(ErrorCode.BAD_REQUEST, f"node_id must be a node id, got {node_id!r:.20}")
        if not isinstance(away, bool):
            raise AdminError(ErrorCode.BAD_REQUEST, "away must be true or false")
        await self._read_point()
        task = self._state.tasks.get(task_id)
        if task is None:
            raise AdminError(ErrorCode.FAILED, f"unknown task {task_id!r}")
        if task.state is not TaskState.FAILED:
            raise AdminError(ErrorCode.FAILED, f"task {task_id} is {task.state.value}: only a "
                             "FAILED task can be re-run (cancel a running one first)")
        now_ms = self._driver.clock.wall_ms()
        await self._write(Rerun(task_id=task_id, node_id=node_id, away=away, now_ms=now_ms,
                                actor=actor.name))
        return {"task_id": task_id, "state": TaskState.PENDING.value, "node_id": node_id,
                "away": away}

    async def cancel_plan(self, args: Mapping[str, Any]) -> dict[str, Any]:
        plan_id = _text(args, "plan")
        await self._read_point()
        plan = self._state.plans.get(plan_id)
        if plan is None:
            raise AdminError(ErrorCode.FAILED, f"no plan {plan_id!r} (warmctl plans lists them)")
        open_ids = [task_id for task_id in plan.task_ids if task_id in self._state.tasks
                    and self._state.tasks[task_id].state not in TERMINAL_STATES]
        reason = f"plan {plan_id} cancelled by operator"
        cancelled = await self._each(open_ids, lambda task_id, now_ms: Cancel(
            task_id=task_id, now_ms=now_ms, reason=reason))
        return {"plan": plan_id, "cancelled": cancelled, "tasks": len(plan.task_ids),
                "already_finished": len(plan.task_ids) - len(open_ids)}

    async def _each(self, task_ids: list[str],
                    command: Callable[[str, int], Command]) -> list[str]:
        """Propose `command(task_id, now)` for each task; the ids the state machine took (a
        task that changed state meanwhile is refused and left out)."""
        done = []
        for task_id in task_ids:
            async with raft_errors():
                result = await self._driver.propose(command(task_id, self._driver.clock.wall_ms()))
            if isinstance(result, Applied):
                done.append(task_id)
        return done

    async def nodes(self, args: Mapping[str, Any]) -> dict[str, Any]:
        read_index = await self._read_point()
        state, now_ms = self._state, self._driver.clock.wall_ms()
        return {"read_index": read_index, "nodes": [
            node_document(node, state.load(node_id), now_ms)
            for node_id, node in sorted(state.nodes.items())]}

    async def drain(self, args: Mapping[str, Any]) -> dict[str, Any]:
        node_id = args.get("node_id")
        if not isinstance(node_id, int) or isinstance(node_id, bool) or not 1 <= node_id <= NODE_ID_MAX:
            raise AdminError(ErrorCode.BAD_REQUEST,
                             f"node_id must be an integer 1..{NODE_ID_MAX}, got {node_id!r:.40}")
        draining = args.get("undo") is not True
        await self._write(Drain(node_id=node_id, now_ms=self._driver.clock.wall_ms(), draining=draining))
        return {"node_id": node_id, "draining": draining}
