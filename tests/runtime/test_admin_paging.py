"""Paged admin replies (issue #21 item 3) with 20,000 real tasks in a one-node driver: every
page stays under the reply line limit, the cursor walks all tasks once, warmctl joins the
pages by itself, and a reply that would still be too big is a `too_large` error that says
how to page, logged once per command."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from structlog.testing import capture_logs

from warmd.admin.protocol import (
    LINE_BYTES_MAX,
    ErrorCode,
    Response,
    decode_response,
    encode_response,
)
from warmd.admin.server import AdminServer
from warmd.runtime.commands.tasks import TaskCommands
from warmd.runtime.node.driver import Driver
from warmd.statemachine.commands import SubmitTask, TaskSpec

TASKS = 20_000
SUBMIT_WINDOW = 500  # proposals in flight at once, so they share fsyncs
REASON = "x" * 200  # documents of a realistic size: 20,000 of them far exceed one line


async def _fill(driver: Driver) -> None:
    """20,000 tasks of two plans, submitted through Raft."""
    commands = [SubmitTask(task_id=f"task-{number:05d}", now_ms=1_000,
                           spec=TaskSpec(keys=(f"key:{number}:{REASON}",), target="redis",
                                         plan_id=f"plan-{number % 2}", rule=f"rule-{number % 3}"))
                for number in range(TASKS)]
    for start in range(0, TASKS, SUBMIT_WINDOW):
        await asyncio.gather(*(driver.propose(command)
                               for command in commands[start:start + SUBMIT_WINDOW]))


async def test_task_list_pages_through_20000_tasks(driver: Driver) -> None:
    """Asking for all 20,000 tasks in one page gets a page cut below the line limit and a
    cursor; following the cursors yields every task exactly once, in order, and the plan
    and rule filters page the same way."""
    await _fill(driver)
    commands = TaskCommands(driver)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        reply = await commands.list_tasks({"limit": 10_000, "cursor": cursor})
        line = encode_response(Response(1, reply))
        assert len(line) < LINE_BYTES_MAX and decode_response(line).ok
        seen.extend(task["task_id"] for task in reply["tasks"])
        pages += 1
        cursor = reply["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"task-{number:05d}" for number in range(TASKS)] and pages > 1
    assert reply["total"] == TASKS
    filtered = await commands.list_tasks({"limit": 5, "plan": "plan-1", "rule": "rule-0"})
    assert filtered["total"] == len([n for n in range(TASKS) if n % 2 == 1 and n % 3 == 0])
    assert all(task["plan_id"] == "plan-1" and task["rule"] == "rule-0"
               for task in filtered["tasks"]) and filtered["next_cursor"] is not None


async def test_warmctl_joins_the_pages(driver: Driver, tmp_path: Path) -> None:
    """`warmctl tasks ls --limit 0 --json` over the real socket lists all 20,000 tasks."""
    await _fill(driver)
    server = AdminServer(tmp_path / "admin.sock")
    TaskCommands(driver).register(server)
    await server.start()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from warmd.cli.warmctl import main; raise SystemExit(main())",
            "--socket", str(tmp_path / "admin.sock"), "tasks", "ls", "--limit", "0", "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await process.communicate()
    finally:
        await server.close()
    assert process.returncode == 0, stderr.decode()
    listed = json.loads(stdout)["tasks"]
    assert len(listed) == TASKS and len({task["task_id"] for task in listed}) == TASKS


async def test_an_oversized_reply_is_too_large_and_logged_once(tmp_path: Path) -> None:
    """A handler whose reply exceeds the line limit answers `too_large` naming `limit` and
    `next_cursor` (not `internal`), and the daemon logs it once however often it happens."""
    server = AdminServer(tmp_path / "admin.sock")
    server.register("huge", lambda args: {"items": ["y" * 1000] * 2000}, summary="too big")
    await server.start()
    try:
        with capture_logs() as logs:
            replies = [await _call_raw(tmp_path / "admin.sock", "huge") for _ in range(3)]
    finally:
        await server.close()
    for reply in replies:
        assert reply.error_code == ErrorCode.TOO_LARGE
        assert "limit" in reply.error_message and "next_cursor" in reply.error_message
    assert [log["command"] for log in logs if log["event"] == "admin_reply_too_large"] == ["huge"]


async def _call_raw(path: Path, command: str) -> Response:
    reader, writer = await asyncio.open_unix_connection(str(path), limit=LINE_BYTES_MAX * 2)
    writer.write(json.dumps({"v": 1, "id": 1, "command": command, "args": {}}).encode() + b"\n")
    line = await reader.readline()
    writer.close()
    return decode_response(line)
