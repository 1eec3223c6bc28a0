"""Replay, then tail: the one way a subscription reads an event log.

Subscribe to the bus first, then read the rows after the cursor, then follow the bus, skipping
what was already sent. Events are published after their row commits, so anything missing from
the read arrives on the bus; a gap in the sequence (or RESYNC) triggers a re-read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from app.events.bus import RESYNC, EventBus

Event = dict[str, Any]


async def replay_then_tail(
    bus: EventBus,
    topic: str,
    after: int,
    fetch_after: Callable[[int], Awaitable[list[Event]]],
    *,
    contiguous: bool,
    is_last: Callable[[Event], bool] = lambda _e: False,
) -> AsyncIterator[Event]:
    """Events with cursor > `after`, in order, each once; stops after `is_last`.

    `contiguous` streams number events 1, 2, 3, ... so a jump reveals a missed event.
    """
    last = after
    async with bus.subscribe(topic) as live:
        pending = await fetch_after(last)
        while True:
            for event in pending:
                if event["cursor"] <= last:
                    continue
                last = event["cursor"]
                yield event
                if is_last(event):
                    return
            event = await live.get()
            missed = event is RESYNC or (contiguous and event["cursor"] > last + 1)
            pending = await fetch_after(last) if missed else [event]
