"""SpecRunner turns replicated task specs into warm-up runs against real servers: replay
through an HTTP service, fetch from an origin into Redis, and clear failures for bad specs."""

from __future__ import annotations

import redis

from warmd.cache.configured import ConfiguredCaches
from warmd.config import CacheConfig
from warmd.config_table import Address
from warmd.hooks.task import TaskOutcome
from warmd.runtime.execute.task_runner import RunnerSettings, SpecRunner
from warmd.statemachine.commands import TaskSpec
from warmd.statemachine.lifecycle import TaskState
from warmd.statemachine.state import TaskRecord
from warmd.testing.origin import OriginState, TestOrigin
from warmd.testing.servers import ServerProcess, free_port


def http_cache(name: str, url: str) -> CacheConfig:
    return CacheConfig(name=name, kind="http", addresses=(), url=url, db=0, password=None,
                       timeout_ms=2000, max_concurrency=16, headers=(("X-Warmup", "1"),))


def redis_cache(name: str, server: ServerProcess) -> CacheConfig:
    return CacheConfig(name=name, kind="redis", addresses=(Address("127.0.0.1", server.port),),
                       url=None, db=0, password=None, timeout_ms=2000, max_concurrency=16,
                       headers=())


def record(spec: TaskSpec, checkpoint: int = 0) -> TaskRecord:
    return TaskRecord(task_id="p1-1", spec=spec, state=TaskState.RUNNING, submitted_ms=0,
                      updated_ms=0, checkpoint=checkpoint)


async def test_replay_gets_every_request_from_the_service_from_the_checkpoint():
    """A replay task GETs each request line (after the checkpoint) from the http cache's url
    and reports its progress."""
    paths = tuple(f"/api/item/{number}?day=2026-11-29" for number in range(120))
    async with TestOrigin(OriginState(), record_paths=True) as origin:
        caches = ConfiguredCaches([http_cache("shop", origin.url)])
        runner = SpecRunner(caches, RunnerSettings())
        progress: list[int] = []

        async def report(done: int) -> None:
            progress.append(done)

        try:
            spec = TaskSpec(keys=paths, target="shop", loader="replay")
            result = await runner.run(record(spec, checkpoint=20), report)
        finally:
            await runner.close()
            await caches.close()
        assert result.outcome == TaskOutcome.SUCCEEDED and result.keys_failed == 0
        assert sorted(origin.state.paths) == sorted(paths[20:])
        assert progress[-1] == len(paths) and progress == sorted(progress)


async def test_fetch_writes_each_body_under_its_cache_key(redis_target: ServerProcess):
    """A fetch task GETs the origin URL built from the request and writes the body into
    Redis under the planner's cache key, with a TTL."""
    async with TestOrigin(OriginState(body_bytes=40)) as origin:
        caches = ConfiguredCaches([redis_cache("main", redis_target)])
        runner = SpecRunner(caches, RunnerSettings())
        spec = TaskSpec(keys=("/report/a", "/report/b"), target="main", loader="fetch",
                        loader_url=origin.url + "{path}", cache_keys=("rep:a", "rep:b"),
                        ttl_s=600)
        try:
            result = await runner.run(record(spec))
        finally:
            await runner.close()
            await caches.close()
    client = redis.Redis(port=redis_target.port)
    assert result.outcome == TaskOutcome.SUCCEEDED and result.keys_ok == 2
    assert client.get("rep:a").startswith(b"/report/a") and 0 < client.ttl("rep:b") <= 600


async def test_fetch_of_planned_urls_gets_each_key_as_is(redis_target: ServerProcess):
    """Planned fetch tasks carry the rendered origin URLs as keys and no loader_url: each
    URL is fetched as it is and its body stored under the matching cache key."""
    async with TestOrigin(OriginState(body_bytes=30)) as origin:
        caches = ConfiguredCaches([redis_cache("main", redis_target)])
        runner = SpecRunner(caches, RunnerSettings())
        urls = (f"{origin.url}/items/7?lang=en", f"{origin.url}/items/8?lang=en")
        spec = TaskSpec(keys=urls, target="main", loader="fetch", cache_keys=("i:7", "i:8"))
        try:
            result = await runner.run(record(spec))
        finally:
            await runner.close()
            await caches.close()
    client = redis.Redis(port=redis_target.port)
    assert result.outcome == TaskOutcome.SUCCEEDED
    assert client.get("i:8").startswith(b"/items/8")


async def test_a_spec_this_node_cannot_run_fails_with_the_reason(redis_target: ServerProcess):
    """Replay into a key-value cache, or a target missing from this node's config, fails
    the task with a reason that names the problem."""
    caches = ConfiguredCaches([redis_cache("main", redis_target)])
    runner = SpecRunner(caches, RunnerSettings())
    try:
        wrong_kind = await runner.run(record(TaskSpec(keys=("/a",), target="main",
                                                      loader="replay")))
        missing = await runner.run(record(TaskSpec(keys=("/a",), target="elsewhere",
                                                   loader="fetch", loader_url="http://x{path}")))
    finally:
        await runner.close()
        await caches.close()
    assert wrong_kind.outcome == TaskOutcome.FAILED and "needs an http cache" in wrong_kind.reason
    assert missing.outcome == TaskOutcome.FAILED and "not configured here" in missing.reason


async def test_a_replay_where_every_request_fails_is_a_failed_run():
    """When the service is down, no request succeeds and the task fails (so it is retried)
    instead of being recorded as a success."""
    caches = ConfiguredCaches([http_cache("shop", f"http://127.0.0.1:{free_port()}")])
    runner = SpecRunner(caches, RunnerSettings())
    try:
        result = await runner.run(record(TaskSpec(keys=("/a", "/b"), target="shop",
                                                  loader="replay")))
    finally:
        await runner.close()
        await caches.close()
    assert result.outcome == TaskOutcome.FAILED and "all 2 requests failed" in result.reason


async def test_the_tasks_ttl_jitter_spreads_the_written_ttls(redis_target: ServerProcess):
    """A spec's TTL jitter (thousandths) spreads the keys' TTLs below the TTL; zero writes
    every key with the TTL itself."""
    async with TestOrigin(OriginState(body_bytes=10)) as origin:
        caches = ConfiguredCaches([redis_cache("main", redis_target)])
        runner = SpecRunner(caches, RunnerSettings())
        urls = tuple(f"{origin.url}/k/{number}" for number in range(200))
        try:
            for prefix, permille in (("spread", 500), ("exact", 0)):
                spec = TaskSpec(keys=urls, target="main", loader="fetch", ttl_s=1000,
                                ttl_jitter_permille=permille,
                                cache_keys=tuple(f"{prefix}:{n}" for n in range(200)))
                assert (await runner.run(record(spec))).outcome == TaskOutcome.SUCCEEDED
        finally:
            await runner.close()
            await caches.close()
    client = redis.Redis(port=redis_target.port)
    spread = [client.ttl(f"spread:{n}") for n in range(200)]
    exact = {client.ttl(f"exact:{n}") for n in range(200)}
    assert 490 <= min(spread) < 700 and 800 < max(spread) <= 1000
    assert exact <= {999, 1000}


async def test_the_rules_slo_reaches_the_origin_limiter():
    """A spec's `slo p99.5 250ms` is the objective of its origin limit (none when unset)."""
    caches = ConfiguredCaches([http_cache("shop", "http://127.0.0.1:9")])
    runner = SpecRunner(caches, RunnerSettings())
    try:
        slo = TaskSpec(keys=("/a",), target="shop", loader="replay", slo_latency_ms=250,
                       slo_permille=995)
        origin = runner.warm_task(record(slo)).limits.origin
        assert (origin.latency_objective_s, origin.objective_percentile) == (0.25, 99.5)
        plain = runner.warm_task(record(TaskSpec(keys=("/a",), target="shop",
                                                 loader="replay"))).limits.origin
        assert plain.latency_objective_s == 0.0
    finally:
        await runner.close()
        await caches.close()
