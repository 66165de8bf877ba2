"""KeyWriterRunner against a real redis-server: values, TTLs, checkpoints, resumption."""

from __future__ import annotations

import uuid

from warmd.cache.redis import RedisBackend
from warmd.hooks.base import WarmRequest
from warmd.hooks.task import TaskOutcome, WarmLimits, WarmTask
from warmd.runtime.execute.key_writer import KeyWriterRunner


async def test_writes_each_key_with_its_value_or_the_task_id(redis_server) -> None:
    """Keys get their request's value, or the task id when it has none, with the task's
    TTL; a checkpoint is reported after each batch but the last (the Finish reports it) and
    a resumed task skips what is done."""
    prefix = uuid.uuid4().hex[:8]
    requests = tuple(WarmRequest("", key=f"{prefix}:{n}", value=b"v%d" % n if n % 2 else None)
                     for n in range(7))
    task = WarmTask("task-7", requests, f"redis://{redis_server.address}", "",
                    WarmLimits(ttl_s=600), checkpoint=2)
    checkpoints: list[int] = []

    async def progress(done: int) -> None:
        checkpoints.append(done)

    runner = KeyWriterRunner(batch_keys=2)
    result = await runner.run(task, progress)
    await runner.close()
    assert (result.outcome, result.keys_ok, result.checkpoint) == (TaskOutcome.SUCCEEDED, 5, 7)
    assert checkpoints == [4, 6]
    backend = RedisBackend(redis_server.address)
    found = await backend.read_many([request.key for request in requests])
    assert found == {f"{prefix}:{n}": None if n < 2 else (b"v%d" % n if n % 2 else b"task-7")
                     for n in range(7)}
    ttl_s = await backend.node.connection().call("TTL", f"{prefix}:6")
    assert 590 <= ttl_s <= 600  # type: ignore[operator]
    await backend.close()
