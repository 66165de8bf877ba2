"""Forced recovery after a permanently lost quorum: make one node a new one-voter cluster.

When a majority of voters is gone for good, no leader can ever be elected again. The
operator stops the survivor, runs `warmd recover --force-new-cluster` on it, and starts it:
its state (the snapshot plus every entry it knows to be *committed*; uncommitted entries are
dropped, they were never acknowledged) becomes a snapshot whose configuration holds only
this node, at one index past everything it had, in a term past every term it saw. The other
hosts then rejoin with empty data directories (`warmctl add-learner`, `promote`).

The same operation can start from a snapshot file written by `warmctl snapshot save` into
an empty data directory: that is how a cluster is restored from a backup.

Both lose whatever the lost majority committed that this node never heard of, which is why
the command refuses to run unless asked explicitly and while a daemon answers on the socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from warmd.config import Config
from warmd.errors import WarmdError
from warmd.raft.types import ConfState, HardState, Snapshot, SnapshotMeta
from warmd.runtime.daemon import open_storage
from warmd.runtime.node.applier import Applier
from warmd.runtime.node.disk import DiskStorage
from warmd.runtime.node.segment import read_single_record
from warmd.statemachine.machine import StateMachine

SNAPSHOT_FILE_BYTES_MAX = 1 << 30
ENTRIES_PAGE_BYTES = 16 << 20


class RecoveryRefused(WarmdError):
    """The recovery cannot be done safely as asked (the message says why)."""


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    node_id: int
    source: str  # "data directory" or the snapshot file's path
    recovered_index: int  # the last committed index of the old cluster carried over
    new_index: int  # the new snapshot's index (recovered_index + 1 or more)
    new_term: int
    dropped_entries: int  # uncommitted entries discarded from the old log


def force_new_cluster(config: Config, snapshot_file: Path | None = None) -> RecoveryResult:
    """Rewrite this node's data directory as a one-voter cluster; see the module docstring.

    Raises:
        RecoveryRefused: the snapshot file is unreadable, or the data directory is not empty
            when restoring from a file.
        DiskCorruption, DiskFailed: the data directory is damaged or unwritable.
    """
    storage = open_storage(config)
    try:
        applier = Applier(StateMachine(), {})
        if snapshot_file is not None:
            recovered_index, term, dropped = _from_file(storage, applier, snapshot_file)
        else:
            recovered_index, term, dropped = _from_log(storage, applier)
        new_index = max(recovered_index, storage.snapshot().meta.index) + 1
        new_term = term + 1
        node_id = config.node.node_id
        applier.addresses = {node_id: config.node.advertise}
        meta = SnapshotMeta(index=new_index, term=new_term, conf_state=ConfState(voters=(node_id,)))
        snapshot = Snapshot(meta=meta, data=applier.snapshot_data())
        storage.save(HardState(term=new_term, vote=0, commit=new_index), (), snapshot, True)
    finally:
        storage.close()
    return RecoveryResult(node_id, str(snapshot_file) if snapshot_file else "data directory",
                          recovered_index, new_index, new_term, dropped)


def _from_log(storage: DiskStorage, applier: Applier) -> tuple[int, int, int]:
    """Apply the snapshot and the committed entries; returns (commit, highest term, dropped)."""
    base = storage.snapshot()
    if base.meta.index:
        applier.restore(base)
    hard_state, _ = storage.initial_state()
    commit = hard_state.commit
    lo = base.meta.index + 1
    while lo <= commit:
        page = storage.entries(lo, commit + 1, ENTRIES_PAGE_BYTES)
        applier.apply(page)
        lo = page[-1].index + 1
    last_term = storage.term(storage.last_index())
    return max(commit, base.meta.index), max(hard_state.term, last_term), storage.last_index() - commit


def _from_file(storage: DiskStorage, applier: Applier, path: Path) -> tuple[int, int, int]:
    if storage.last_index() or storage.snapshot().meta.index:
        raise RecoveryRefused(
            f"{path}: restoring from a snapshot file needs an empty data directory; move "
            "the current one aside first")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RecoveryRefused(f"cannot read snapshot file {path}: {error.strerror}") from None
    if len(data) > SNAPSHOT_FILE_BYTES_MAX:
        raise RecoveryRefused(f"{path} is larger than {SNAPSHOT_FILE_BYTES_MAX} bytes")
    value = read_single_record(data, str(path), SNAPSHOT_FILE_BYTES_MAX)
    if not isinstance(value, Snapshot) or value.meta.index == 0:
        raise RecoveryRefused(f"{path} does not hold a snapshot (write one with "
                              "`warmctl snapshot save FILE`)")
    applier.restore(value)
    return value.meta.index, value.meta.term, 0
