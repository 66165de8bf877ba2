"""Linearizability checking of a key-value client history (Wing & Gong, memoised as Porcupine).

The search tries to order the operations so that each takes effect between its call and
its return and every read sees the latest write. It memoises (set of linearized
operations, register value), which Lowe showed turns the exponential search into a
practical one, and checks each key on its own because keys are independent registers.
A write whose outcome is unknown (the client gave up) has no return: it may take effect
at any point after its call, or never, which is the same as "after everything else".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum


class OperationKind(Enum):
    PUT = "put"
    GET = "get"


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation on one key; `return_ticks` None means the outcome is unknown."""

    client_id: int
    kind: OperationKind
    key: str
    value: str | None  # PUT: the value written; GET: the value read (None: key absent)
    call_ticks: int
    return_ticks: int | None

    def __post_init__(self) -> None:
        if self.return_ticks is not None and self.return_ticks < self.call_ticks:
            raise ValueError(
                f"operation returns at {self.return_ticks} before its call at {self.call_ticks}"
            )


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    """Whether the history is linearizable; on failure, the first key that is not."""

    linearizable: bool
    keys_checked: int
    operations_checked: int
    states_explored: int
    failing_key: str | None = None
    failing_history: tuple[Operation, ...] = ()

    def describe(self) -> str:
        """One human line (plus the failing key's operations) for reports."""
        if self.linearizable:
            return (
                f"linearizable: {self.operations_checked} operations on "
                f"{self.keys_checked} keys, {self.states_explored} states explored"
            )
        lines = [f"NOT linearizable on key {self.failing_key!r}:"]
        for operation in self.failing_history:
            end = "?" if operation.return_ticks is None else operation.return_ticks
            lines.append(
                f"  client {operation.client_id} {operation.kind.value}"
                f"({operation.value!r}) [{operation.call_ticks}, {end}]"
            )
        return "\n".join(lines)


def check_history(operations: Iterable[Operation]) -> LinearizabilityResult:
    """Check a whole key-value history, one key at a time; stops at the first bad key."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for operation in operations:
        if operation.kind is OperationKind.GET and operation.return_ticks is None:
            continue  # a read that never answered constrains nothing
        by_key[operation.key].append(operation)
    explored_total = 0
    checked = 0
    for key in sorted(by_key):
        history = by_key[key]
        linearizable, explored = check_register(history)
        explored_total += explored
        checked += len(history)
        if not linearizable:
            return LinearizabilityResult(
                False, len(by_key), checked, explored_total, key, tuple(history)
            )
    return LinearizabilityResult(True, len(by_key), checked, explored_total)


def check_register(history: Sequence[Operation]) -> tuple[bool, int]:
    """Check one register's history; returns (linearizable, states explored).

    The history is laid out as a doubly linked list of call and return events sorted
    by time (calls before returns at equal times, so touching operations count as
    concurrent: ticks are coarse). Lifting an operation removes both its events.
    """
    events = _events(history)
    count = len(events)
    # Node 0 is the head sentinel; node n+1 holds events[n]; -1 ends the list.
    next_node = [*range(1, count + 1), -1]
    prev_node = [-1, *range(count)]
    match = [0] * (count + 1)
    call_of: dict[int, int] = {}
    for position, (_time, is_return, operation_number) in enumerate(events, start=1):
        if is_return:
            match[call_of[operation_number]] = position
        else:
            call_of[operation_number] = position
    explored = _search(history, events, next_node, prev_node, match)
    return explored >= 0, abs(explored)


def _events(history: Sequence[Operation]) -> list[tuple[float, int, int]]:
    events: list[tuple[float, int, int]] = []
    for operation_number, operation in enumerate(history):
        end = math.inf if operation.return_ticks is None else operation.return_ticks
        events.append((operation.call_ticks, 0, operation_number))
        events.append((end, 1, operation_number))
    events.sort()
    return events


def _search(
    history: Sequence[Operation],
    events: list[tuple[float, int, int]],
    next_node: list[int],
    prev_node: list[int],
    match: list[int],
) -> int:
    """The Wing & Gong loop; returns states explored, negated when not linearizable."""
    state: Hashable = None
    linearized = 0
    seen: set[tuple[int, Hashable]] = set()
    stack: list[tuple[int, Hashable]] = []
    node = next_node[0]
    while next_node[0] != -1:
        _time, is_return, operation_number = events[node - 1]
        if not is_return:
            accepted, new_state = _step(state, history[operation_number])
            if accepted:
                marker = (linearized | (1 << operation_number), new_state)
                if marker not in seen:
                    seen.add(marker)
                    stack.append((node, state))
                    state, linearized = new_state, marker[0]
                    _lift(node, next_node, prev_node, match)
                    node = next_node[0]
                    continue
            node = next_node[node]
            continue
        if not stack:
            return -max(len(seen), 1)
        node, state = stack.pop()
        linearized &= ~(1 << events[node - 1][2])
        _unlift(node, next_node, prev_node, match)
        node = next_node[node]
    return len(seen)


def _step(state: Hashable, operation: Operation) -> tuple[bool, Hashable]:
    """The register model: a put always succeeds; a get must see the current value."""
    if operation.kind is OperationKind.PUT:
        return True, operation.value
    return operation.value == state, state


def _lift(node: int, next_node: list[int], prev_node: list[int], match: list[int]) -> None:
    partner = match[node]
    next_node[prev_node[node]] = next_node[node]
    prev_node[next_node[node]] = prev_node[node]
    next_node[prev_node[partner]] = next_node[partner]
    if next_node[partner] != -1:
        prev_node[next_node[partner]] = prev_node[partner]


def _unlift(node: int, next_node: list[int], prev_node: list[int], match: list[int]) -> None:
    partner = match[node]
    next_node[prev_node[partner]] = partner
    if next_node[partner] != -1:
        prev_node[next_node[partner]] = partner
    next_node[prev_node[node]] = node
    prev_node[next_node[node]] = node
