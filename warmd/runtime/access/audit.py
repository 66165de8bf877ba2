"""The audit recorder the admin server is given: one `RecordAudit` entry through Raft per
audited call (forwarded to the leader like every proposal)."""

from __future__ import annotations

from warmd.admin.server import AuditEvent
from warmd.errors import WarmdError
from warmd.logging import get_logger
from warmd.runtime.node.driver import Driver, DriverStopped
from warmd.statemachine.access import RecordAudit
from warmd.statemachine.schema import TEXT_CHARS_MAX
from warmd.statemachine.state import Rejected

_log = get_logger("warmd.access")


def _text(value: str) -> str:
    return value[:TEXT_CHARS_MAX]


class AuditRecorder:
    """Commits each audited call as a `RecordAudit` entry (forwarded to the leader)."""

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    async def __call__(self, event: AuditEvent) -> None:
        actor = event.actor
        command = RecordAudit(
            actor=_text(actor.name), role=actor.role.name.lower(),
            token_name=_text(actor.token_name or ""), interface=actor.interface.value,
            source=_text(actor.source), action=event.action, subject=_text(event.subject),
            result=event.result, error=_text(event.error), now_ms=self._driver.clock.wall_ms())
        try:
            result = await self._driver.propose(command)
        except DriverStopped as error:  # a clean shutdown cut the call short: expected
            _log.warning("audit_not_recorded", action=event.action, actor=actor.name,
                         result=event.result, reason=str(error))
            return
        except WarmdError as error:
            _log.error("audit_not_recorded", action=event.action, actor=actor.name,
                       result=event.result, reason=str(error))
            return
        if isinstance(result, Rejected):
            _log.error("audit_not_recorded", action=event.action, actor=actor.name,
                       result=event.result, reason=result.reason)
