"""KeyWriterRunner against a real redis-server: values, TTLs, checkpoints, resumption."""

from __future__ import annotations

import uuid

from warmd.cache.redis import RedisBackend
from warmd.hooks.task import TaskOutcome
from warmd.runtime.execute.key_writer import KeyTask, KeyWriterRunner


async def test_writes_each_key_with_the_value_or_the_task_id(redis_server) -> None:
    """Keys get the task's value, or the task id when it has none, with the task's TTL; a
    checkpoint is reported after each batch but the last (the Finish reports it) and a
    resumed task skips what is done."""
    prefix = uuid.uuid4().hex[:8]
    target = f"redis://{redis_server.address}"
    keys = [f"{prefix}:{n}" for n in range(7)]
    checkpoints: list[int] = []

    async def progress(done: int) -> None:
        checkpoints.append(done)

    runner = KeyWriterRunner(batch_keys=2)
    result = await runner.run(KeyTask("task-7", keys[:5], target, 600, checkpoint=2), progress)
    valued = await runner.run(KeyTask("task-8", keys[5:], target, 600, value=b"v"))
    await runner.close()
    assert (result.outcome, result.keys_ok, result.checkpoint) == (TaskOutcome.SUCCEEDED, 3, 5)
    assert (valued.outcome, valued.keys_ok) == (TaskOutcome.SUCCEEDED, 2)
    assert checkpoints == [4]
    backend = RedisBackend(redis_server.address)
    found = await backend.read_many(keys)
    assert found == {key: None if n < 2 else (b"task-7" if n < 5 else b"v")
                     for n, key in enumerate(keys)}
    ttl_s = await backend.node.connection().call("TTL", f"{prefix}:6")
    assert 590 <= ttl_s <= 600  # type: ignore[operator]
    await backend.close()
