"""The daemon's cluster commands on the admin socket: status, members, membership, transfer,
snapshots. Each handler validates its arguments (bad ones are `bad_request`) and turns the
driver's typed Raft errors into admin error codes, so warmctl can exit 75 ("retry, maybe at
the leader") for NotLeader and timeouts and 1 for a refusal.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from warmd import codec
from warmd.admin.protocol import ErrorCode
from warmd.admin.server import AdminServer
from warmd.config_table import parse_address
from warmd.errors import AdminError
from warmd.hooks.registry import HookRegistry
from warmd.ids import NODE_ID_MAX
from warmd.runtime.commands.errors import raft_errors
from warmd.runtime.commands.plugins import plugins_document
from warmd.runtime.node.driver import Driver
from warmd.runtime.node.segment import encode_record, write_file_atomically
from warmd.statemachine.commands import Heartbeat, RegisterNode
from warmd.statemachine.documents import warm_up_block
from warmd.statemachine.state import Rejected

CHECK_WRITE_COUNT_MAX = 100_000
CHECK_WRITE_WINDOW = 256  # proposals in flight at once, so they share fsyncs
CHECK_WRITE_LEASE_MS = 60_000


def _node_id(args: Mapping[str, Any], name: str = "node_id") -> int:
    value = args.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= NODE_ID_MAX:
        raise AdminError(ErrorCode.BAD_REQUEST,
                         f"{name} must be an integer 1..{NODE_ID_MAX}, got {value!r:.40}")
    return value


class ClusterCommands:
    """Handlers bound to one driver; `register(server)` adds them to the admin server."""

    def __init__(self, driver: Driver, plugins: HookRegistry | None = None) -> None:
        self._driver = driver
        self._plugins = plugins or HookRegistry()

    def register(self, server: AdminServer) -> None:
        server.register("status", self.status, summary="this node's Raft role, term and indexes")
        server.register("members", self.members, summary="the cluster's voters and learners")
        server.register("add-learner", self.add_learner, summary="add a non-voting member")
        server.register("promote", self.promote, summary="make a learner a voter")
        server.register("remove", self.remove, summary="remove a member")
        server.register("transfer-leader", self.transfer_leader, summary="hand over leadership")
        server.register("snapshot", self.snapshot, summary="snapshot and compact the log now")
        server.register("snapshot-save", self.snapshot_save, summary="write a snapshot file")
        server.register("read", self.read, summary="a linearizable read point (ReadIndex)")
        server.register("check-write", self.check_write,
                        summary="replicate COUNT heartbeats of this node (a write-path check)")

    def status(self, args: Mapping[str, Any]) -> dict[str, Any]:
        document = self._driver.status().to_document()
        machine = self._driver.applier.machine
        document["stale_fence_rejections"] = machine.state.stale_fence_rejections
        document["warm_up"] = warm_up_block(machine.state, self._driver.clock.wall_ms())
        document["plugins"] = plugins_document(self._plugins)
        return document

    def members(self, args: Mapping[str, Any]) -> dict[str, Any]:
        status = self._driver.status()
        return {"leader_id": status.leader_id, "term": status.term,
                "members": [dict(peer) for peer in status.to_document()["peers"]]}

    async def add_learner(self, args: Mapping[str, Any]) -> dict[str, Any]:
        node_id = _node_id(args)
        try:
            address = parse_address(str(args.get("address", "")))
        except ValueError as error:
            raise AdminError(ErrorCode.BAD_REQUEST, f"address: {error}") from None
        async with raft_errors():
            conf = await self._driver.add_learner(node_id, address)
        return {"voters": list(conf.voters), "learners": list(conf.learners)}

    async def promote(self, args: Mapping[str, Any]) -> dict[str, Any]:
        async with raft_errors():
            conf = await self._driver.promote(_node_id(args))
        return {"voters": list(conf.voters), "learners": list(conf.learners)}

    async def remove(self, args: Mapping[str, Any]) -> dict[str, Any]:
        async with raft_errors():
            conf = await self._driver.remove(_node_id(args))
        return {"voters": list(conf.voters), "learners": list(conf.learners)}

    async def transfer_leader(self, args: Mapping[str, Any]) -> dict[str, Any]:
        target = None if args.get("node_id") is None else _node_id(args)
        async with raft_errors():
            leader_id = await self._driver.transfer_leadership(target)
        return {"leader_id": leader_id}

    async def snapshot(self, args: Mapping[str, Any]) -> dict[str, Any]:
        async with raft_errors():
            snapshot = await self._driver.snapshot_now()
        meta = snapshot.meta
        return {"index": meta.index, "term": meta.term, "data_bytes": len(snapshot.data)}

    async def snapshot_save(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Write the newest snapshot to an absolute path, in the data directory's file format."""
        path_text = args.get("path")
        if not isinstance(path_text, str) or not os.path.isabs(path_text):
            raise AdminError(ErrorCode.BAD_REQUEST, f"path must be an absolute path, got {path_text!r}")
        path = Path(path_text)
        if not path.parent.is_dir():
            raise AdminError(ErrorCode.BAD_REQUEST, f"directory {path.parent} does not exist")
        async with raft_errors():
            snapshot = await self._driver.snapshot_now()
        record = encode_record(codec.encode(snapshot))
        try:
            await asyncio.to_thread(write_file_atomically, path.parent, path.name, record)
        except OSError as error:
            raise AdminError(ErrorCode.FAILED, f"cannot write {path}: {error.strerror}") from None
        meta = snapshot.meta
        return {"path": str(path), "index": meta.index, "term": meta.term, "bytes": len(record)}

    async def read(self, args: Mapping[str, Any]) -> dict[str, Any]:
        async with raft_errors():
            index = await self._driver.read()
            digest = await self._driver.digest()
        return {"read_index": index, "digest": digest}

    async def check_write(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Register this node (capacity 0 keeps it out of scheduling until its executor
        registers for real) and replicate `count` heartbeats; report the rate."""
        count = args.get("count", 100)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= CHECK_WRITE_COUNT_MAX:
            raise AdminError(ErrorCode.BAD_REQUEST, f"count must be 1..{CHECK_WRITE_COUNT_MAX}")
        driver = self._driver
        node_id = driver.node_id
        started_s = self._driver.clock.monotonic()
        async with raft_errors():
            if node_id not in driver.state.nodes:
                now_ms = self._driver.clock.wall_ms()
                await driver.propose(RegisterNode(
                    node_id=node_id, capacity=0, lease_ms=CHECK_WRITE_LEASE_MS, now_ms=now_ms))
            rejected = 0
            for first in range(0, count, CHECK_WRITE_WINDOW):
                window = range(first, min(count, first + CHECK_WRITE_WINDOW))
                results = await asyncio.gather(*(
                    driver.propose(Heartbeat(node_id=node_id, now_ms=self._driver.clock.wall_ms())) for _ in window
                ))
                rejected += sum(isinstance(result, Rejected) for result in results)
        elapsed_s = self._driver.clock.monotonic() - started_s
        return {"count": count, "rejected": rejected, "elapsed_s": round(elapsed_s, 4),
                "per_second": round(count / elapsed_s, 1) if elapsed_s > 0 else None,
                "applied_index": driver.applier.applied_index}
