"""How long the leader has not heard from each node, by the leader's own monotonic clock.

The replicated state counts each node's heartbeats; the leader notes when it sees a count
change. A node's silence is the time since then, so neither a node's clock (an hour ahead
or behind) nor a jump of the leader's wall clock can make a dead node look alive or a live
one dead. A new leader knows nothing yet and gives every node a full lease from the moment
it starts watching: a leader change delays a death by at most one lease, never hastens it.
"""

from __future__ import annotations

from warmd.clock import Clock
from warmd.statemachine.state import MachineState


class HeardTracker:
    """When this leader last saw each node's heartbeat count move."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._seen: dict[int, tuple[int, float]] = {}  # node id -> (count, monotonic s)

    def observe(self, state: MachineState) -> None:
        """Note every count that moved since the last look (call on each heartbeat change)."""
        now_s = self._clock.monotonic()
        for node_id, node in state.nodes.items():
            seen = self._seen.get(node_id)
            if seen is None or seen[0] != node.heartbeats:
                self._seen[node_id] = (node.heartbeats, now_s)
        for node_id in self._seen.keys() - state.nodes.keys():
            del self._seen[node_id]

    def silence_ms(self, state: MachineState) -> dict[int, int]:
        """Milliseconds since each node was last heard from, as this leader saw it."""
        self.observe(state)
        now_s = self._clock.monotonic()
        return {node_id: int((now_s - seen_s) * 1000)
                for node_id, (_, seen_s) in self._seen.items()}

    def forget(self) -> None:
        """Not the leader (any more): the next leadership starts watching afresh."""
        self._seen.clear()
