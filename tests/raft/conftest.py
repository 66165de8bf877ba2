"""A small in-test network of RaftNodes over MemoryStorage (etcd's raft_test.go `network`).

Each Ready is persisted into the node's MemoryStorage before its messages are
queued, so a crash (`restart`) keeps exactly what a real disk would keep.
Delivery is FIFO and deterministic; links can be cut, nodes isolated, and
messages dropped by a filter.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

import msgpack
import pytest

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfState, EntryType, Message, ReadState, Ready, Role

MessageFilter = Callable[[Message], bool]


class Network:
    """N RaftNodes wired by an in-memory FIFO queue."""

    def __init__(
        self, node_count: int = 3, *, learners: Iterable[int] = (), seed: int = 0,
        **config_fields: object,
    ) -> None:
        learner_ids = tuple(learners)
        voters = tuple(node for node in range(1, node_count + 1) if node not in learner_ids)
        self.conf_state = ConfState(voters=voters, learners=learner_ids)
        self.config_fields = config_fields
        self.seed = seed
        self.storages: dict[int, MemoryStorage] = {}
        self.nodes: dict[int, RaftNode] = {}
        self.app_state: dict[int, list[bytes]] = {}
        self.read_states: dict[int, list[ReadState]] = {}
        self.readies: dict[int, list[Ready]] = {}
        self.queue: deque[Message] = deque()
        self.cut_links: set[tuple[int, int]] = set()
        self.drop: MessageFilter | None = None
        self.sent: list[Message] = []
        self.sent_dropped: list[bool] = []  # parallel to `sent`: lost on the way
        # (len(sent) when it was handled, node id, Ready): where each Ready falls among the sends
        self.ready_log: list[tuple[int, int, Ready]] = []
        for node_id in range(1, node_count + 1):
            self.add_node(node_id, MemoryStorage(self.conf_state))

    def config(self, node_id: int) -> RaftConfig:
        return RaftConfig(node_id=node_id, **self.config_fields)  # type: ignore[arg-type]

    def add_node(self, node_id: int, storage: MemoryStorage) -> RaftNode:
        self.storages[node_id] = storage
        self.app_state.setdefault(node_id, [])
        self.read_states.setdefault(node_id, [])
        self.readies.setdefault(node_id, [])
        node = RaftNode(self.config(node_id), storage, random.Random(self.seed * 1000 + node_id))
        self.nodes[node_id] = node
        return node

    def restart(self, node_id: int) -> RaftNode:
        """Crash and restart: only what was persisted survives; the app replays from its snapshot."""
        storage = self.storages[node_id]
        snapshot = storage.snapshot()
        self.app_state[node_id] = list(msgpack.unpackb(snapshot.data)) if snapshot.data else []
        self.queue = deque(m for m in self.queue if m.to != node_id)
        return self.add_node(node_id, storage)

    # --- driving ---

    def process_ready(self, node_id: int) -> None:
        node, storage = self.nodes[node_id], self.storages[node_id]
        while node.has_ready():
            ready = node.ready()
            self.readies[node_id].append(ready)
            self.ready_log.append((len(self.sent), node_id, ready))
            if ready.snapshot is not None:
                storage.apply_snapshot(ready.snapshot)
                self.app_state[node_id] = list(msgpack.unpackb(ready.snapshot.data or b"\x90"))
            storage.append(ready.entries)
            if ready.hard_state is not None:
                storage.set_hard_state(ready.hard_state)
            if ready.compaction is not None:
                storage.save_compaction(ready.compaction)
            for message in ready.messages:
                dropped = self._dropped(message)
                self.sent.append(message)
                self.sent_dropped.append(dropped)
                if not dropped:
                    self.queue.append(message)
            for entry in ready.committed_entries:
                if entry.type == EntryType.NORMAL and entry.data:
                    self.app_state[node_id].append(entry.data)
            self.read_states[node_id].extend(ready.read_states)
            node.advance(ready)

    def _dropped(self, message: Message) -> bool:
        if (message.from_id, message.to) in self.cut_links:
            return True
        if message.to not in self.nodes:
            return True
        return self.drop is not None and self.drop(message)

    def stabilize(self, max_steps: int = 100_000) -> None:
        """Deliver messages until no node has anything to do."""
        for _ in range(max_steps):
            for node_id in self.nodes:
                self.process_ready(node_id)
            if not self.queue:
                return
            message = self.queue.popleft()
            self.nodes[message.to].step(message)
        raise AssertionError("network did not stabilize")

    def tick(self, count: int = 1, nodes: Iterable[int] | None = None) -> None:
        """Tick the given nodes (all by default) `count` times, stabilizing after each tick."""
        targets = list(nodes) if nodes is not None else list(self.nodes)
        for _ in range(count):
            for node_id in targets:
                self.nodes[node_id].tick()
            self.stabilize()

    def elect(self, node_id: int) -> RaftNode:
        self.nodes[node_id].campaign()
        self.stabilize()
        node = self.nodes[node_id]
        assert node.role == Role.LEADER, f"node {node_id} did not win: {node.status()}"
        return node

    def propose(self, node_id: int, *commands: bytes) -> None:
        for command in commands:
            self.nodes[node_id].propose(command)
        self.stabilize()

    def snapshot_app(self, node_id: int) -> None:
        """Hand node `node_id`'s application state at its applied index to compact()."""
        node = self.nodes[node_id]
        node.compact(node.log.applied, msgpack.packb(self.app_state[node_id]))
        self.process_ready(node_id)

    # --- faults ---

    def cut(self, first: int, second: int) -> None:
        self.cut_links |= {(first, second), (second, first)}

    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut(node_id, other)

    def heal(self) -> None:
        self.cut_links.clear()
        self.drop = None

    # --- views ---

    def leaders(self) -> list[int]:
        return [node_id for node_id, node in self.nodes.items() if node.role == Role.LEADER]

    def log_terms(self, node_id: int) -> list[tuple[int, int]]:
        log = self.nodes[node_id].log
        return [(entry.index, entry.term) for entry in log.slice(log.first_index(), log.last_index() + 1)]


@pytest.fixture
def make_network() -> Callable[..., Network]:
    """A factory: make_network(3, pre_vote=False, ...) builds a Network."""
    return Network
