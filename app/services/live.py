"""The event streams behind the subscriptions, with their access checks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from app.events.bus import run_topic, workspace_topic
from app.events.stream import replay_then_tail
from app.services.deps import ServiceDeps
from app.services.errors import Invalid
from app.services.run_log import (
    TERMINAL_EVENT_TYPES,
    last_workspace_event_id,
    run_events_after,
    workspace_events_after,
)


def _cursor(after: str | None) -> int | None:
    if after is None:
        return None
    if not after.isdigit() or len(after) > 18:
        raise Invalid("This cursor is not valid here.", code="INVALID_CURSOR", field="after")
    return int(after)


async def run_progress(
    deps: ServiceDeps, *, run_id: uuid.UUID, after: str | None
) -> AsyncIterator[dict[str, Any]]:
    """Call only after `runs.require_run` allowed the caller (resolvers run it as a workflow)."""
    start = _cursor(after) or 0

    async def fetch(cursor: int) -> list[dict[str, Any]]:
        async with deps.db() as session:
            return await run_events_after(session, run_id, cursor)

    async for event in replay_then_tail(
        deps.bus,
        run_topic(run_id),
        start,
        fetch,
        contiguous=True,
        is_last=lambda e: e["type"] in TERMINAL_EVENT_TYPES,
    ):
        yield event


async def workspace_events(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, after: str | None
) -> AsyncIterator[dict[str, Any]]:
    """Call only after `runs.require_member` allowed the caller (run as a workflow)."""
    start = _cursor(after)
    if start is None:
        async with deps.db() as session:
            start = await last_workspace_event_id(session, workspace_id)

    async def fetch(cursor: int) -> list[dict[str, Any]]:
        async with deps.db() as session:
            return await workspace_events_after(session, workspace_id, cursor)

    async for event in replay_then_tail(
        deps.bus, workspace_topic(workspace_id), start, fetch, contiguous=False
    ):
        yield event
