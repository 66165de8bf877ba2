"""Golden interaction scripts (etcd's testdata/*.txt): commands in, every message and effect out.

Each file in tests/raft/testdata/ is a sequence of blocks:

    # optional comments
    command arg ...
    ----
    expected output

The runner replays the commands against the in-test Network and compares the whole
regenerated file with the stored one. The output shows every message sent and, just
before the messages it let out, each Ready that persists something: its hard state,
entries or snapshot, and `sync` when it must be fsynced ("persist before send"). `WARMD_REWRITE=1 pytest tests/raft/test_interaction.py`
rewrites the files; review the diff before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from warmd.raft.confchange import decode_conf_change
from warmd.raft.errors import RaftError
from warmd.raft.types import (
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    Message,
    MessageType,
    Ready,
)

TESTDATA = Path(__file__).parent / "testdata"
CHANGE_KINDS = {
    "add-voter": ConfChangeType.ADD_VOTER,
    "add-learner": ConfChangeType.ADD_LEARNER,
    "remove": ConfChangeType.REMOVE_NODE,
}


def describe_entry(entry: Entry) -> str:
    text = f"{entry.term}/{entry.index}"
    if entry.type == EntryType.CONF_CHANGE:
        change = decode_conf_change(entry.data)
        return f"{text}:{change.type.name}({change.node_id})"
    return f"{text}:{entry.data.decode()}" if entry.data else text


def describe_ready(node_id: int, ready: Ready) -> str:
    """A Ready's persistence work (etcd's data-driven Ready dumps): hard state, entries,
    snapshot, and whether it must be synced; "" when it persists nothing."""
    parts = []
    if ready.hard_state is not None:
        hard = ready.hard_state
        parts.append(f"hs=term:{hard.term} vote:{hard.vote} commit:{hard.commit}")
    if ready.entries:
        parts.append(f"entries=[{' '.join(describe_entry(entry) for entry in ready.entries)}]")
    if ready.snapshot is not None:
        parts.append(f"snapshot={ready.snapshot.meta.term}/{ready.snapshot.meta.index}")
    if not parts:
        return ""
    return f"{node_id} ready: {' '.join(parts)}" + (" sync" if ready.must_sync else "")


def describe(message: Message) -> str:
    kind = message.type
    head = f"{message.from_id}->{message.to} {kind.name} term={message.term}"
    if kind == MessageType.APPEND:
        entries = " ".join(describe_entry(e) for e in message.entries)
        return f"{head} prev={message.log_term}/{message.index} commit={message.commit} [{entries}]"
    if kind == MessageType.APPEND_RESPONSE:
        if message.reject:
            return f"{head} reject index={message.index} hint={message.reject_term}/{message.reject_hint}"
        return f"{head} index={message.index}"
    if kind in (MessageType.VOTE, MessageType.PRE_VOTE):
        return f"{head} last={message.log_term}/{message.index}" + (" transfer" if message.context else "")
    if kind in (MessageType.VOTE_RESPONSE, MessageType.PRE_VOTE_RESPONSE):
        return head + (" reject" if message.reject else " granted")
    if kind in (MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESPONSE):
        commit = f" commit={message.commit}" if kind == MessageType.HEARTBEAT else ""
        return head + commit + (f" ctx={message.context.decode()}" if message.context else "")
    if kind == MessageType.SNAPSHOT:
        meta = message.snapshot_meta
        assert meta is not None
        done = " done" if message.chunk_done else ""
        return f"{head} snap={meta.term}/{meta.index} offset={message.chunk_offset} bytes={len(message.chunk_data)}{done}"
    if kind == MessageType.SNAPSHOT_RESPONSE:
        return f"{head} snap={message.index} offset={message.chunk_offset}" + (" reject" if message.reject else "")
    if kind == MessageType.PROPOSE:
        return f"{head} [{' '.join(describe_entry(e) for e in message.entries)}]"
    if kind in (MessageType.READ_INDEX, MessageType.READ_INDEX_RESPONSE):
        return f"{head} index={message.index} ctx={message.context.decode()}"
    if kind == MessageType.TRANSFER_LEADER:
        return f"{head} target={message.index}"
    return head


class Interaction:
    """Runs one script's commands against a Network and renders their output."""

    def __init__(self, make_network) -> None:
        self.make_network = make_network
        self.net = None

    def run(self, words: list[str]) -> list[str]:
        command, args = words[0], words[1:]
        if command == "cluster":
            return self._cluster(args)
        net = self.net
        assert net is not None, "the first command must be `cluster`"
        sent_before, readies_before = len(net.sent), len(net.ready_log)
        applied_before = {n: len(state) for n, state in net.app_state.items()}
        reads_before = {n: len(states) for n, states in net.read_states.items()}
        lines = self._dispatch(command, [int(a) if a.isdigit() else a for a in args])
        readies = [(position, describe_ready(node_id, ready))
                   for position, node_id, ready in net.ready_log[readies_before:]]
        for position, (message, dropped) in enumerate(
            zip(net.sent[sent_before:], net.sent_dropped[sent_before:], strict=True),
            start=sent_before,
        ):
            lines += [text for at, text in readies if at == position and text]
            lines.append(describe(message) + (" (dropped)" if dropped else ""))
        lines += [text for at, text in readies if at >= len(net.sent) and text]
        for node_id, state in net.app_state.items():
            if len(state) != applied_before.get(node_id, 0):
                lines.append(f"{node_id} app: {' '.join(d.decode() for d in state) or '(empty)'}")
        for node_id, states in net.read_states.items():
            for state in states[reads_before.get(node_id, 0):]:
                lines.append(f"{node_id} read ctx={state.context.decode()} index={state.index}")
        return lines or ["ok"]

    def _cluster(self, args: list[str]) -> list[str]:
        options = dict(arg.split("=") for arg in args)
        voters = int(options.pop("nodes", "3"))
        learners = tuple(int(n) for n in options.pop("learners", "").split(",") if n)
        fields = {key: (value == "true") if value in ("true", "false") else int(value)
                  for key, value in options.items()}
        self.net = self.make_network(voters + len(learners), learners=learners, **fields)
        return ["ok"]

    def _dispatch(self, command: str, args: list) -> list[str]:
        net = self.net
        try:
            if command == "campaign":
                net.nodes[args[0]].campaign()
            elif command == "propose":
                net.nodes[args[0]].propose(args[1].encode())
            elif command == "conf-change":
                net.nodes[args[0]].propose_conf_change(ConfChange(CHANGE_KINDS[args[1]], args[2]))
            elif command == "transfer":
                net.nodes[args[0]].transfer_leadership(args[1])
            elif command == "read-index":
                net.nodes[args[0]].read_index(args[1].encode())
            elif command == "compact":
                net.snapshot_app(args[0])
                return [f"{args[0]} first_index={net.nodes[args[0]].log.first_index()}"]
            else:
                return self._network_command(command, args)
        except RaftError as error:
            return [f"error: {type(error).__name__}: {error}"]
        return []

    def _network_command(self, command: str, args: list) -> list[str]:
        net = self.net
        if command == "stabilize":
            net.stabilize()
        elif command == "tick":
            nodes = args[1:] or None
            net.tick(args[0], nodes=nodes)
        elif command == "isolate":
            net.isolate(args[0])
        elif command == "cut":
            net.cut(args[0], args[1])
        elif command == "heal":
            net.heal()
        elif command == "drop":
            net.drop = self._drop_filter(args)
        elif command == "restart":
            net.restart(args[0])
        elif command == "status":
            return [self._status(node_id) for node_id in sorted(net.nodes)]
        else:
            raise ValueError(f"unknown command {command!r}")
        return []

    @staticmethod
    def _drop_filter(args: list):
        """drop TYPE [to=N] [offset=K] [count=C]: lose the next C matching messages."""
        options = dict(str(arg).split("=") for arg in args[1:])
        kind = MessageType[args[0]]
        left = [int(options.pop("count", "1"))]
        to = int(options["to"]) if "to" in options else None
        offset = int(options["offset"]) if "offset" in options else None

        def drop(message: Message) -> bool:
            if message.type != kind or left[0] <= 0:
                return False
            if (to is not None and message.to != to) or (
                offset is not None and message.chunk_offset != offset
            ):
                return False
            left[0] -= 1
            return True

        return drop

    def _status(self, node_id: int) -> str:
        status = self.net.nodes[node_id].status()
        conf = status.conf_state
        learners = f" learners={','.join(map(str, conf.learners))}" if conf.learners else ""
        return (
            f"{node_id}: {status.role.name} term={status.term} leader={status.leader_id} "
            f"commit={status.commit} last={status.last_index} "
            f"voters={','.join(map(str, conf.voters))}{learners}"
        )


def render(make_network, text: str) -> str:
    """Replay a script and return it with freshly computed outputs."""
    interaction = Interaction(make_network)
    out: list[str] = []
    lines = text.splitlines()
    position = 0
    while position < len(lines):
        line = lines[position]
        position += 1
        if not line.strip() or line.startswith("#"):
            out.append(line)
            continue
        out += [line, "----", *interaction.run(line.split())]
        while position < len(lines) and lines[position].strip() != "":
            position += 1  # skip the stored output of this command
    return "\n".join(out).rstrip("\n") + "\n"


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.stem)
def test_golden_interaction(make_network, path: Path) -> None:
    """Replaying the script reproduces every recorded message and effect exactly."""
    stored = path.read_text()
    fresh = render(make_network, stored)
    if os.environ.get("WARMD_REWRITE") == "1":
        path.write_text(fresh)
        return
    assert fresh == stored, f"{path.name} changed; rerun with WARMD_REWRITE=1 and review the diff"
