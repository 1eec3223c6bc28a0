"""The event streams behind the subscriptions.

Resolvers authorise a stream, through a workflow, before opening it; the stream then re-checks
access at most every `settings.access_recheck_seconds` (ACCESS_RECHECK_SECONDS) before
delivering live events, so a member who is removed stops receiving the workspace's events. The
opening check and the re-checks of one user's streams of one run (or workspace) share one query
per interval; see `_checks`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from base.errors import DomainError, Invalid
from base.events.bus import (
    RESYNC,
    answer_text_key,
    answer_topic,
    run_topic,
    user_topic,
    workspace_topic,
)
from base.events.stream import replay_then_tail, replay_then_tail_batches
from base.models.chat import AnswerState, Message
from base.models.documents import DocumentStage, DocumentStatus
from base.models.runs import Run, RunStatus
from services import chat, runs, uploads
from services.deps import ServiceDeps
from services.run_log import (
    MY_RUN_EVENTS_BATCH,
    RUN_EVENTS_BATCH,
    TERMINAL_EVENT_TYPES,
    last_workspace_event_id,
    my_run_events_after,
    my_workspaces,
    newest_in_my_workspaces,
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
# Opening a stream shares it too, as long as it allowed: a check of the same user and stream
# that is in flight or started less than the interval ago answers (a refusal is asked again, so
# a member just added is not turned away by an earlier answer). Never shared between users.
_checks: dict[tuple[int, Any, str], tuple[float, asyncio.Future[Any]]] = {}


def _failed_to_answer(check: asyncio.Future[Any]) -> bool:
    """The check failed without an answer (the database is down): ask again next time."""
    if check.cancelled():
        return True
    error = check.exception()
    return error is not None and not isinstance(error, DomainError)


def _refused(check: asyncio.Future[Any]) -> bool:
    return not check.cancelled() and isinstance(check.exception(), DomainError)


async def _shared_check(
    deps: ServiceDeps, key: str, check: Callable[[], Awaitable[Any]], *, opening: bool
) -> None:
    """`check()`, or the answer of one started less than ACCESS_RECHECK_SECONDS ago for the same
    user and stream; raises NotFound once access is gone."""
    if deps.principal.user_id is None:
        await check()  # refuses: nobody to share with
        return
    cache_key = (id(asyncio.get_running_loop()), deps.principal.user_id, key)
    latest = _answering(deps, cache_key, opening=opening)
    if latest is None:
        if len(_checks) > 100_000:  # bound it: forgetting only costs a query
            _checks.clear()
        latest = asyncio.ensure_future(check())
        _checks[cache_key] = (time.monotonic(), latest)
    await asyncio.shield(latest)


def _answering(
    deps: ServiceDeps, cache_key: tuple[int, Any, str], *, opening: bool
) -> asyncio.Future[Any] | None:
    """The check that answers for `cache_key` now: one in flight, or one that started less than
    ACCESS_RECHECK_SECONDS ago and neither failed to answer nor (when opening) refused."""
    started, latest = _checks.get(cache_key, (0.0, None))
    if latest is None or not latest.done():
        return latest
    if (
        time.monotonic() - started >= deps.settings.access_recheck_seconds
        or _failed_to_answer(latest)
        or (opening and _refused(latest))
    ):
        return None
    return latest


def _run_key(run_id: uuid.UUID) -> str:
    return f"run:{run_id}"


def _workspace_key(workspace_id: uuid.UUID) -> str:
    return f"workspace:{workspace_id}"


async def open_run_progress(
    deps: ServiceDeps, *, run_id: uuid.UUID, check: Callable[[], Awaitable[Any]]
) -> None:
    """Before a run's stream opens: `check()`, the caller's run of `runs.require_run` (a
    resolver passes its workflow), shared (see `_checks`): while a check of the same user and
    run is in flight, or one allowed less than ACCESS_RECHECK_SECONDS ago, that one answers and
    `check` is not called (ADR 0040 and its amendment)."""
    await _shared_check(deps, _run_key(run_id), check, opening=True)


async def open_workspace_events(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, check: Callable[[], Awaitable[Any]]
) -> None:
    """Before a workspace's stream opens: `check()`, the caller's run of
    `runs.require_member`, shared as in `open_run_progress`."""
    await _shared_check(deps, _workspace_key(workspace_id), check, opening=True)


def _rechecked(
    deps: ServiceDeps, key: str, check: Callable[[], Awaitable[Any]]
) -> Callable[[], Awaitable[None]]:
    """The re-check a stream runs before each live delivery."""
    return lambda: _shared_check(deps, key, check, opening=False)


@dataclass(frozen=True)
class RunHead:
    """What a run's stream reads before it opens: the run's status and last cursor, and, once
    the run has ended, its whole log (it can no longer change: writes need a RUNNING run)."""

    status: RunStatus
    last_seq: int
    log: tuple[dict[str, Any], ...] | None = None  # only for an ended run


# The heads of ended runs, shared by every stream of the process (a thousand clients replaying a
# finished run read it once), least recently used first, at most FINISHED_LOG_EVENTS events in
# all. Their event dicts are shared too: nothing may change them.
FINISHED_LOG_EVENTS = 10_000  # a few MiB
_finished: OrderedDict[tuple[str, uuid.UUID], RunHead] = OrderedDict()
_finished_events = 0
# (loop, database, run) -> the head read in flight, which every stream arriving meanwhile awaits.
_reading: dict[tuple[int, str, uuid.UUID], asyncio.Future[RunHead]] = {}


def _remember_finished(key: tuple[str, uuid.UUID], head: RunHead) -> None:
    global _finished_events
    assert head.log is not None
    if key in _finished or len(head.log) > FINISHED_LOG_EVENTS:
        return
    _finished[key] = head
    _finished_events += len(head.log)
    while _finished_events > FINISHED_LOG_EVENTS:
        _key, evicted = _finished.popitem(last=False)
        _finished_events -= len(evicted.log or ())


async def _read_head(deps: ServiceDeps, run_id: uuid.UUID) -> RunHead:
    async with deps.db() as session:
        status, last_seq = (
            await session.execute(select(Run.status, Run.last_seq).where(Run.id == run_id))
        ).one()
        if not status.is_terminal or last_seq > RUN_EVENTS_BATCH:
            return RunHead(status, last_seq)
        # The terminal status commits with the final event, so the log read now is complete.
        log = tuple(await run_events_after(session, run_id, 0, limit=RUN_EVENTS_BATCH))
    if [e["cursor"] for e in log] != list(range(1, last_seq + 1)):
        return RunHead(status, last_seq)  # not the contiguous log expected: read it as usual
    head = RunHead(status, last_seq, log)
    _remember_finished((deps.settings.database_url, run_id), head)
    return head


async def run_head(deps: ServiceDeps, run_id: uuid.UUID) -> RunHead:
    """The run's head: from memory once the run has ended, else read once for all the streams
    that ask while the read is in flight."""
    key = (deps.settings.database_url, run_id)
    finished = _finished.get(key)
    if finished is not None:
        _finished.move_to_end(key)
        return finished
    flight = (id(asyncio.get_running_loop()), *key)
    reading = _reading.get(flight)
    if reading is None:
        reading = asyncio.ensure_future(_read_head(deps, run_id))
        _reading[flight] = reading
        reading.add_done_callback(lambda done: _forget_read(flight, done))
    # Shielded: a client that leaves does not cancel the read the others wait for.
    return await asyncio.shield(reading)


def _forget_read(flight: tuple[int, str, uuid.UUID], done: asyncio.Future[RunHead]) -> None:
    if _reading.get(flight) is done:
        del _reading[flight]
    if not done.cancelled():
        done.exception()  # retrieved: the streams that awaited it have raised it


async def run_progress(
    deps: ServiceDeps, *, run_id: uuid.UUID, after: str | None
) -> AsyncIterator[list[dict[str, Any]]]:
    """A run's events after `after` in batches: what one read of its log finds (at most
    RUN_EVENTS_BATCH events), then each live event alone (ADR 0130). Call only after
    `open_run_progress` allowed the caller."""
    start = _cursor(after) or 0
    head = await run_head(deps, run_id)
    if head.log is not None:  # the run has ended: its log, from memory
        batch = [event for event in head.log if event["cursor"] > start]
        if batch:
            yield batch
        return
    if head.status.is_terminal and start >= head.last_seq:
        return  # the client has already seen the final event

    async def fetch(cursor: int) -> list[dict[str, Any]]:
        async with deps.db() as session:
            return await run_events_after(session, run_id, cursor)

    async for batch in replay_then_tail_batches(
        deps.bus,
        run_topic(run_id),
        start,
        fetch,
        contiguous=True,
        is_last=lambda e: e["type"] in TERMINAL_EVENT_TYPES,
        batch_size=RUN_EVENTS_BATCH,
        idle_seconds=deps.settings.event_stream_idle_seconds,
        check_access=_rechecked(
            deps, _run_key(run_id), lambda: runs.require_run(deps, run_id=run_id)
        ),
    ):
        yield batch


async def workspace_events(
    deps: ServiceDeps, *, workspace_id: uuid.UUID, after: str | None
) -> AsyncIterator[dict[str, Any]]:
    """Call only after `open_workspace_events` allowed the caller."""
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
        check_access=_rechecked(
            deps,
            _workspace_key(workspace_id),
            lambda: runs.require_member(deps, workspace_id=workspace_id),
        ),
    ):
        yield event


MAX_POSITIONS_CURSOR = 65_536  # characters: about 900 workspaces


def encode_positions(positions: dict[uuid.UUID, int]) -> str:
    """myRunEvents' cursor: base64url (unpadded) of JSON {workspace uuid: last id}."""
    body = json.dumps({str(w): i for w, i in sorted(positions.items())}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_positions(after: str | None) -> dict[uuid.UUID, int] | None:
    """The positions in a myRunEvents cursor; INVALID_CURSOR for anything else."""
    if after is None:
        return None
    invalid = Invalid("This cursor is not valid here.", code="INVALID_CURSOR", field="after")
    if len(after) > MAX_POSITIONS_CURSOR:
        raise invalid
    try:
        raw = base64.b64decode(after + "=" * (-len(after) % 4), altchars=b"-_", validate=True)
        decoded = json.loads(raw)
        if not isinstance(decoded, dict):
            raise invalid
        positions = {uuid.UUID(w): i for w, i in decoded.items()}
    except (binascii.Error, ValueError, TypeError, RecursionError) as error:  # JSON, UUID too
        raise invalid from error
    for position in positions.values():
        if type(position) is not int or not 0 <= position < 2**63:
            raise invalid
    return positions


async def authorize_my_run_events(deps: ServiceDeps) -> None:
    """Before the caller's toast stream opens: a signed-in user (the stream only ever reads the
    caller's own runs, in the caller's workspaces)."""
    deps.principal.require_user()


async def my_run_events_cursor(deps: ServiceDeps) -> str:
    """Where the caller's toast stream stands now: each of their workspaces at its newest event.
    The shell subscribes `myRunEvents(after:)` with it, so a run of theirs that ends between the
    page load and the subscription still toasts."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        return encode_positions(await newest_in_my_workspaces(session, user_id))


async def my_run_events(deps: ServiceDeps, *, after: str | None) -> AsyncIterator[dict[str, Any]]:
    """The RUN_FINISHED events of the runs the caller started, in every workspace the caller
    belongs to: after `after` (a position per workspace), then live ones (ADR 0086).

    Each event's `cursor` is the whole position after it. A workspace missing from `after` (or
    every workspace, without `after`) starts at its newest event; one the caller joins while the
    stream runs starts at the newest id of all read at the check before (any run the caller
    starts there ends with a higher id); one the caller left is no longer read, neither from
    the cursor nor after the next membership check (every ACCESS_RECHECK_SECONDS, before live
    deliveries): each read also requires the membership.

    Built on `replay_then_tail` over the caller's topic (`user_topic`, which only the ends of
    the caller's runs are published to), with the stream's own count of events as its cursor:
    the read itself moves the positions, so it never returns an event twice."""
    user_id = deps.principal.require_user()
    given = decode_positions(after)
    async with deps.db() as session:
        mine = await my_workspaces(session, user_id)
    positions = {
        workspace_id: newest if given is None else given.get(workspace_id, newest)
        for workspace_id, newest in mine.latest.items()
    }
    horizon, checked = mine.horizon, time.monotonic()
    sent = 0

    async def fetch(_sent: int) -> list[dict[str, Any]]:
        nonlocal sent
        async with deps.db() as session:
            events = await my_run_events_after(session, user_id, positions)
        numbered = []
        for event in events:
            positions[uuid.UUID(event["workspace_id"])] = event["cursor"]
            sent += 1
            numbered.append({**event, "cursor": sent, "position": encode_positions(positions)})
        return numbered

    async def recheck_memberships() -> None:
        nonlocal horizon, checked
        if time.monotonic() - checked < deps.settings.access_recheck_seconds:
            return
        async with deps.db() as session:
            now = await my_workspaces(session, user_id)
        for gone in positions.keys() - now.latest.keys():
            del positions[gone]
        for joined in now.latest.keys() - positions.keys():
            positions[joined] = horizon
        horizon, checked = now.horizon, time.monotonic()

    async for event in replay_then_tail(
        deps.bus,
        user_topic(user_id),
        0,
        fetch,
        contiguous=False,
        check_access=recheck_memberships,
        batch_size=MY_RUN_EVENTS_BATCH,
        idle_seconds=deps.settings.event_stream_idle_seconds,
    ):
        position = event.pop("position")
        yield {**event, "cursor": position}


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
    check_access = _rechecked(
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
