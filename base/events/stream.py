"""Replay, then tail: the one way a subscription reads an event log.

Subscribe to the bus first, then read the rows after the cursor (in batches, until none are
left), then follow the bus, skipping what was already sent. Events are published after their
row commits, so anything missing from the read arrives on the bus.

* Contiguous logs (a run's 1, 2, 3, ...) trust a live event that is next in line and re-read
  the rows when one is missing (a gap) or on RESYNC.
* Other logs (a workspace's ids) use a live event only as a wake-up and re-read the rows: two
  processes may publish in another order than their rows committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from base.events.bus import RESYNC, EventBus

Event = dict[str, Any]


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
) -> AsyncIterator[Event]:
    """Events with cursor > `after`, in order, each once; stops after `is_last`.

    `check_access` runs before each live delivery, so a caller who lost access stops receiving.
    `fetch_after` returns at most `batch_size` events; a full batch means more may follow.
    """
    last = after
    async with bus.subscribe(topic) as live:
        pending, from_log = await fetch_after(last), True
        while True:
            for event in pending:
                if event["cursor"] <= last:
                    continue
                last = event["cursor"]
                yield event
                if is_last(event):
                    return
            if from_log and len(pending) >= batch_size:
                pending = await fetch_after(last)  # the log holds more than one batch
                continue
            event = await live.get()
            if check_access is not None:
                await check_access()
            in_line = contiguous and event is not RESYNC and event["cursor"] == last + 1
            pending, from_log = ([event], False) if in_line else (await fetch_after(last), True)
