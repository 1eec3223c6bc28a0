"""Deleting what is past its retention (ADR 0088): old finished runs with their steps and events
(never the newest few of each subject), the progress events of runs finished a while ago, and
old workspace events (never the newest of each workspace).

Small batches, each its own transaction, so no lock is held for long; a batch that finds
another process pruning (PostgreSQL: an advisory lock) stops this pass instead of repeating its
work. A batch of runs first adds their usage to the month's `pruned_usage` (ADR 0126), in the
transaction that deletes them, so the Usage tab stays exact. Deleting a run deletes its steps,
events and workspace events by the foreign keys' ON DELETE CASCADE, and unlinks the answers and
retries that referred to it (SET NULL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from base.db.engine import take_turn
from base.db.types import utcnow
from base.models.runs import Run, RunEvent, RunStatus, WorkspaceEvent
from services.deps import ServiceDeps
from services.usage import keep_usage_of

BATCH = 500  # rows per transaction
_LOCK_KEY = "kd:retention"
_FINISHED = [s for s in RunStatus if s.is_terminal]


@dataclass
class Pruned:
    runs: int = 0
    progress_events: int = 0
    workspace_events: int = 0

    @property
    def total(self) -> int:
        return self.runs + self.progress_events + self.workspace_events


def _old_runs(keep_per_subject: int, cutoff: datetime) -> Select[Any]:
    """Finished runs that ended before `cutoff`, other than the newest of their subject."""
    ranked = select(
        Run.id,
        Run.status,
        Run.finished_at,
        func.row_number()
        .over(
            partition_by=(Run.subject_type, Run.subject_id),
            order_by=(Run.created_at.desc(), Run.id.desc()),
        )
        .label("newest"),
    ).subquery()
    return select(ranked.c.id).where(
        ranked.c.newest > keep_per_subject,
        ranked.c.status.in_(_FINISHED),
        ranked.c.finished_at < cutoff,
    )


def _old_progress_events(cutoff: datetime) -> Select[Any]:
    return (
        select(RunEvent.id)
        .join(Run, Run.id == RunEvent.run_id)
        .where(
            RunEvent.type == "STEP_PROGRESS",
            Run.status.in_(_FINISHED),
            Run.finished_at < cutoff,
        )
    )


def _old_workspace_events(kept: int, cutoff: datetime) -> Select[Any]:
    ranked = select(
        WorkspaceEvent.id,
        WorkspaceEvent.at,
        func.row_number()
        .over(partition_by=WorkspaceEvent.workspace_id, order_by=WorkspaceEvent.id.desc())
        .label("newest"),
    ).subquery()
    return select(ranked.c.id).where(ranked.c.newest > kept, ranked.c.at < cutoff)


async def _delete_in_batches(
    deps: ServiceDeps,
    ids: Select[Any],
    model: type[Run] | type[RunEvent] | type[WorkspaceEvent],
    before_delete: Callable[[AsyncSession, list[Any]], Awaitable[None]] | None = None,
) -> int:
    deleted = 0
    while True:
        async with deps.db.begin() as session:
            if not await take_turn(session, _LOCK_KEY):
                return deleted
            batch = list((await session.execute(ids.limit(BATCH))).scalars())
            if batch:
                if before_delete is not None:
                    await before_delete(session, batch)
                await session.execute(delete(model).where(model.id.in_(batch)))
        deleted += len(batch)
        if len(batch) < BATCH:
            return deleted


def _cutoff(now: datetime, days: float) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


async def prune(deps: ServiceDeps, *, now: datetime | None = None) -> Pruned:
    """One pass over the three kinds of rows, as the settings say; what it deleted."""
    settings = deps.settings
    now = now or utcnow()
    pruned = Pruned()
    if cutoff := _cutoff(now, settings.run_retention_days):
        pruned.runs = await _delete_in_batches(
            deps, _old_runs(settings.run_keep_per_subject, cutoff), Run, keep_usage_of
        )
    if cutoff := _cutoff(now, settings.run_progress_retention_days):
        pruned.progress_events = await _delete_in_batches(
            deps, _old_progress_events(cutoff), RunEvent
        )
    if cutoff := _cutoff(now, settings.workspace_event_retention_days):
        pruned.workspace_events = await _delete_in_batches(
            deps, _old_workspace_events(settings.workspace_events_kept, cutoff), WorkspaceEvent
        )
    return pruned
