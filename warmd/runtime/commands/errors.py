"""Raft and driver errors as the admin protocol's error codes, for every command handler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from warmd.admin.protocol import ErrorCode
from warmd.errors import AdminError
from warmd.raft.errors import NotLeader, ProposalDropped
from warmd.runtime.node.driver import DriverStopped, ProposalTimeout


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
