"""A state machine fed consecutive log indexes, as the applier feeds it after commit.

Simulations, the scheduler's tests and model checkers use it to play commands without
a Raft log; the index it assigns is what a fence becomes.
"""

from __future__ import annotations

from collections.abc import Iterable

from warmd.statemachine.commands import Command
from warmd.statemachine.machine import StateMachine
from warmd.statemachine.state import ApplyResult, MachineState


class Ledger:
    """A StateMachine plus the next log index."""

    def __init__(self, machine: StateMachine | None = None) -> None:
        self.machine = machine or StateMachine()
        self.next_index = self.machine.state.applied_index + 1

    @property
    def state(self) -> MachineState:
        return self.machine.state

    def append(self, command: Command) -> ApplyResult:
        """Apply `command` at the next index, as if it had just committed."""
        index = self.next_index
        self.next_index += 1
        return self.machine.apply(index, command)

    def append_all(self, commands: Iterable[Command]) -> list[ApplyResult]:
        """Apply commands in order, as one leader's proposals commit."""
        return [self.append(command) for command in commands]
