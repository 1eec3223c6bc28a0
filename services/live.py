"""The event streams behind the subscriptions.

Resolvers authorise a stream once, through a workflow, before opening it; the stream then
re-checks access at most every `settings.access_recheck_seconds` (ACCESS_RECHECK_SECONDS) before
delivering live events, so a member who is removed stops receiving the workspace's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sqlalchemy import select

from base.errors import DomainError, Invalid
from base.events.bus import run_topic, workspace_topic
from base.events.stream import replay_then_tail
from base.models.documents import DocumentStage, DocumentStatus
from base.models.runs import Run
from services import runs, uploads
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


async def upload_progress(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, document_ids: list[uuid.UUID]
) -> AsyncIterator[uploads.FileProgress]:
    """The upload screen's rows: every document's state now, then each change, until every one
    is READY or FAILED. Call only after `uploads.require_uploads` allowed the caller.

    Built on the workspace's stream: its live RUN_PROGRESS messages move a row's stage and
    percent without a read; its stored run events (started, finished; a retry or reprocess
    queued meanwhile) make the row be read again. The stream starts at the workspace's last
    stored event before the first read, so nothing that happens after that read is missed."""
    async with deps.db() as session:
        start = await last_workspace_event_id(session, workspace_id)
    ids = list(dict.fromkeys(document_ids))
    rows = {
        p.document_id: p
        for p in await uploads.progress_of(deps, workspace_id=workspace_id, document_ids=ids)
    }
    for document_id in ids:
        yield rows[document_id]
    if all(p.done for p in rows.values()):
        return
    by_run = {p.run_id: p.document_id for p in rows.values() if p.run_id}
    stream = workspace_events(deps, workspace_id=workspace_id, after=str(start))
    async with contextlib.aclosing(stream):  # type: ignore[type-var]  # an async generator
        async for event in stream:
            run_id = uuid.UUID(event["run_id"]) if event.get("run_id") else None
            if run_id is None:
                continue
            known = by_run.get(run_id)
            if event["type"] == "RUN_PROGRESS":
                if known is None or rows[known].done:
                    continue
                document_id = known
                current = rows[document_id]
                changed = _not_backwards(
                    current,
                    dataclasses.replace(
                        current,
                        status=DocumentStatus.PROCESSING,
                        stage=event.get("step") or current.stage,
                        percent=int(event.get("percent") or 0),
                    ),
                )
            else:
                subject = known or await uploads.subject_of_run(deps, run_id=run_id)
                if subject is None or subject not in rows:
                    continue
                document_id = subject
                [changed] = await uploads.progress_of(
                    deps, workspace_id=workspace_id, document_ids=[document_id], previous=rows
                )
                changed = _not_backwards(rows[document_id], changed)
                if changed.run_id is not None:
                    by_run[changed.run_id] = document_id
            if changed != rows[document_id]:
                rows[document_id] = changed
                yield changed
            if all(p.done for p in rows.values()):
                return


_STATUS_ORDER = {
    DocumentStatus.QUEUED: 0,
    DocumentStatus.PROCESSING: 1,
    DocumentStatus.READY: 2,
    DocumentStatus.FAILED: 2,
}


def _not_backwards(shown: uploads.FileProgress, read: uploads.FileProgress) -> uploads.FileProgress:
    """A row read again while the same run goes on never moves back: live messages may have
    shown a later percent (or status) than the stored run when it was read."""
    if read.run_id != shown.run_id or read.done:
        return read
    if _STATUS_ORDER[read.status] < _STATUS_ORDER[shown.status]:
        read = dataclasses.replace(read, status=shown.status, stage=read.stage or shown.stage)
    if _stage_index(read.stage) < _stage_index(shown.stage):
        read = dataclasses.replace(read, stage=shown.stage)
    return dataclasses.replace(read, percent=max(read.percent, shown.percent))


_STAGES = [stage.value for stage in DocumentStage]


def _stage_index(stage: str | None) -> int:
    return _STAGES.index(stage) if stage in _STAGES else -1
