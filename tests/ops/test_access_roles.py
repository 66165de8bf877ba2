"""The command -> role table and AdminServer.invoke's checks: every command the daemon serves
is classified, a role below the command's is refused, and every mutation is audited."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from warmd.access import Actor, Interface, Role
from warmd.admin.protocol import ErrorCode
from warmd.admin.roles import COMMAND_ACCESS, command_access
from warmd.admin.server import AdminServer, AuditEvent
from warmd.clock import ManualClock
from warmd.config import load
from warmd.errors import AdminError
from warmd.runtime.daemon import build, open_storage
from warmd.runtime.observe import Observability
from warmd.testing.configs import ONE_NODE, write_config


def test_every_registered_command_is_in_the_role_table(tmp_path: Path) -> None:
    """The daemon's commands (and the observability and web ones) all have an entry, and
    the table names no command that does not exist."""
    config = load(write_config(tmp_path, ONE_NODE))
    storage = open_storage(config)
    try:
        components = build(config, storage, ManualClock())
        Observability(config, components.driver, lambda: None, components.admin,
                      components.authority)
        registered = set(components.admin.commands())
    finally:
        storage.close()
    assert registered - set(COMMAND_ACCESS) == set()
    assert set(COMMAND_ACCESS) - registered == set()


def test_an_unlisted_command_needs_admin_and_is_audited() -> None:
    """Fail closed: a command someone forgot to classify is an admin mutation."""
    access = command_access("some-new-command")
    assert access.role is Role.ADMIN and access.mutates


def actor(role: Role) -> Actor:
    return Actor(name=f"{role.name.lower()}-token", role=role, interface=Interface.API,
                 source="127.0.0.1", token_name=f"{role.name.lower()}-token")


@pytest.fixture
def server(tmp_path: Path) -> tuple[AdminServer, list[AuditEvent]]:
    events: list[AuditEvent] = []

    async def recorder(event: AuditEvent) -> None:
        events.append(event)

    admin = AdminServer(tmp_path / "admin.sock", recorder=recorder)

    async def cancel(args: Mapping[str, Any]) -> dict[str, Any]:
        if args.get("task_id") == "missing":
            raise AdminError(ErrorCode.FAILED, "no task 'missing'")
        return {"cancelled": args["task_id"]}

    admin.register("task-cancel", cancel)
    admin.register("task-list", lambda args: {"tasks": []})
    admin.register("transfer-leader", lambda args: {"leader_id": 2})
    return admin, events


async def test_a_role_below_the_command_is_refused_and_the_refusal_audited(
        server: tuple[AdminServer, list[AuditEvent]]) -> None:
    """A viewer may list but not cancel; an operator may not transfer leadership."""
    admin, events = server
    assert await admin.invoke("task-list", {}, actor(Role.VIEWER)) == {"tasks": []}
    with pytest.raises(AdminError) as refused:
        await admin.invoke("task-cancel", {"task_id": "t-1"}, actor(Role.VIEWER))
    assert refused.value.code == ErrorCode.PERMISSION_DENIED
    assert "needs operator" in refused.value.message
    with pytest.raises(AdminError, match="needs admin"):
        await admin.invoke("transfer-leader", {}, actor(Role.OPERATOR))
    assert [(event.action, event.result, event.actor.role) for event in events] == [
        ("task-cancel", "denied", Role.VIEWER), ("transfer-leader", "denied", Role.OPERATOR)]


async def test_every_mutation_is_audited_with_its_outcome_and_reads_are_not(
        server: tuple[AdminServer, list[AuditEvent]]) -> None:
    """An allowed mutation is recorded ok or error with its target; a read is not recorded."""
    admin, events = server
    await admin.invoke("task-cancel", {"task_id": "t-1"}, actor(Role.OPERATOR))
    with pytest.raises(AdminError):
        await admin.invoke("task-cancel", {"task_id": "missing"}, actor(Role.ADMIN))
    await admin.invoke("task-list", {}, actor(Role.ADMIN))
    assert [(event.action, event.subject, event.result, event.error) for event in events] == [
        ("task-cancel", "task_id=t-1", "ok", ""),
        ("task-cancel", "task_id=missing", "error", "failed: no task 'missing'")]
    assert events[0].actor.token_name == "operator-token"
