"""Raft and driver errors as the admin protocol's error codes, for every command handler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from warmd.admin.protocol import ErrorCode
from warmd.errors import AdminError
from warmd.raft.errors import NotLeader, ProposalDropped, RaftError
from warmd.runtime.node.driver import Driver, DriverStopped, ProposalTimeout
from warmd.statemachine.commands import Command
from warmd.statemachine.state import Applied


@asynccontextmanager
async def raft_errors() -> AsyncIterator[None]:
    """Translate Raft errors into AdminErrors with the right code."""
    try:
        yield
    except (NotLeader, ProposalDropped, ProposalTimeout, DriverStopped) as error:
        raise admin_error(error) from None


def admin_error(error: RaftError) -> AdminError:
    """The AdminError a Raft or driver error is told to a client as (its code says whether
    to retry, and where); one that has no code of its own is `failed`."""
    if isinstance(error, NotLeader):
        return AdminError(ErrorCode.NOT_LEADER, str(error))
    if isinstance(error, ProposalDropped) and error.reason == ProposalDropped.NO_LEADER:
        return AdminError(ErrorCode.UNAVAILABLE, str(error))
    if isinstance(error, ProposalTimeout):
        return AdminError(ErrorCode.TIMEOUT, str(error))
    if isinstance(error, DriverStopped):
        return AdminError(ErrorCode.UNAVAILABLE, str(error))
    return AdminError(ErrorCode.FAILED, str(error))


async def propose_applied(driver: Driver, command: Command) -> Any:
    """Replicate `command` for an admin handler and return its applied value: Raft errors as
    their codes (`raft_errors`), a command the state machine refused as FAILED with its reason."""
    async with raft_errors():
        result = await driver.propose(command)
    if not isinstance(result, Applied):
        raise AdminError(ErrorCode.FAILED, f"refused: {result.reason}")
    return result.value
