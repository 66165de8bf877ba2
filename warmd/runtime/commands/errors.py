"""Raft and driver errors as the admin protocol's error codes, for every command handler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from warmd.admin.protocol import ErrorCode
from warmd.errors import AdminError
from warmd.raft.errors import NotLeader, ProposalDropped
from warmd.runtime.node.driver import Driver, DriverStopped, ProposalTimeout
from warmd.statemachine.commands import Command
from warmd.statemachine.state import Applied


@asynccontextmanager
async def raft_errors() -> AsyncIterator[None]:
    """Translate Raft errors into AdminErrors with the right code."""
    try:
        yield
    except NotLeader as error:
        raise AdminError(ErrorCode.NOT_LEADER, str(error)) from None
    except ProposalDropped as error:
        code = ErrorCode.UNAVAILABLE if error.reason == ProposalDropped.NO_LEADER else ErrorCode.FAILED
        raise AdminError(code, str(error)) from None
    except ProposalTimeout as error:
        raise AdminError(ErrorCode.TIMEOUT, str(error)) from None
    except DriverStopped as error:
        raise AdminError(ErrorCode.UNAVAILABLE, str(error)) from None


async def propose_applied(driver: Driver, command: Command) -> Any:
    """Replicate `command` for an admin handler and return its applied value: Raft errors as
    their codes (`raft_errors`), a command the state machine refused as FAILED with its reason."""
    async with raft_errors():
        result = await driver.propose(command)
    if not isinstance(result, Applied):
        raise AdminError(ErrorCode.FAILED, f"refused: {result.reason}")
    return result.value
