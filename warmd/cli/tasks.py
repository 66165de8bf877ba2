"""warmctl's task and node commands: `tasks submit | ls | show ID | cancel ID | retry ID`,
`tasks retry --failed [--plan P]`, `nodes`, `drain NODE`. Human output by default (local
times with their age), `--json` for scripts; errors exit as in cluster.py (75 means retry,
1 a refusal)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from warmd.cli.cluster import _call, _command, _print, call_pages
from warmd.cli.command import page_limit, positive_int
from warmd.cli.plans_view import age, when
from warmd.statemachine.lifecycle import TaskState

SUBMIT_TIMEOUT_S = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:
    tasks = subparsers.add_parser("tasks", help="submit, list, show, cancel and retry tasks",
                                  description="submit, list, show, cancel and retry tasks")
    actions = tasks.add_subparsers(dest="tasks_command", metavar="ACTION")
    actions.required = True
    parser = _command(actions, "submit", "submit a task: keys to warm into a target", _submit)
    parser.add_argument("--target", required=True, help="cache URL, e.g. redis://127.0.0.1:6379")
    parser.add_argument("--key", action="append", default=[], dest="keys", metavar="KEY")
    parser.add_argument("--prefix", help="generate keys PREFIX0 .. PREFIX<count-1>")
    parser.add_argument("--count", type=positive_int, help="how many keys to generate")
    parser.add_argument("--id", dest="task_id", help="task id (default: a random one)")
    parser.add_argument("--priority", type=int)
    parser.add_argument("--deadline-in-s", type=float, help="expire unless done within this")
    parser.add_argument("--ttl", type=positive_int, metavar="SECONDS",
                        help="the keys' TTL (default: the executor's, 1 h)")
    parser.add_argument("--value", help="the value written for every key (default: the task id)")
    parser = _command(actions, "ls", "list tasks, by state then id (filters: --state, --plan, "
                      "--rule)", _list)
    parser.add_argument("--state", type=str.upper, choices=[state.value for state in TaskState])
    parser.add_argument("--plan", metavar="PLAN", help="only the tasks of this plan")
    parser.add_argument("--rule", metavar="RULE", help="only the tasks this rule made")
    parser.add_argument("--limit", type=page_limit, default=100,
                        help="show at most N tasks (default 100; 0 for all, fetched page by page)")
    parser = _command(actions, "show", "show one task", _show)
    parser.add_argument("task_id", metavar="ID")
    parser.add_argument("--keys", action="store_true", help="include the key list")
    parser = _command(actions, "cancel", "cancel a task for good", _cancel)
    parser.add_argument("task_id", metavar="ID")
    parser = _command(actions, "retry", "send a FAILED task (or, with --failed, every FAILED "
                      "task, of --plan P if given) back to PENDING", _retry)
    parser.add_argument("task_id", metavar="ID", nargs="?")
    parser.add_argument("--failed", action="store_true", help="every FAILED task")
    parser.add_argument("--plan", metavar="PLAN", help="with --failed: only this plan's")
    _command(subparsers, "nodes", "list executor nodes: capacity, load, liveness", _nodes)
    parser = _command(subparsers, "drain", "stop assigning new tasks to a node", _drain)
    parser.add_argument("node_id", type=positive_int, metavar="NODE")
    parser.add_argument("--undo", action="store_true", help="resume assigning to the node")


def _submit(args: argparse.Namespace) -> int:
    call_args: dict[str, Any] = {"target": args.target}
    if args.keys:
        call_args["keys"] = args.keys
    elif args.prefix is not None and args.count:
        call_args.update(key_prefix=args.prefix, key_count=args.count)
    else:
        raise SystemExit("warmctl tasks submit: give --key KEY (repeatable) or --prefix and --count")
    if args.task_id:
        call_args["task_id"] = args.task_id
    if args.priority is not None:
        call_args["priority"] = args.priority
    if args.deadline_in_s is not None:
        call_args["deadline_ms"] = int(time.time() * 1000 + args.deadline_in_s * 1000)
    if args.ttl is not None:
        call_args["ttl_s"] = args.ttl
    if args.value is not None:
        call_args["value"] = args.value
    reply = _call(args, "task-submit", SUBMIT_TIMEOUT_S, **call_args)
    return _print(args, reply, lambda r: f"submitted {r['task_id']}")


def task_line(task: Mapping[str, Any], now_ms: int, id_width: int = 24) -> str:
    """One task in a fixed-width line: id, state, progress, attempt, owner, last change."""
    owner = f"node {task['owner']} fence {task['fence']}" if task["owner"] else "-"
    return (f"{task['task_id']:<{id_width}} {task['state']:<10} "
            f"{task['checkpoint']:>6}/{task['keys']:<6} attempt {task['attempt']}  "
            f"{owner:<20} {age(task['updated_ms'], now_ms)}")


def _list(args: argparse.Namespace) -> int:
    call_args = {name: getattr(args, name) for name in ("state", "plan", "rule")
                 if getattr(args, name)}
    reply = call_pages(args, "task-list", "tasks", args.limit or None, **call_args)

    def human(reply: Mapping[str, Any]) -> str:
        now_ms = int(time.time() * 1000)
        counts = ", ".join(f"{state} {count}" for state, count in reply["counts"].items() if count)
        width = max([24, *(len(task["task_id"]) for task in reply["tasks"])])
        lines = [task_line(task, now_ms, width) for task in reply["tasks"]]
        shown = f"{len(reply['tasks'])} shown of " if len(reply["tasks"]) < reply["total"] else ""
        lines.append(f"{shown}{reply['total']} tasks ({counts or 'none'}); "
                     f"stale-fence reports refused: {reply['stale_fence_rejections']}")
        return "\n".join(lines)
    return _print(args, reply, human)


def _show(args: argparse.Namespace) -> int:
    if args.keys:
        reply = call_pages(args, "task-show", "task.key_list", None, cursor="keys_cursor",
                           page_limit="keys_limit", task_id=args.task_id, keys=True)
    else:
        reply = _call(args, "task-show", task_id=args.task_id)

    return _print(args, reply, lambda reply: format_task(reply["task"], int(time.time() * 1000)))


def attempt_line(attempt: Mapping[str, Any], now_ms: int) -> str:
    """`  #2 node 3 fence 41: assigned 16:20:01 (3m ago), started ..., FAILED ...: error`."""
    line = (f"  #{attempt['attempt']} node {attempt['node_id']} fence {attempt['fence']}: "
            f"assigned {when(attempt['assigned_ms'], now_ms)}")
    if attempt["started_ms"]:
        line += f", started {when(attempt['started_ms'], now_ms)}"
    if attempt["ended_ms"]:
        line += f", {attempt['outcome']} {when(attempt['ended_ms'], now_ms)}"
    else:
        line += ", still open"
    return line + (f": {attempt['error']}" if attempt["error"] else "")


TIME_FIELDS = ("submitted_ms", "updated_ms", "deadline_ms", "assigned_ms")


def format_task(task: Mapping[str, Any], now_ms: int) -> str:
    """`name: value` lines; times as local time and age, lists one item a line, the key
    list last; the reason only while it explains the state (not on a success)."""
    lines = []
    for name, value in task.items():
        if name == "key_list" or (name == "reason" and (not value or task["state"] == "SUCCEEDED")):
            continue
        if name in TIME_FIELDS:
            lines.append(f"{name.removesuffix('_ms')}: {when(value, now_ms)}")
        elif name == "attempts":
            lines.append(f"attempts ({len(value)} kept):" if value else "attempts: -")
            lines += [attempt_line(attempt, now_ms) for attempt in value]
        elif isinstance(value, Mapping):
            lines.append(f"{name}:")
            lines += [f"  {key}: {item}" for key, item in value.items()]
        else:
            lines.append(f"{name}: {'-' if value in ('', None) else value}")
    if "key_list" in task:
        lines.append(f"keys ({len(task['key_list'])}):")
        lines += [f"  {key}" for key in task["key_list"]]
    return "\n".join(lines)


def _cancel(args: argparse.Namespace) -> int:
    reply = _call(args, "task-cancel", task_id=args.task_id)
    return _print(args, reply, lambda r: f"{r['task_id']} cancelled")


def _retry(args: argparse.Namespace) -> int:
    if args.failed == bool(args.task_id) or (args.plan and not args.failed):
        raise SystemExit("warmctl tasks retry: give a task ID, or --failed [--plan PLAN]")
    if not args.failed:
        reply = _call(args, "task-retry", task_id=args.task_id)
        return _print(args, reply, lambda r: f"{r['task_id']} sent back to PENDING")
    call_args = {"failed": True, **({"plan": args.plan} if args.plan else {})}
    reply = _call(args, "task-retry", SUBMIT_TIMEOUT_S, **call_args)
    where = f" of plan {reply['plan']}" if reply["plan"] else ""
    return _print(args, reply, lambda r: f"{len(r['retried'])} FAILED tasks{where} sent back "
                                         f"to PENDING" + (f" ({r['refused']} had changed state)"
                                                          if r["refused"] else ""))


def _nodes(args: argparse.Namespace) -> int:
    def human(reply: Mapping[str, Any]) -> str:
        lines = [f"{'node':>4} {'load':>9} {'state':<8} lease_ms  labels"]
        for node in reply["nodes"]:
            state = "draining" if node["draining"] else ("live" if node["live"] else "dead")
            labels = ",".join(f"{k}={v}" for k, v in node["labels"].items()) or "-"
            lines.append(f"{node['node_id']:>4} {node['load']:>4}/{node['capacity']:<4} "
                         f"{state:<8} {node['lease_ms']:>8}  {labels}")
        return "\n".join(lines)
    return _print(args, _call(args, "nodes"), human)


def _drain(args: argparse.Namespace) -> int:
    reply = _call(args, "drain", node_id=args.node_id, undo=args.undo)
    verb = "draining" if reply["draining"] else "accepting tasks again"
    return _print(args, reply, lambda r: f"node {r['node_id']} {verb}")
