"""The run queue drops the messages its workers are done with, and only those (real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from taskiq_redis import RedisStreamBroker

from base.settings import Settings
from runtime.queue import GROUP, QUEUE, build_broker, kicker, trim_delivered
from tests.support.app_fixtures import TEST_SECRET


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[tuple[RedisStreamBroker, Redis]]:
    """The queue in a Redis database of its own (the tests' shared one holds kd:runs)."""
    url = urlsplit(redis_url)._replace(path="/7").geturl()
    redis = Redis.from_url(url)
    await redis.flushdb()
    broker = build_broker(Settings(app_env="test", jwt_secret=TEST_SECRET, redis_url=url))
    await broker.startup()  # the stream and its group
    try:
        yield broker, redis
    finally:
        await broker.shutdown()
        await redis.flushdb()
        await redis.aclose()


async def ids(redis: Redis) -> list[bytes]:
    return [entry_id for entry_id, _ in await redis.xrange(QUEUE)]


async def deliver(redis: Redis, count: int) -> list[bytes]:
    """What a worker reads next (the group's new messages)."""
    [(_, entries)] = await redis.xreadgroup(GROUP, "worker-1", {QUEUE: ">"}, count=count)
    return [entry_id for entry_id, _ in entries]


async def test_only_messages_delivered_and_done_with_are_deleted(
    queue: tuple[RedisStreamBroker, Redis],
) -> None:
    broker, redis = queue
    enqueue = kicker(broker)
    for _ in range(5):
        await enqueue(uuid.uuid4())
    m = await ids(redis)
    assert len(m) == 5
    assert await trim_delivered(broker) == 0  # nothing delivered yet

    assert await deliver(redis, 3) == m[:3]
    await redis.xack(QUEUE, GROUP, m[0], m[1])
    # m[2] is held by a worker (pending); m[3] and m[4] wait for one.
    assert await trim_delivered(broker) == 2
    assert await ids(redis) == m[2:]

    await redis.xack(QUEUE, GROUP, m[2])
    assert await deliver(redis, 1) == [m[3]]
    assert await trim_delivered(broker) == 1
    assert await ids(redis) == m[3:]
    # The held message can still be claimed again by another worker (redelivery).
    claimed = await redis.xautoclaim(QUEUE, GROUP, "worker-2", min_idle_time=0, start_id="0-0")
    assert [entry_id for entry_id, _ in claimed[1]] == [m[3]]

    assert await deliver(redis, 1) == [m[4]]
    await redis.xack(QUEUE, GROUP, m[3], m[4])
    # All done: everything before the last delivered message goes; a new one is still read.
    assert await trim_delivered(broker) == 1
    assert await ids(redis) == [m[4]]
    await enqueue(uuid.uuid4())
    assert len(await deliver(redis, 1)) == 1
