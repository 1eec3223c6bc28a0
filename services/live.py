"""The event streams behind the subscriptions.

Resolvers authorise a stream once, through a workflow, before opening it; the stream then
re-checks access at most every `settings.access_recheck_seconds` (ACCESS_RECHECK_SECONDS) before
delivering live events, so a member who is removed stops receiving the workspace's events.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import select

from base.errors import DomainError, Invalid
from base.events.bus import RESYNC, answer_text_key, answer_topic, run_topic, workspace_topic
from base.events.stream import replay_then_tail
from base.models.chat import AnswerState, Message
from base.models.runs import Run
from services import chat, runs
from services.deps import ServiceDeps
from services.run_log import (
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


# (loop, user, stream key) -> the latest access check and when it started. Shared by every
# subscription of the process: a thousand subscribers of one run wait on one query per
# interval (and all get its NotFound once access is gone), instead of a thousand queries.
_checks: dict[tuple[int, Any, str], tuple[float, asyncio.Future[Any]]] = {}


def _failed_to_answer(check: asyncio.Future[Any]) -> bool:
    """The check failed without an answer (the database is down): ask again next time."""
    if check.cancelled():
        return True
    error = check.exception()
    return error is not None and not isinstance(error, DomainError)


def _throttled(
    deps: ServiceDeps, key: str, check: Callable[[], Awaitable[Any]]
) -> Callable[[], Awaitable[None]]:
    loop = asyncio.get_running_loop()
    interval = deps.settings.access_recheck_seconds
    cache_key = (id(loop), deps.principal.user_id, key)
    if cache_key not in _checks:
        allowed: asyncio.Future[Any] = loop.create_future()
        allowed.set_result(None)  # the resolver has just authorised this stream
        _checks[cache_key] = (time.monotonic(), allowed)

    async def maybe_check() -> None:
        started, latest = _checks.get(cache_key, (0.0, None))
        stale = time.monotonic() - started >= interval
        if latest is None or (latest.done() and (stale or _failed_to_answer(latest))):
            if len(_checks) > 100_000:  # bound it: forgetting only costs a query
                _checks.clear()
            latest = asyncio.ensure_future(check())
            _checks[cache_key] = (time.monotonic(), latest)
        await asyncio.shield(latest)  # raises NotFound once access is gone

    return maybe_check


async def run_progress(
    deps: ServiceDeps, *, run_id: uuid.UUID, after: str | None
) -> AsyncIterator[dict[str, Any]]:
    """Call only after `runs.require_run` allowed the caller (resolvers run it as a workflow)."""
    start = _cursor(after) or 0
    async with deps.db() as session:
        status, last_seq = (
            await session.execute(select(Run.status, Run.last_seq).where(Run.id == run_id))
        ).one()
    if status.is_terminal and start >= last_seq:
        return  # the client has already seen the final event

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
        idle_seconds=deps.settings.event_stream_idle_seconds,
        check_access=_throttled(
            deps, f"run:{run_id}", lambda: runs.require_run(deps, run_id=run_id)
        ),
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
        deps.bus,
        workspace_topic(workspace_id),
        start,
        fetch,
        contiguous=False,
        idle_seconds=deps.settings.event_stream_idle_seconds,
        check_access=_throttled(
            deps,
            f"workspace:{workspace_id}",
            lambda: runs.require_member(deps, workspace_id=workspace_id),
        ),
    ):
        yield event


def _offset(after: str | None) -> int:
    if after is None:
        return 0
    if not after.isdigit() or len(after) > 9:
        raise Invalid("This cursor is not valid here.", code="INVALID_CURSOR", field="after")
    return int(after)


async def answer_stream(
    deps: ServiceDeps, *, message_id: uuid.UUID, after: str | None
) -> AsyncIterator[dict[str, Any]]:
    """An answer as it is written (ADR 0073): TEXT events, each the text after the cursor it
    was sent at, then one FINISHED event once the answer's row holds the final answer.

    The cursor is a character offset into the answer's text. The text so far comes from the
    bus's text store (or, once the answer has ended, from its row); new text arrives as deltas
    with their offsets, so a late or returning subscriber gets exactly the text after its
    cursor, once. A delta beyond the cursor (a gap: missed while the bus reconnected) makes it
    read the stored text again, as RESYNC and a quiet interval do.

    Call only after `chat.require_answer` allowed the caller (resolvers run it as a workflow).
    """
    cursor = _offset(after)
    check_access = _throttled(
        deps, f"answer:{message_id}", lambda: chat.require_answer(deps, message_id=message_id)
    )
    idle = deps.settings.event_stream_idle_seconds

    def text_after(text: str) -> dict[str, Any] | None:
        nonlocal cursor
        if len(text) <= cursor:
            return None
        piece, cursor = text[cursor:], len(text)
        return {"type": "TEXT", "cursor": cursor, "text": piece}

    async with deps.bus.subscribe(answer_topic(message_id)) as live:
        while True:
            async with deps.db() as session:
                state, stored = (
                    await session.execute(
                        select(Message.state, Message.text).where(Message.id == message_id)
                    )
                ).one()
            if state is None or AnswerState(state).is_final:
                if (event := text_after(stored)) is not None:
                    yield event
                yield {"type": "FINISHED", "cursor": max(cursor, len(stored)), "text": ""}
                return
            if event := text_after(await deps.bus.read_text(answer_text_key(message_id)) or ""):
                yield event
            while True:
                try:
                    heard = await asyncio.wait_for(live.get(), idle)
                except TimeoutError:
                    break  # quiet: read the row and the stored text again
                await check_access()
                if heard is RESYNC or heard.get("type") != "TEXT":
                    break  # FINISHED (or a possible loss): read again
                if heard["end"] <= cursor:
                    continue
                if heard["start"] > cursor:
                    break  # a gap
                piece = heard["text"][cursor - heard["start"] :]
                cursor = heard["end"]
                yield {"type": "TEXT", "cursor": cursor, "text": piece}
