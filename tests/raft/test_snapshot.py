"""Snapshots: compaction handed in by the application, and chunked InstallSnapshot with loss."""

from __future__ import annotations

import random

import msgpack
import pytest

from warmd.raft.config import RaftConfig
from warmd.raft.core import RaftNode
from warmd.raft.errors import Compacted, SnapshotOutOfDate
from warmd.raft.types import MessageType, ProgressState, Role

CHUNK = 64


def lagging_cluster(make_network, commands: int = 30, **fields: object):
    """Three nodes; node 3 misses `commands` writes, then the leader compacts its log."""
    net = make_network(3, snapshot_chunk_bytes=CHUNK, **fields)
    net.elect(1)
    net.isolate(3)
    for number in range(commands):
        net.propose(1, f"command-{number:04d}".encode())
    net.tick(1, nodes=[1, 2])
    net.snapshot_app(1)
    return net


def snapshot_chunks(net, to: int) -> list[int]:
    return [m.chunk_offset for m in net.sent if m.type == MessageType.SNAPSHOT and m.to == to]


def test_compact_hands_a_snapshot_to_storage_and_drops_entries(make_network) -> None:
    """The application's snapshot goes out in Ready.compaction; afterwards old entries are Compacted."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"a", b"b", b"c")
    leader = net.nodes[1]
    applied = leader.log.applied
    leader.compact(applied, msgpack.packb([b"a", b"b", b"c"]))
    ready = leader.ready()
    assert ready.compaction is not None and ready.compaction.meta.index == applied
    assert ready.compaction.meta.conf_state.voters == (1, 2, 3)
    assert ready.snapshot is None  # the application must not restore its own snapshot
    net.storages[1].save_compaction(ready.compaction)
    leader.advance(ready)
    assert leader.log.first_index() == applied + 1
    with pytest.raises(Compacted):
        leader.log.term(applied - 1)
    with pytest.raises(Compacted):
        net.storages[1].entries(1, 2, 1 << 20)


def test_compact_rejects_unapplied_and_old_indexes(make_network) -> None:
    """compact() refuses an index past applied (ValueError) and one already covered (SnapshotOutOfDate)."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"a")
    leader = net.nodes[1]
    with pytest.raises(ValueError, match="applied"):
        leader.compact(leader.log.applied + 1, b"")
    leader.compact(leader.log.applied, b"")
    with pytest.raises(SnapshotOutOfDate):
        leader.compact(leader.log.applied, b"")


def test_lagging_follower_receives_snapshot_in_chunks(make_network) -> None:
    """A follower behind the compacted log gets InstallSnapshot in chunks and reaches the same state."""
    net = lagging_cluster(make_network)
    snapshot = net.storages[1].snapshot()
    net.heal()
    net.tick(3)
    offsets = snapshot_chunks(net, 3)
    expected_chunks = -(-len(snapshot.data) // CHUNK)
    assert expected_chunks > 3
    assert offsets == [CHUNK * n for n in range(expected_chunks)]  # each chunk exactly once
    assert net.storages[3].snapshot().meta.index == snapshot.meta.index
    assert net.app_state[3] == net.app_state[1]
    net.propose(1, b"after")
    net.tick(1)
    assert net.app_state[3][-1] == b"after"
    peer = {p.node_id: p for p in net.nodes[1].status().progress}[3]
    assert peer.state == ProgressState.REPLICATE


def test_lost_chunk_is_resent_from_its_offset_not_from_zero(make_network) -> None:
    """§7 chunked InstallSnapshot: after a lost chunk the leader resumes at the follower's offset."""
    net = lagging_cluster(make_network)
    lost = {"done": False}

    def drop_second_chunk(message) -> bool:
        if message.type == MessageType.SNAPSHOT and message.chunk_offset == CHUNK and not lost["done"]:
            lost["done"] = True
            return True
        return False

    net.heal()
    net.drop = drop_second_chunk
    net.tick(4)
    offsets = snapshot_chunks(net, 3)
    assert lost["done"]
    assert offsets.count(0) == 1  # never restarted from zero
    assert offsets.count(CHUNK) == 2  # the lost chunk went again
    assert net.app_state[3] == net.app_state[1]


def test_lost_final_chunk_is_resent_after_stall(make_network) -> None:
    """When the last chunk vanishes (no later chunk reveals the gap), heartbeats trigger a resend."""
    net = lagging_cluster(make_network)
    dropped = []

    def drop_final_chunk_once(message) -> bool:
        if message.type == MessageType.SNAPSHOT and message.chunk_done and not dropped:
            dropped.append(message.chunk_offset)
            return True
        return False

    net.heal()
    net.drop = drop_final_chunk_once
    net.tick(8)
    offsets = snapshot_chunks(net, 3)
    assert dropped and offsets.count(dropped[0]) == 2
    assert offsets.count(0) == 1
    assert net.app_state[3] == net.app_state[1]


def test_follower_restarted_mid_snapshot_asks_to_restart_from_zero(make_network) -> None:
    """A follower that lost its partial snapshot (crash) rejects later chunks; the leader restarts at 0."""
    net = lagging_cluster(make_network)
    net.heal()
    seen = []

    def crash_after_two_chunks(message) -> bool:
        if message.type == MessageType.SNAPSHOT and message.to == 3:
            seen.append(message.chunk_offset)
            if len(seen) == 3:
                net.restart(3)
        return False

    net.drop = crash_after_two_chunks
    net.tick(6)
    offsets = snapshot_chunks(net, 3)
    assert offsets.count(0) == 2
    assert net.app_state[3] == net.app_state[1]


def test_restart_from_a_snapshot_restores_configuration_and_applied(make_network) -> None:
    """A node restarted on compacted storage starts applied at the snapshot and replays only the rest."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"a", b"b")
    net.tick(1)
    net.snapshot_app(2)
    net.propose(1, b"c")
    net.tick(1)
    restarted = net.restart(2)
    assert restarted.log.applied == net.storages[2].snapshot().meta.index
    assert restarted.conf_state.voters == (1, 2, 3)
    net.stabilize()
    assert net.app_state[2] == [b"a", b"b", b"c"]


def test_applied_index_in_config_skips_already_applied_entries(make_network) -> None:
    """RaftConfig.applied_index tells a restarted node what the application already applied."""
    net = make_network(3)
    net.elect(1)
    net.propose(1, b"a", b"b")
    net.tick(1)
    storage = net.storages[2]
    node = RaftNode(RaftConfig(node_id=2, applied_index=3), storage, random.Random(5))
    assert [e.data for e in node.ready().committed_entries] == []
    with pytest.raises(ValueError, match="applied_index"):
        RaftNode(RaftConfig(node_id=2, applied_index=99), storage, random.Random(5))


def test_snapshot_with_empty_data_installs(make_network) -> None:
    """A zero-byte snapshot is one chunk flagged done, and still installs."""
    net = make_network(3, snapshot_chunk_bytes=CHUNK)
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"x")
    net.tick(1, nodes=[1, 2])
    leader = net.nodes[1]
    leader.compact(leader.log.applied, b"")
    net.process_ready(1)
    net.heal()
    net.app_state[3] = [b"stale"]
    net.tick(3)
    snapshot_index = net.storages[1].snapshot().meta.index
    assert [m.chunk_done for m in net.sent if m.type == MessageType.SNAPSHOT] == [True]
    assert net.storages[3].snapshot().meta.index == snapshot_index
    assert net.app_state[3] == []  # restored from the (empty) snapshot, replacing stale state
    assert net.nodes[3].role == Role.FOLLOWER


def test_chunks_from_a_new_leader_do_not_mix_with_an_old_leaders() -> None:
    """A partial snapshot from one leader is not completed with another leader's bytes."""
    from warmd.raft.storage import MemoryStorage
    from warmd.raft.types import ConfState, Message, SnapshotMeta

    node = RaftNode(RaftConfig(node_id=3), MemoryStorage(ConfState(voters=(1, 2, 3))), random.Random(3))
    meta = SnapshotMeta(index=10, term=2, conf_state=ConfState(voters=(1, 2, 3)))
    node.step(Message(type=MessageType.SNAPSHOT, from_id=1, to=3, term=2, snapshot_meta=meta,
                      chunk_offset=0, chunk_data=b"a" * CHUNK))
    node.step(Message(type=MessageType.SNAPSHOT, from_id=2, to=3, term=3, snapshot_meta=meta,
                      chunk_offset=CHUNK, chunk_data=b"b" * CHUNK, chunk_done=True))
    replies = [m for m in node.ready().messages if m.type == MessageType.SNAPSHOT_RESPONSE]
    assert [(m.to, m.chunk_offset, m.reject) for m in replies] == [(1, CHUNK, False), (2, 0, True)]
    assert node.log.committed == 0


def test_restart_replays_committed_entries_in_bounded_readies(make_network) -> None:
    """max_committed_bytes_per_ready splits a long replay into several Readies, in order."""
    net = make_network(3, max_committed_bytes_per_ready=100)
    net.elect(1)
    net.propose(1, *[b"%02d" % n + b"." * 30 for n in range(10)])
    net.tick(1)
    readies_before = len(net.readies[2])
    net.restart(2)
    net.process_ready(2)
    replay = net.readies[2][readies_before:]
    batches = [len(r.committed_entries) for r in replay if r.committed_entries]
    assert len(batches) > 3 and max(batches) <= 3
    assert net.app_state[2] == net.app_state[1]
