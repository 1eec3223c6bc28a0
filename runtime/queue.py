"""The run queue: Taskiq on a Redis stream with acknowledgement and redelivery.

Only the run id travels; the run's rows say everything else. A message is acknowledged after
its run has ended, so a worker killed mid-run leaves it pending for redelivery. Redelivery may
reach a run that is still alive elsewhere; the lease in the runs table turns it away.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from taskiq.kicker import AsyncKicker
from taskiq_redis import RedisStreamBroker

from base.settings import Settings

TASK_NAME = "knowledge_desk.execute_run"
QUEUE = "kd:runs"
GROUP = "kd-workers"


def build_broker(settings: Settings) -> RedisStreamBroker:
    assert settings.redis_url, "the run queue needs REDIS_URL"
    return RedisStreamBroker(
        url=settings.redis_url,
        queue_name=QUEUE,
        consumer_group_name=GROUP,
        consumer_id="0",  # a group created after runs were queued still sees them
        idle_timeout=int(settings.run_redeliver_after_seconds * 1000),
        unacknowledged_lock_timeout=5,  # a worker killed while holding it must not block others
        xread_block=1000,
        # A Redis that is down or hung fails an enqueue or a read instead of holding it.
        socket_connect_timeout=3,
        socket_timeout=5,
    )


def kicker(broker: RedisStreamBroker) -> Callable[[uuid.UUID], Awaitable[None]]:
    """Enqueue a run id without importing the worker's task function."""

    async def enqueue(run_id: uuid.UUID) -> None:
        # The task is app.worker's `async def execute_run(run_id: str) -> None`.
        task: AsyncKicker[[str], Coroutine[Any, Any, None]] = AsyncKicker(TASK_NAME, broker, {})
        await task.kiq(str(run_id))

    return enqueue


async def declare_group(broker: RedisStreamBroker) -> None:
    """Create the stream and its consumer group if they are missing (a Redis that restarted
    without its data has neither, and every read fails until they exist again)."""
    async with Redis(connection_pool=broker.connection_pool) as redis:
        with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
            await redis.xgroup_create(QUEUE, GROUP, id="0", mkstream=True)


def _stream_id(value: bytes | str) -> tuple[int, int]:
    millis, _, seq = (value.decode() if isinstance(value, bytes) else value).partition("-")
    return int(millis), int(seq or 0)


async def trim_delivered(broker: RedisStreamBroker) -> int:
    """Delete the queue's messages that the group is done with; how many went.

    Acknowledging a message does not delete it, so the stream would keep every run ever queued.
    What is safe to delete: messages older than both the last one delivered to the group (the
    rest still wait for a worker) and the oldest one still pending (a worker holds it until its
    run ends, and redelivery needs it). XTRIM MINID keeps everything from that id on."""
    async with Redis(connection_pool=broker.connection_pool) as redis:
        try:
            groups = await redis.xinfo_groups(QUEUE)
        except ResponseError:  # no stream yet
            return 0
        group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
        if group is None:
            return 0
        floor = _stream_id(group["last-delivered-id"])
        pending = await redis.xpending(QUEUE, GROUP)
        if pending["pending"]:
            floor = min(floor, _stream_id(pending["min"]))
        if floor == (0, 0):
            return 0
        return int(await redis.xtrim(QUEUE, minid=f"{floor[0]}-{floor[1]}", approximate=False))
