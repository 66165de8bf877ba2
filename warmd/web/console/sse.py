"""GET /api/v1/events: server-sent events fed by the node's change feed.

A stream sleeps on its subscription until the state changes (heartbeats are not a change
anyone watches on a page), then sends one `change` event with the topics and the node's
indexes; bursts are coalesced (at most one event per MIN_SPACING_S), and an idle stream
costs one comment line every KEEPALIVE_S. On shutdown every stream is woken and ends, so
open browsers never hold up the daemon's exit.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from warmd.access import Role, requires
from warmd.runtime.node.changes import Subscription
from warmd.statemachine.topics import EVERYTHING, Topic
from warmd.web.console.pages import READERS
from warmd.web.console.readers import ConsoleReaders

# Replication reports come every few seconds; /cluster ages its figures instead.
WATCHED = EVERYTHING - {Topic.HEARTBEATS, Topic.SUMMARIES, Topic.REPLICATION}
KEEPALIVE_S = 15.0
MIN_SPACING_S = 0.25
RETRY_MS = 2000  # how soon a browser reconnects after the stream broke
STREAMS = web.AppKey("warmd.console.streams", set[Subscription])


def change_event(readers: ConsoleReaders, topics: frozenset[Topic], sequence: int) -> bytes:
    """One `change` event: what changed and where this node stands."""
    status = readers.status()
    data: dict[str, Any] = {
        "topics": sorted(topics), "node_id": status.node_id, "role": status.role,
        "term": status.term, "leader_id": status.leader_id,
        "applied_index": status.applied_index, "commit_index": status.commit_index,
        "tasks_by_state": readers.state().counts()}
    return f"id: {sequence}\nevent: change\ndata: {json.dumps(data)}\n\n".encode()


@requires(Role.VIEWER)
async def events(request: web.Request) -> web.StreamResponse:
    readers = request.app[READERS]
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    subscription = readers.subscribe(WATCHED)
    streams = request.app[STREAMS]
    streams.add(subscription)
    sequence = 0
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        await response.write(change_event(readers, frozenset(), sequence))
        while subscription in streams:
            topics = await subscription.wait(KEEPALIVE_S)
            if subscription not in streams:
                break
            if not topics:
                await response.write(b": keepalive\n\n")
                continue
            sequence += 1
            await response.write(change_event(readers, topics, sequence))
            await readers.sleep(MIN_SPACING_S)
    except ConnectionError:
        pass  # the browser went away
    finally:
        streams.discard(subscription)
        subscription.close()
    return response


async def close_streams(app: web.Application) -> None:
    """Wake and end every open stream (on_shutdown)."""
    streams = app[STREAMS]
    waiting = list(streams)
    streams.clear()
    for subscription in waiting:
        subscription.poke()


def add_routes(app: web.Application) -> None:
    app[STREAMS] = set()
    app.on_shutdown.append(close_streams)
    app.router.add_get("/api/v1/events", events)
