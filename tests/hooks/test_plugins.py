"""Plugins that raise, hang or return nonsense fail only their own task, naming the plugin."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import pytest

from warmd.cache.redis import RedisBackend
from warmd.hooks.base import PluginError, Readiness, WarmRequest, call_plugin
from warmd.hooks.registry import HookRegistry
from warmd.hooks.task import TaskOutcome, WarmLimits, WarmTask
from warmd.runtime.execute.warmer import WarmRunner

QUICK = WarmLimits(plugin_timeout_s=0.2, retry_attempts=1)


class HangingLoader:
    name = "hang_loader"
    uses_origin = True

    async def load(self, request: WarmRequest) -> bytes | None:
        await asyncio.sleep(3600)
        return b""


class BlockingLoader:
    """A synchronous plugin that blocks its thread until released."""

    name = "blocking_loader"
    uses_origin = False

    def __init__(self) -> None:
        self.release = threading.Event()

    def load(self, request: WarmRequest) -> bytes | None:
        self.release.wait(10)
        return b"late"


class RaisingLoader:
    name = "raising_loader"
    uses_origin = True

    async def load(self, request: WarmRequest) -> bytes | None:
        raise ZeroDivisionError("division by zero in plugin")


class NonsenseLoader:
    name = "nonsense_loader"
    uses_origin = False

    async def load(self, request: WarmRequest) -> bytes | None:
        return 42  # type: ignore[return-value]


class GoodLoader:
    name = "good_loader"
    uses_origin = False

    async def load(self, request: WarmRequest) -> bytes | None:
        return b"ok"


class ShortKeyMapper:
    name = "short_mapper"

    def key_for(self, request: WarmRequest) -> str:
        return ""


class HangingReadiness:
    name = "hang_gate"

    async def check(self, context: dict) -> Readiness:
        await asyncio.sleep(3600)
        return Readiness(True, "")


class ExplodingListener:
    name = "exploding_listener"

    async def task_started(self, task: object) -> None:
        raise RuntimeError("listener bug")

    async def task_finished(self, task: object, result: object) -> None:
        return None


def _task(task_id: str, loader: str, **extra: object) -> WarmTask:
    requests = tuple(WarmRequest(f"/p/{n}", key=f"k{n}") for n in range(5))
    return WarmTask(task_id, requests, "r", loader, QUICK, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def runner(redis_server) -> AsyncIterator[WarmRunner]:
    registry = HookRegistry()
    for plugin in (HangingLoader(), RaisingLoader(), NonsenseLoader(), GoodLoader(),
                   ShortKeyMapper(), HangingReadiness()):
        registry.add(plugin)
    backend = RedisBackend(redis_server.address)
    yield WarmRunner({"r": backend}, registry)
    await backend.close()


@pytest.mark.parametrize(("loader", "detail"), [
    ("hang_loader", "timed out after 0.2s"),
    ("raising_loader", "ZeroDivisionError: division by zero in plugin"),
    ("nonsense_loader", "returned int"),
])
async def test_bad_loader_fails_its_task_with_its_name(runner: WarmRunner, loader: str,
                                                       detail: str) -> None:
    """The task fails naming the plugin and its error; the next task runs normally."""
    started = time.monotonic()
    result = await runner.run(_task("bad", loader))
    assert result.outcome is TaskOutcome.FAILED
    assert result.reason.startswith(f"plugin {loader}:") and detail in result.reason
    assert time.monotonic() - started < 2.0
    healthy = await runner.run(_task("next", "good_loader"))
    assert healthy.outcome is TaskOutcome.SUCCEEDED and healthy.keys_ok == 5


async def test_blocking_sync_plugin_does_not_stall_the_loop(runner: WarmRunner) -> None:
    """A synchronous plugin that blocks runs in a thread: it times out while the loop ticks."""
    blocking = BlockingLoader()
    runner.registry.add(blocking)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    try:
        result = await runner.run(_task("blocked", "blocking_loader"))
    finally:
        ticking.cancel()
        blocking.release.set()
    assert result.outcome is TaskOutcome.FAILED and "blocking_loader: timed out" in result.reason
    assert ticks >= 10


async def test_bad_key_mapper_and_gate_fail_the_task(runner: WarmRunner) -> None:
    """An empty key from a mapper, or a gate that hangs, fails the task with the plugin's name."""
    mapped = await runner.run(_task("mapped", "good_loader", key_mapper="short_mapper"))
    assert mapped.outcome is TaskOutcome.FAILED and "short_mapper" in mapped.reason
    gated = await runner.run(_task("gated", "good_loader", readiness=("hang_gate",)))
    assert gated.outcome is TaskOutcome.FAILED and "hang_gate: timed out" in gated.reason


async def test_listener_error_fails_the_task(runner: WarmRunner) -> None:
    """A listener that raises fails the task it was told about, with the listener's name."""
    runner.registry.add(ExplodingListener())
    result = await runner.run(_task("listened", "good_loader"))
    assert result.outcome is TaskOutcome.FAILED and "exploding_listener" in result.reason


async def test_unknown_plugin_name_is_a_clear_failure(runner: WarmRunner) -> None:
    """A task naming a loader nobody registered fails and lists the known ones."""
    result = await runner.run(_task("unknown", "no_such_loader"))
    assert result.outcome is TaskOutcome.FAILED and "known:" in result.reason


async def test_call_plugin_checks_the_return_type() -> None:
    """call_plugin accepts the expected type and names the plugin when it is wrong."""
    assert await call_plugin("p", lambda: b"x", expect=bytes) == b"x"
    with pytest.raises(PluginError, match="plugin p: returned str"):
        await call_plugin("p", lambda: "x", expect=bytes)


def test_registry_rejects_objects_that_are_no_plugin() -> None:
    """Registering an object that fits no extension point is a TypeError."""
    with pytest.raises(TypeError, match="no warmd extension point"):
        HookRegistry().add(object())


async def test_values_without_a_target_fail_clearly(runner: WarmRunner) -> None:
    """A loader that returns values for a task with no target fails the task, saying so."""
    task = WarmTask("no-target", (WarmRequest("/p", key="k"),), "", "good_loader", QUICK)
    result = await runner.run(task)
    assert result.outcome is TaskOutcome.FAILED and "no target" in result.reason


class PickyVerifier:
    """Accepts only values that start with b'ok' (GoodLoader writes b'ok')."""

    name = "picky"

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix

    def verify(self, key: str, expected: bytes | None, actual: bytes | None) -> bool:
        return actual is not None and actual.startswith(self.prefix)


class ChattyVerifier:
    name = "chatty"

    def verify(self, key: str, expected: bytes | None, actual: bytes | None) -> bool:
        return "yes"  # type: ignore[return-value]


async def test_verifier_plugin_judges_the_sample(runner: WarmRunner) -> None:
    """A Verifier plugin decides what counts as a match; one returning a non-bool fails."""
    runner.registry.add(PickyVerifier(b"ok"))
    matched = await runner.run(_task("verified", "good_loader", verifier="picky"))
    assert matched.outcome is TaskOutcome.SUCCEEDED
    assert (matched.verified_keys, matched.verify_mismatches) == (5, 0)
    runner.registry.add(PickyVerifier(b"no"))  # replaces "picky": now nothing matches
    missed = await runner.run(_task("unverified", "good_loader", verifier="picky"))
    assert (missed.verified_keys, missed.verify_mismatches) == (5, 5)
    runner.registry.add(ChattyVerifier())
    chatty = await runner.run(_task("chatty", "good_loader", verifier="chatty"))
    assert chatty.outcome is TaskOutcome.FAILED and "chatty: returned str" in chatty.reason
