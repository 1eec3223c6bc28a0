"""Writing and publishing run events and workspace activity: rows first, bus after commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from base.db.types import utcnow
from base.events.bus import EventBus, run_topic, user_topic, workspace_topic
from base.metrics import (
    record_run_cancelled,
    record_run_finished,
    record_run_resumed,
    record_run_started,
)
from base.models.accounts import Membership, User
from base.models.runs import Run, RunEvent, RunStatus, SubjectType, WorkspaceEvent
from services.access import member_workspace_ids

if TYPE_CHECKING:
    from services.deps import ServiceDeps

log = logging.getLogger("knowledge_desk.runs")

TERMINAL_EVENT_TYPES = {"RUN_SUCCEEDED", "RUN_FAILED", "RUN_CANCELLED"}
RUN_EVENTS_BATCH = 500  # events per read of a run's log
# The workspace events that also go to their actor's topic (`user_topic`): the end of a run the
# user started, for the shell's toast in whichever workspace the user looks at.
MY_RUN_EVENT_TYPE = "RUN_FINISHED"
MY_RUN_EVENTS_BATCH = 500  # events per read of a user's finished runs


def run_event_dict(event: RunEvent) -> dict[str, Any]:
    return {
        "cursor": event.seq,
        "run_id": str(event.run_id),
        "type": event.type,
        "status": event.status.value,
        "step": event.step,
        "percent": event.percent,
        "message": event.message,
        "at": event.at.isoformat(),
    }


def workspace_event_dict(event: Any) -> dict[str, Any]:
    """A stored event (a mapped WorkspaceEvent or a row of its columns) as its streams send it."""
    return {
        "cursor": event.id,
        "workspace_id": str(event.workspace_id),
        "type": event.type,
        "actor_id": str(event.actor_id) if event.actor_id else None,
        "actor_name": event.actor_name,
        "run_id": str(event.run_id) if event.run_id else None,
        "run_status": event.run_status.value if event.run_status else None,
        "subject_type": event.subject_type.value if event.subject_type else None,
        "subject_id": str(event.subject_id) if event.subject_id else None,
        "subject_label": event.subject_label,
        "message": event.message,
        "at": event.at.isoformat(),
    }


def run_progress_message(run: Run) -> dict[str, Any]:
    """A RUN_PROGRESS message for the workspace's stream: live only, never stored.

    It has no cursor of its own: the stream delivers it with the cursor of the last stored event
    it sent, so a reconnect with that cursor misses no stored event (progress is a live view;
    the Dashboard query gives the current state)."""
    return {
        "transient": True,
        "workspace_id": str(run.workspace_id),
        "type": "RUN_PROGRESS",
        "actor_id": None,
        "run_id": str(run.id),
        "run_status": run.status.value,
        "percent": run.percent,
        "step": run.current_step,
        "message": f"{run.workflow} {run.percent}%"
        + (f" ({run.current_step})" if run.current_step else ""),
        "at": utcnow().isoformat(),
    }


async def publish_transient(bus: EventBus, topic: str, message: dict[str, Any]) -> None:
    """Best effort, never raises: a lost progress message is replaced by the next one."""
    try:
        await bus.publish(topic, message)
    except Exception:
        log.warning("could not publish a progress message", exc_info=True)


@dataclass
class Outbox:
    """Events written in the current transaction, published once it has committed."""

    run_events: list[RunEvent] = field(default_factory=list)
    workspace_events: list[WorkspaceEvent] = field(default_factory=list)
    # The metrics of runs that started, resumed or ended in the transaction (ADR 0087):
    # counted once it has committed, wherever the run ended (its executor, or a cancel).
    measures: list[Callable[[], None]] = field(default_factory=list)

    async def publish(self, bus: EventBus) -> None:
        """Tell subscribers, best effort; never raises.

        The rows have committed, so they are the truth whatever happens here: a subscriber that
        misses a publish (the bus is down, or this task is cancelled or killed before it is done)
        reads the rows after a gap, a RESYNC or its idle interval."""
        for measure in self.measures:
            measure()
        self.measures.clear()
        messages = [(run_topic(e.run_id), run_event_dict(e)) for e in self.run_events]
        for e in self.workspace_events:
            messages.append((workspace_topic(e.workspace_id), workspace_event_dict(e)))
            if e.type == MY_RUN_EVENT_TYPE and e.actor_id is not None:
                # One more message per finished run, so that only its starter's toast stream
                # wakes (ADR 0086), not every member's in every workspace.
                messages.append((user_topic(e.actor_id), workspace_event_dict(e)))
        self.run_events.clear()
        self.workspace_events.clear()
        for sent, (topic, message) in enumerate(messages):
            try:
                await bus.publish(topic, message)
            except Exception:
                log.warning(
                    "could not publish %d committed event(s); subscribers will read them from "
                    "the log",
                    len(messages) - sent,
                    exc_info=True,
                )
                return


@asynccontextmanager
async def transaction_with_events(deps: ServiceDeps) -> AsyncIterator[tuple[AsyncSession, Outbox]]:
    """A write transaction whose events are published once it has committed (never when the
    block raises: the rows rolled back)."""
    outbox = Outbox()
    async with deps.db.begin() as session:
        yield session, outbox
    await outbox.publish(deps.bus)


async def append_run_event(
    session: AsyncSession,
    outbox: Outbox,
    run: Run,
    type: str,
    *,
    message: str = "",
    step: str | None = None,
) -> RunEvent:
    """Next event of the run's log. Only the run's lease holder (or its creator) writes, so
    `last_seq + 1` cannot collide; the unique (run_id, seq) constraint would refuse it if it did."""
    run.last_seq += 1
    event = RunEvent(
        run_id=run.id,
        seq=run.last_seq,
        type=type,
        status=run.status,
        step=step if step is not None else run.current_step,
        percent=run.percent,
        message=message,
        at=utcnow(),
    )
    session.add(event)
    outbox.run_events.append(event)
    _measure(outbox, run, event)
    return event


def _measure(outbox: Outbox, run: Run, event: RunEvent) -> None:
    if event.type not in TERMINAL_EVENT_TYPES and event.type not in ("RUN_STARTED", "RUN_RESUMED"):
        return
    workflow = run.workflow
    # created_at is None only before the run's first flush (a run ended as it is created).
    since_created = (event.at - run.created_at).total_seconds() if run.created_at else 0.0
    if event.type in TERMINAL_EVENT_TYPES:
        status = run.status.value
        outbox.measures.append(lambda: record_run_finished(workflow, status, since_created))
        if run.status is RunStatus.CANCELLED and run.cancel_requested_at is not None:
            since_request = (event.at - run.cancel_requested_at).total_seconds()
            outbox.measures.append(lambda: record_run_cancelled(workflow, since_request))
    elif event.type == "RUN_STARTED":
        outbox.measures.append(lambda: record_run_started(workflow, since_created))
    elif event.type == "RUN_RESUMED":
        outbox.measures.append(lambda: record_run_resumed(workflow))


@dataclass(frozen=True)
class Subject:
    """What a workspace event is about, named as it is at the time."""

    type: SubjectType
    id: uuid.UUID
    label: str


async def append_workspace_event(
    session: AsyncSession,
    outbox: Outbox,
    workspace_id: uuid.UUID,
    type: str,
    *,
    message: str,
    actor_id: uuid.UUID | None = None,
    run: Run | None = None,
    subject: Subject | None = None,
) -> WorkspaceEvent:
    """Next entry of the workspace's activity, in the caller's transaction; a run's events are
    about the run's subject unless `subject` says otherwise."""
    if subject is None and run is not None:
        subject = Subject(run.subject_type, run.subject_id, run.subject_label)
    # Ids are the cursor: ids of one workspace must commit in id order, or a reader could see
    # id 10 before id 9 commits and skip 9. Serialise per workspace (SQLite serialises anyway).
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": str(workspace_id)}
        )
    actor_name = (
        await session.scalar(select(User.name).where(User.id == actor_id)) if actor_id else None
    )
    event = WorkspaceEvent(
        workspace_id=workspace_id,
        type=type,
        actor_id=actor_id,
        actor_name=actor_name,
        run_id=run.id if run else None,
        run_status=run.status if run else None,
        subject_type=subject.type if subject else None,
        subject_id=subject.id if subject else None,
        subject_label=subject.label[:300] if subject else None,
        message=message,
        at=utcnow(),
    )
    session.add(event)
    await session.flush()
    outbox.workspace_events.append(event)
    return event


async def run_events_after(
    session: AsyncSession, run_id: uuid.UUID, after: int, limit: int = RUN_EVENTS_BATCH
) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(RunEvent)
            .where(RunEvent.run_id == run_id, RunEvent.seq > after)
            .order_by(RunEvent.seq)
            .limit(limit)
        )
    ).scalars()
    return [run_event_dict(r) for r in rows]


async def workspace_events_after(
    session: AsyncSession, workspace_id: uuid.UUID, after: int, limit: int = 500
) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(WorkspaceEvent)
            .where(WorkspaceEvent.workspace_id == workspace_id, WorkspaceEvent.id > after)
            .order_by(WorkspaceEvent.id)
            .limit(limit)
        )
    ).scalars()
    return [workspace_event_dict(r) for r in rows]


async def last_workspace_event_id(session: AsyncSession, workspace_id: uuid.UUID) -> int:
    return (
        await session.execute(
            select(func.coalesce(func.max(WorkspaceEvent.id), 0)).where(
                WorkspaceEvent.workspace_id == workspace_id
            )
        )
    ).scalar_one()


@dataclass(frozen=True)
class MyWorkspaces:
    """The workspaces a user belongs to now, each with its newest event id, and the newest
    workspace event id of all (what any event written after this read will exceed)."""

    latest: dict[uuid.UUID, int]
    horizon: int


async def newest_in_my_workspaces(
    session: AsyncSession, user_id: uuid.UUID
) -> dict[uuid.UUID, int]:
    """One statement: each of the user's workspaces with its newest event id (one backward probe
    of ix_workspace_events_workspace_id each; 0 without events)."""
    newest_of_workspace = (
        select(func.coalesce(func.max(WorkspaceEvent.id), 0))
        .where(WorkspaceEvent.workspace_id == Membership.workspace_id)
        .correlate(Membership)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Membership.workspace_id, newest_of_workspace).where(Membership.user_id == user_id)
    )
    return {row[0]: row[1] for row in rows}


async def my_workspaces(session: AsyncSession, user_id: uuid.UUID) -> MyWorkspaces:
    """Two statements: `newest_in_my_workspaces`, and the newest id of all (the primary key)."""
    latest = await newest_in_my_workspaces(session, user_id)
    horizon = (
        await session.execute(select(func.coalesce(func.max(WorkspaceEvent.id), 0)))
    ).scalar_one()
    return MyWorkspaces(latest, horizon)


async def my_run_events_after(
    session: AsyncSession,
    user_id: uuid.UUID,
    positions: dict[uuid.UUID, int],
    limit: int = MY_RUN_EVENTS_BATCH,
) -> list[dict[str, Any]]:
    """The RUN_FINISHED events of the runs `user_id` started, after each workspace's position,
    in the workspaces among `positions` the user still belongs to; in id order, at most `limit`.

    Ids only rise within one workspace in commit order (`append_workspace_event`), so each
    workspace has its own position; in id order the result is a prefix of each workspace's
    events, so moving each workspace's position to the last of its events read leaves no gap.
    One statement, read through ix_workspace_events_actor (actor, type, workspace, id)."""
    if not positions:
        return []
    rows = (
        await session.execute(
            select(WorkspaceEvent)
            .where(
                WorkspaceEvent.actor_id == user_id,
                WorkspaceEvent.type == MY_RUN_EVENT_TYPE,
                or_(
                    *(
                        and_(WorkspaceEvent.workspace_id == workspace_id, WorkspaceEvent.id > after)
                        for workspace_id, after in sorted(positions.items())
                    )
                ),
                WorkspaceEvent.workspace_id.in_(member_workspace_ids(user_id)),
            )
            .order_by(WorkspaceEvent.id)
            .limit(limit)
        )
    ).scalars()
    return [workspace_event_dict(r) for r in rows]
