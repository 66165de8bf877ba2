"""Warm-ups posted as Grafana annotations: one region per finished plan, by the leader only."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from warmd.runtime.leader.annotations import AnnotationPoster, AnnotationSettings
from warmd.statemachine.commands import Cancel, PlannedTask, SubmitPlan, TaskSpec
from warmd.statemachine.machine import StateMachine


class FakeGrafana:
    """A real HTTP server standing in for Grafana's /api/annotations; answers `status`."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, Any], str]] = []
        self.status = 200
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _annotate(self, request: web.Request) -> web.Response:
        self.posts.append((await request.json(), request.headers.get("Authorization", "")))
        return web.json_response({"id": len(self.posts)}, status=self.status)

    async def __aenter__(self) -> FakeGrafana:
        app = web.Application()
        app.router.add_post("/api/annotations", self._annotate)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/api/annotations"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def plan_state(plan_id: str, tasks: int, index: int = 1,
               machine: StateMachine | None = None) -> StateMachine:
    machine = machine or StateMachine()
    planned = tuple(PlannedTask(task_id=f"{plan_id}-{n}", spec=TaskSpec(keys=("k",), target="r"))
                    for n in range(1, tasks + 1))
    machine.apply(index, SubmitPlan(plan_id=plan_id, trigger="cache-flush:redis",
                                    rules_version="", requests=tasks, tasks=planned,
                                    now_ms=1_000))
    return machine


def finish(machine: StateMachine, plan_id: str, tasks: int, index: int) -> None:
    for n in range(1, tasks + 1):
        machine.apply(index + n, Cancel(task_id=f"{plan_id}-{n}", now_ms=5_000))


async def test_the_leader_posts_each_finished_plan_once_as_a_region() -> None:
    """Nothing while tasks run; once all ended, one region from the plan's creation to its
    last task's end, tagged `warmd`, with the token; never twice."""
    machine = plan_state("p-1-flush", 2)
    async with FakeGrafana() as grafana, aiohttp.ClientSession() as session:
        poster = AnnotationPoster(AnnotationSettings(grafana.url, token="t0k"),
                                  state=lambda: machine.state, is_leader=lambda: True)
        await poster.pass_once(session)
        assert grafana.posts == []
        finish(machine, "p-1-flush", 2, index=1)
        await poster.pass_once(session)
        await poster.pass_once(session)
    assert len(grafana.posts) == 1
    body, authorization = grafana.posts[0]
    assert body["time"] == 1_000 and body["timeEnd"] == 5_000
    assert body["tags"] == ["warmd", "warm-up", "cache-flush:redis"]
    assert "p-1-flush" in body["text"] and "0/2 tasks succeeded" in body["text"]
    assert authorization == "Bearer t0k"


async def test_a_follower_posts_nothing_and_a_new_leader_does_not_repost() -> None:
    """Plans that finished while this node followed were its leader's to post."""
    machine = plan_state("p-1-old", 1)
    finish(machine, "p-1-old", 1, index=1)
    leading = False
    async with FakeGrafana() as grafana, aiohttp.ClientSession() as session:
        poster = AnnotationPoster(AnnotationSettings(grafana.url), state=lambda: machine.state,
                                  is_leader=lambda: leading)
        await poster.pass_once(session)
        leading = True
        plan_state("p-2-new", 1, index=10, machine=machine)
        finish(machine, "p-2-new", 1, index=10)
        await poster.pass_once(session)
    assert [body["text"].split()[1] for body, _ in grafana.posts] == ["p-2-new"]


async def test_a_refusing_grafana_is_retried_then_given_up() -> None:
    """A failed post is retried on later passes, at most three times in all."""
    machine = plan_state("p-1-x", 1)
    finish(machine, "p-1-x", 1, index=1)
    async with FakeGrafana() as grafana, aiohttp.ClientSession() as session:
        grafana.status = 500
        poster = AnnotationPoster(AnnotationSettings(grafana.url), state=lambda: machine.state,
                                  is_leader=lambda: True)
        for _ in range(5):
            await poster.pass_once(session)
    assert len(grafana.posts) == 3 and poster.posted == 0
