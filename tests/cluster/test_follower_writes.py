"""Writes pipelined to a follower's admin socket in msgpack frames (warmd.admin.pipeline):
the follower forwards them to the leader in batches, and every request is answered exactly
once, in order per client, even when the leader dies while a batch is in flight."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable

from warmd.admin.framed import decode_response_frame, encode_request_frame
from warmd.admin.pipeline import PipelinedClient
from warmd.admin.protocol import Request, decode_response, encode_request
from warmd.errors import AdminError
from warmd.runtime.daemon import GC_YOUNG_THRESHOLD
from warmd.testing.procs import ProcessCluster

CLIENTS = 8
PER_CLIENT = 60


def _client_id(number: int) -> str:
    return f"t{number}." + "x" * 40  # any length the entry's size allows


async def _write_all(path: str, first_sequence: int,
                     during: Callable[[], None] | None = None) -> list[object]:
    """CLIENTS x PER_CLIENT writes, all in flight at once (sequences in order per client);
    `during` runs once they are sent, while some are still unanswered. Returns each write's
    outcome: None or the AdminError."""
    client = await PipelinedClient.open(path)
    assert client.framed
    try:
        answers = [client.call("bench-write", client_id=_client_id(number), sequence=sequence)
                   for sequence in range(first_sequence, first_sequence + PER_CLIENT)
                   for number in range(CLIENTS)]
        if during is not None:
            await asyncio.sleep(0.005)
            await asyncio.to_thread(during)
            assert not all(answer.done() for answer in answers), "all answered before `during`"
        return await asyncio.wait_for(
            asyncio.gather(*answers, return_exceptions=True), timeout=30)
    finally:
        await client.close()


async def _raw_answers(path: str, first_sequence: int) -> Counter[int]:
    """The same writes on a raw framed connection: how many answers came for each id
    (waiting a little past the last, so that a duplicate answer would be seen)."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(encode_request(Request("protocol", {"frames": "msgpack"}, 1)))
    assert decode_response(await reader.readline()).ok
    ids = itertools.count(2)
    writer.write(b"".join(
        encode_request_frame(Request("bench-write", {"client_id": _client_id(number),
                                                     "sequence": sequence}, next(ids)))
        for sequence in range(first_sequence, first_sequence + PER_CLIENT)
        for number in range(CLIENTS)))
    answers: Counter[int] = Counter()
    try:
        while True:
            header = await asyncio.wait_for(reader.readexactly(4), 1.0 if answers else 30)
            response = decode_response_frame(await reader.readexactly(
                int.from_bytes(header, "big")))
            assert response.ok, response
            answers[response.request_id] += 1
    except TimeoutError:
        pass
    writer.close()
    return answers


def test_a_follower_forwards_pipelined_writes_in_order_each_answered_once(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """480 writes in flight through a follower all succeed: had a batch been reordered, a
    client's later sequence would have applied first and the earlier one been refused as
    stale. Each is answered exactly once. Sent again from one sequence back, the stale
    first is refused, the repeat gets its first result (applied once), the rest apply."""
    cluster = make_cluster(3).start_all()
    leader = cluster.wait_for_leader()
    follower = min(node_id for node_id in cluster.nodes if node_id != leader)
    path = str(cluster.nodes[follower].socket_path)
    answers = asyncio.run(_raw_answers(path, 1))
    assert answers == Counter(range(2, 2 + CLIENTS * PER_CLIENT))
    again = asyncio.run(_write_all(path, PER_CLIENT - 1))
    stale = again[:CLIENTS]
    assert all(isinstance(outcome, AdminError) and outcome.code == "failed"
               and "older than the last applied" in outcome.message for outcome in stale)
    assert again[CLIENTS:] == [None] * (CLIENTS * (PER_CLIENT - 1))
    collector = cluster.call(follower, "bench-gc")  # start-up's heap is out of its scans
    assert collector["frozen"] > 10_000
    assert collector["thresholds"][0] == GC_YOUNG_THRESHOLD


def test_a_leader_killed_mid_batch_leaves_no_write_unanswered(
        make_cluster: Callable[..., ProcessCluster]) -> None:
    """The leader is killed while a follower's batch is in flight: every write is answered
    once, either done or with an error a client can act on (timeout, unavailable, a stale
    refusal), none hangs; the survivors elect a leader and the follower serves again."""
    cluster = make_cluster(3, proposal_timeout_ms=2000).start_all()
    leader = cluster.wait_for_leader()
    follower = min(node_id for node_id in cluster.nodes if node_id != leader)
    path = str(cluster.nodes[follower].socket_path)
    outcomes = asyncio.run(_write_all(path, 1, during=lambda: cluster.kill(leader)))
    assert len(outcomes) == CLIENTS * PER_CLIENT
    errors = [outcome for outcome in outcomes if outcome is not None]
    assert all(isinstance(error, AdminError) for error in errors), errors[:3]
    assert {error.code for error in errors} <= {  # type: ignore[union-attr]
        "timeout", "unavailable", "failed", "not_leader"}
    survivors = [node_id for node_id in cluster.nodes if node_id != leader]
    cluster.wait_for_leader(among=survivors)
    after = asyncio.run(_write_all(path, PER_CLIENT + 1))
    assert after == [None] * (CLIENTS * PER_CLIENT)
