"""The event bus: fans events out to the subscribers of this process.

It is a delivery hint, not the record: events are rows first (run_events, workspace_events) and
published after commit. A subscriber that may have missed something (its queue overflowed, or
the Redis connection dropped) is sent RESYNC and re-reads the rows after its cursor.

* LocalBus: in-process, for the embedded default (one process runs the API and the runs).
* RedisBus: every process publishes to one Redis pub/sub channel and keeps one subscription to
  it; local fan-out by topic, so a thousand subscribers cost one Redis connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis

from base.metrics import EVENTS_PUBLISHED

log = logging.getLogger("knowledge_desk.bus")

RESYNC: dict[str, Any] = {"type": "RESYNC"}  # sentinel: re-read from the database
_CHANNEL = "kd:events"
QUEUE_SIZE = 1000
PUBLISH_TIMEOUT_SECONDS = 2.0
# A streamed text lives this long after its last append (its final copy is in the database).
TEXT_TTL_SECONDS = 3600


class Subscription:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._overflowed = False

    def offer(self, event: dict[str, Any]) -> None:
        if self._overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # Drop from here on and ask the subscriber to catch up from the database.
            self._overflowed = True

    def resync(self) -> None:
        # Wake a subscriber that is waiting; if its queue is full it will see the overflow.
        try:
            self.queue.put_nowait(RESYNC)
        except asyncio.QueueFull:
            self._overflowed = True

    async def get(self) -> dict[str, Any]:
        if self._overflowed and self.queue.empty():
            self._overflowed = False
            return RESYNC
        return await self.queue.get()


class EventBus:
    """Topic fan-out shared by both transports."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        raise NotImplementedError

    async def append_text(self, topic: str, key: str, start: int, text: str) -> None:
        """Append `text` to the streamed text `key` (which holds `start` characters), then
        publish `{"type": "TEXT", "start", "end", "text"}` on `topic`, as one step: a reader that
        subscribed to `topic` before reading `key` misses no part of the text.

        One writer per key (the run writing an answer), so `start` is its own count."""
        raise NotImplementedError

    async def read_text(self, key: str) -> str | None:
        """The streamed text so far, or None when there is none (not started, or dropped)."""
        raise NotImplementedError

    async def drop_text(self, key: str) -> None:
        """Forget a streamed text (its final copy is stored elsewhere)."""
        raise NotImplementedError

    def _dispatch(self, topic: str, event: dict[str, Any]) -> None:
        for subscription in tuple(self._subscribers.get(topic, ())):
            subscription.offer(event)

    def _resync_all(self) -> None:
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.resync()

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(topic)
        self._subscribers[topic].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(topic)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[topic]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())


def text_event(start: int, text: str) -> dict[str, Any]:
    return {"type": "TEXT", "start": start, "end": start + len(text), "text": text}


class LocalBus(EventBus):
    def __init__(self) -> None:
        super().__init__()
        self._texts: dict[str, str] = {}

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        self._dispatch(topic, event)
        EVENTS_PUBLISHED.inc()

    async def append_text(self, topic: str, key: str, start: int, text: str) -> None:
        self._texts[key] = self._texts.get(key, "") + text
        self._dispatch(topic, text_event(start, text))
        EVENTS_PUBLISHED.inc()

    async def read_text(self, key: str) -> str | None:
        return self._texts.get(key)

    async def drop_text(self, key: str) -> None:
        self._texts.pop(key, None)


class RedisBus(EventBus):
    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._client: redis.Redis | None = None  # publishes, with timeouts
        self._listener: redis.Redis | None = None  # the subscription, which waits without one
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        # A publish follows a commit: a Redis that is down or hung must not hold it for long.
        self._client = redis.from_url(
            self._url,
            socket_connect_timeout=PUBLISH_TIMEOUT_SECONDS,
            socket_timeout=PUBLISH_TIMEOUT_SECONDS,
        )
        self._listener = redis.from_url(self._url)
        self._reader = asyncio.create_task(self._read_forever(), name="redis-bus-reader")
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for client in (self._client, self._listener):
            if client is not None:
                await client.aclose()

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        assert self._client is not None, "RedisBus.start() was not awaited"
        await self._client.publish(_CHANNEL, json.dumps({"topic": topic, "event": event}))
        EVENTS_PUBLISHED.inc()

    async def append_text(self, topic: str, key: str, start: int, text: str) -> None:
        assert self._client is not None, "RedisBus.start() was not awaited"
        envelope = json.dumps({"topic": topic, "event": text_event(start, text)})
        # MULTI/EXEC: the text is stored before the delta is published, in one round trip.
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.append(key, text.encode())
            pipe.expire(key, TEXT_TTL_SECONDS)
            pipe.publish(_CHANNEL, envelope)
            await pipe.execute()
        EVENTS_PUBLISHED.inc()

    async def read_text(self, key: str) -> str | None:
        assert self._client is not None, "RedisBus.start() was not awaited"
        value = await self._client.get(key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def drop_text(self, key: str) -> None:
        assert self._client is not None, "RedisBus.start() was not awaited"
        await self._client.delete(key)

    async def _read_forever(self) -> None:
        assert self._listener is not None
        while True:
            pubsub = self._listener.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(_CHANNEL)
                if self._subscribed.is_set():
                    self._resync_all()  # reconnected: anything may have been missed meanwhile
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    envelope = json.loads(message["data"])
                    self._dispatch(envelope["topic"], envelope["event"])
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as exc:
                log.warning("event bus lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py


def build_bus(redis_url: str | None) -> EventBus:
    return RedisBus(redis_url) if redis_url else LocalBus()


def run_topic(run_id: object) -> str:
    return f"run:{run_id}"


def workspace_topic(workspace_id: object) -> str:
    return f"workspace:{workspace_id}"


def user_topic(user_id: object) -> str:
    """The finished runs a user started, in any workspace (the shell's toast)."""
    return f"user:{user_id}"


def answer_topic(message_id: object) -> str:
    return f"answer:{message_id}"


def answer_text_key(message_id: object) -> str:
    return f"kd:answer-text:{message_id}"


CONTROL_TOPIC = "control"
