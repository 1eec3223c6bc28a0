"""Replay, then tail: the one way a subscription reads an event log.

Subscribe to the bus first, then read the rows after the cursor (in batches, until none are
left), then follow the bus, skipping what was already sent. Events are published after their
row commits, so anything missing from the read arrives on the bus, unless its publish was lost
(the bus was down, or the publishing process died between commit and publish): for that, a
stream that hears nothing for `idle_seconds` re-reads the rows anyway, so a run's stream ends on
its final event even when nobody ever publishes it.

* Contiguous logs (a run's 1, 2, 3, ...) trust a live event that is next in line and re-read
  the rows when one is missing (a gap), on RESYNC, or when idle.
* Other logs (a workspace's ids) use a live event only as a wake-up and re-read the rows: two
  processes may publish in another order than their rows committed.

A live message marked `transient` (no row behind it, e.g. a workspace's RUN_PROGRESS) is
delivered as it is, with the cursor of the last event sent, and triggers no read: a reconnect
after it resumes from that cursor and misses no stored event.

While tailing, a read or access check that fails with anything but a domain error (the database
is restarting) is retried for up to `READ_RETRY_SECONDS` before the stream gives up with it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from base.errors import DomainError
from base.events.bus import RESYNC, EventBus, Subscription

Event = dict[str, Any]
T = TypeVar("T")

log = logging.getLogger("knowledge_desk.bus")

READ_RETRY_SECONDS = 30.0


async def replay_then_tail(
    bus: EventBus,
    topic: str,
    after: int,
    fetch_after: Callable[[int], Awaitable[list[Event]]],
    *,
    contiguous: bool,
    is_last: Callable[[Event], bool] = lambda _e: False,
    check_access: Callable[[], Awaitable[None]] | None = None,
    batch_size: int = 500,
    idle_seconds: float | None = None,
) -> AsyncIterator[Event]:
    """Events with cursor > `after`, in order, each once; stops after `is_last`.

    `check_access` runs before each live delivery, so a caller who lost access stops receiving.
    `fetch_after` returns at most `batch_size` events; a full batch means more may follow.
    With `idle_seconds`, the rows are re-read whenever the bus has been quiet that long.
    """
    async for batch in replay_then_tail_batches(
        bus,
        topic,
        after,
        fetch_after,
        contiguous=contiguous,
        is_last=is_last,
        check_access=check_access,
        batch_size=batch_size,
        idle_seconds=idle_seconds,
    ):
        for event in batch:
            yield event


async def replay_then_tail_batches(
    bus: EventBus,
    topic: str,
    after: int,
    fetch_after: Callable[[int], Awaitable[list[Event]]],
    *,
    contiguous: bool,
    is_last: Callable[[Event], bool] = lambda _e: False,
    check_access: Callable[[], Awaitable[None]] | None = None,
    batch_size: int = 500,
    idle_seconds: float | None = None,
) -> AsyncIterator[list[Event]]:
    """`replay_then_tail`, in the batches the events come in: the new events of each read of
    the rows together (at most `batch_size`), and each live event alone. Never an empty batch.
    """
    last = after
    async with bus.subscribe(topic) as live:
        pending, from_log = await fetch_after(last), True
        while True:
            batch: list[Event] = []
            for event in pending:
                if event["cursor"] <= last:
                    continue
                last = event["cursor"]
                batch.append(event)
                if is_last(event):
                    yield batch
                    return
            if batch:
                yield batch
            if from_log and len(pending) >= batch_size:
                # the log holds more than one batch
                pending = await _patiently(functools.partial(fetch_after, last))
                continue
            heard = await _next(live, idle_seconds)
            if check_access is not None:
                await _patiently(check_access)
            if heard is not None and heard.get("transient"):
                yield [{**heard, "cursor": last}]
                pending, from_log = [], False
                continue
            in_line = (
                contiguous
                and heard is not None
                and heard is not RESYNC
                and heard["cursor"] == last + 1
            )
            if in_line:
                assert heard is not None
                pending, from_log = [heard], False
            else:
                pending, from_log = await _patiently(functools.partial(fetch_after, last)), True


async def _next(live: Subscription, idle_seconds: float | None) -> Event | None:
    """The next event from the bus, or None when it has been quiet for `idle_seconds`."""
    if idle_seconds is None:
        return await live.get()
    try:
        return await asyncio.wait_for(live.get(), idle_seconds)
    except TimeoutError:
        return None


async def _patiently(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, retried while it fails with anything but a domain error, for a while."""
    started = time.monotonic()
    delay = 0.1
    while True:
        try:
            return await call()
        except DomainError:
            raise
        except Exception:
            if time.monotonic() - started >= READ_RETRY_SECONDS:
                raise
            log.warning("a stream's read failed; retrying in %.1f s", delay, exc_info=True)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)
