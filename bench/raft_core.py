"""Entries committed per CPU-second by the pure Raft core: 3 nodes in one process, no faults.

Proposals go to the leader in batches of 64; after each batch the in-process network
delivers every message (each Ready persisted into MemoryStorage first, as a driver
does) until the batch is committed and applied on all nodes. This is the ceiling
the real node (disk, sockets, event loop) can approach. Not a test.

    python bench/raft_core.py [--entries N] [--batch 64] [--payload-bytes 100] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from collections import deque

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.storage import MemoryStorage
from warmd.raft.types import ConfState, Message, Role


class Cluster:
    """Three RaftNodes and a FIFO queue; persist each Ready, then deliver its messages."""

    def __init__(self, node_count: int) -> None:
        conf_state = ConfState(voters=tuple(range(1, node_count + 1)))
        self.storages = {n: MemoryStorage(conf_state) for n in conf_state.voters}
        self.nodes = {
            n: RaftNode(RaftConfig(node_id=n), self.storages[n], random.Random(n))
            for n in conf_state.voters
        }
        self.queue: deque[Message] = deque()
        self.applied = dict.fromkeys(self.nodes, 0)

    def drain(self) -> None:
        nodes, queue = self.nodes, self.queue
        while True:
            for node_id, node in nodes.items():
                while node.has_ready():
                    ready = node.ready()
                    storage = self.storages[node_id]
                    storage.append(ready.entries)
                    if ready.hard_state is not None:
                        storage.set_hard_state(ready.hard_state)
                    queue.extend(ready.messages)
                    self.applied[node_id] += len(ready.committed_entries)
                    node.advance(ready)
            if not queue:
                return
            while queue:
                message = queue.popleft()
                nodes[message.to].step(message)


def run(entries: int, batch: int, payload_bytes: int, node_count: int) -> float:
    cluster = Cluster(node_count)
    leader = cluster.nodes[1]
    leader.campaign()
    cluster.drain()
    assert leader.role == Role.LEADER
    payload = b"x" * payload_bytes
    start_applied = min(cluster.applied.values())
    started = time.process_time()
    for _ in range(entries // batch):
        for _ in range(batch):
            leader.propose(payload)
        cluster.drain()
    for node in cluster.nodes.values():
        node.tick()  # heartbeats carry the last commit index to the followers
    cluster.drain()
    elapsed = time.process_time() - started
    committed = min(cluster.applied.values()) - start_applied
    assert committed >= entries // batch * batch, (committed, cluster.applied)
    return committed / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--quick", action="store_true", help="20,000 entries instead of 200,000")
    options = parser.parse_args()
    if options.quick:
        options.entries = min(options.entries, 20_000)
    if options.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    rate = run(options.entries, options.batch, options.payload_bytes, options.nodes)
    if options.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    print(
        f"entries_per_cpu_s={rate:.0f} nodes={options.nodes} batch={options.batch} "
        f"payload_bytes={options.payload_bytes} entries={options.entries}"
    )


if __name__ == "__main__":
    main()
