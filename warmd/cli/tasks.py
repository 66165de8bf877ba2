"""warmctl's task and node commands: `tasks submit | ls | show ID | cancel ID | retry ID`,
`nodes`, `drain NODE`. Human output by default, `--json` for scripts; errors exit as in
cluster.py (75 means retry, 1 a refusal)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from warmd.cli.cluster import _call, _command, _positive_int, _print, call_pages
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
    parser.add_argument("--count", type=_positive_int, help="how many keys to generate")
    parser.add_argument("--id", dest="task_id", help="task id (default: a random one)")
    parser.add_argument("--priority", type=int)
    parser.add_argument("--deadline-in-s", type=float, help="expire unless done within this")
    parser = _command(actions, "ls", "list tasks, by state then id (--state to filter)", _list)
    parser.add_argument("--state", type=str.upper, choices=[state.value for state in TaskState])
    parser.add_argument("--limit", type=_limit, default=100,
                        help="show at most N tasks (default 100; 0 for all, fetched page by page)")
    parser = _command(actions, "show", "show one task", _show)
    parser.add_argument("task_id", metavar="ID")
    parser.add_argument("--keys", action="store_true", help="include the key list")
    for name, help_text, handler in (("cancel", "cancel a task for good", _cancel),
                                     ("retry", "send a FAILED task back to PENDING", _retry)):
        parser = _command(actions, name, help_text, handler)
        parser.add_argument("task_id", metavar="ID")
    _command(subparsers, "nodes", "list executor nodes: capacity, load, liveness", _nodes)
    parser = _command(subparsers, "drain", "stop assigning new tasks to a node", _drain)
    parser.add_argument("node_id", type=_positive_int, metavar="NODE")
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
    reply = _call(args, "task-submit", SUBMIT_TIMEOUT_S, **call_args)
    return _print(args, reply, lambda r: f"submitted {r['task_id']}")


def task_line(task: Mapping[str, Any]) -> str:
    """One task in a fixed-width line."""
    owner = f"node {task['owner']} fence {task['fence']}" if task["owner"] else "-"
    return (f"{task['task_id']:<24} {task['state']:<10} {task['checkpoint']:>6}/{task['keys']:<6} "
            f"attempt {task['attempt']}  {owner}")


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 (all) or more")
    return value


def _list(args: argparse.Namespace) -> int:
    call_args: dict[str, Any] = {}
    if args.state:
        call_args["state"] = args.state
    reply = call_pages(args, "task-list", "tasks", args.limit or None, **call_args)

    def human(reply: Mapping[str, Any]) -> str:
        counts = ", ".join(f"{state} {count}" for state, count in reply["counts"].items() if count)
        lines = [task_line(task) for task in reply["tasks"]]
        lines.append(f"{reply['total']} tasks ({counts or 'none'}); "
                     f"stale-fence reports refused: {reply['stale_fence_rejections']}")
        return "\n".join(lines)
    return _print(args, reply, human)


def _show(args: argparse.Namespace) -> int:
    if args.keys:
        reply = call_pages(args, "task-show", "task.key_list", None, cursor="keys_cursor",
                           page_limit="keys_limit", task_id=args.task_id, keys=True)
    else:
        reply = _call(args, "task-show", task_id=args.task_id)

    def human(reply: Mapping[str, Any]) -> str:
        return "\n".join(f"{name}: {value}" for name, value in reply["task"].items())
    return _print(args, reply, human)


def _cancel(args: argparse.Namespace) -> int:
    reply = _call(args, "task-cancel", task_id=args.task_id)
    return _print(args, reply, lambda r: f"{r['task_id']} cancelled")


def _retry(args: argparse.Namespace) -> int:
    reply = _call(args, "task-retry", task_id=args.task_id)
    return _print(args, reply, lambda r: f"{r['task_id']} sent back to PENDING")


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
