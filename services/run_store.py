"""Database side of executing a run: claim with a lease, record steps, finish, sweep.

The lease is what makes execution exclusive: a run is RUNNING under one owner whose lease is
renewed by a heartbeat. A dead owner stops renewing; once the lease expires anyone may claim
the run again and resume it after its last finished step.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from base.db.types import utcnow
from base.events.bus import EventBus
from base.models.runs import Run, RunStatus, RunStep, StepStatus
from services.run_log import Outbox, append_run_event, append_workspace_event


@dataclass(frozen=True)
class ClaimedRun:
    id: uuid.UUID
    workspace_id: uuid.UUID
    workflow: str
    params: dict[str, Any]
    triggered_by_id: uuid.UUID | None
    steps: tuple[str, ...]
    reused_outputs: dict[str, Any]  # step name -> stored output, for steps not to run again
    execution: int  # 1 normally; more when a dead worker's run was picked up again
    cancel_requested: bool


class RunStore:
    def __init__(
        self, db: async_sessionmaker[Any], bus: EventBus, owner: str, lease_seconds: float
    ) -> None:
        self.db = db
        self.bus = bus
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)

    async def claim(self, run_id: uuid.UUID) -> ClaimedRun | None:
        """Take the run if it is QUEUED or its lease has expired; None if someone else has it."""
        now = utcnow()
        outbox = Outbox()
        async with self.db.begin() as session:
            claimed = await session.execute(
                update(Run)
                .where(
                    Run.id == run_id,
                    or_(
                        Run.status == RunStatus.QUEUED,
                        (Run.status == RunStatus.RUNNING) & (Run.lease_expires_at < now),
                    ),
                )
                .values(
                    status=RunStatus.RUNNING,
                    lease_owner=self.owner,
                    lease_expires_at=now + self.lease,
                    executions=Run.executions + 1,
                )
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:
                return None
            run = (await session.execute(select(Run).where(Run.id == run_id))).scalar_one()
            steps = (
                (
                    await session.execute(
                        select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.position)
                    )
                )
                .scalars()
                .all()
            )
            # Steps a dead worker finished are kept; the one it was in runs again.
            for step in steps:
                if step.status is StepStatus.RUNNING:
                    step.status = StepStatus.PENDING
            if run.executions == 1:
                run.started_at = now
                await append_run_event(session, outbox, run, "RUN_STARTED", message="started")
                await append_workspace_event(
                    session,
                    outbox,
                    run.workspace_id,
                    "RUN_STARTED",
                    message=f"{run.workflow} started for {run.subject_label}",
                    actor_id=run.triggered_by_id,
                    run=run,
                )
            else:
                await append_run_event(
                    session,
                    outbox,
                    run,
                    "RUN_RESUMED",
                    message=f"resumed after its previous executor stopped "
                    f"(execution {run.executions})",
                )
            result = ClaimedRun(
                id=run.id,
                workspace_id=run.workspace_id,
                workflow=run.workflow,
                params=dict(run.params),
                triggered_by_id=run.triggered_by_id,
                steps=tuple(s.name for s in steps),
                reused_outputs={
                    s.name: s.output
                    for s in steps
                    if s.status in (StepStatus.SUCCEEDED, StepStatus.REUSED)
                },
                execution=run.executions,
                cancel_requested=run.cancel_requested_at is not None,
            )
        await outbox.publish(self.bus)
        return result

    async def renew(self, run_id: uuid.UUID) -> tuple[bool, bool]:
        """Extend our lease: (still ours, cancel requested)."""
        async with self.db.begin() as session:
            row = (
                await session.execute(
                    update(Run)
                    .where(
                        Run.id == run_id,
                        Run.lease_owner == self.owner,
                        Run.status == RunStatus.RUNNING,
                    )
                    .values(lease_expires_at=utcnow() + self.lease)
                    .returning(Run.cancel_requested_at)
                )
            ).first()
        return (row is not None, row is not None and row[0] is not None)

    async def step_event(
        self,
        run_id: uuid.UUID,
        step: str,
        kind: str,
        *,
        message: str = "",
        fraction: float = 0.0,
        output: Any = None,
    ) -> None:
        """Record STEP_STARTED / STEP_PROGRESS / STEP_SUCCEEDED / STEP_FAILED and publish it."""
        now = utcnow()
        outbox = Outbox()
        async with self.db.begin() as session:
            run = await self._owned(session, run_id)
            if run is None:
                return
            steps = (
                (
                    await session.execute(
                        select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.position)
                    )
                )
                .scalars()
                .all()
            )
            row = next(s for s in steps if s.name == step)
            if kind == "STEP_STARTED":
                row.status, row.started_at, row.finished_at = StepStatus.RUNNING, now, None
                row.attempts += 1
                row.error_message = None
                run.current_step = step
            elif kind == "STEP_SUCCEEDED":
                row.status, row.finished_at, row.output = StepStatus.SUCCEEDED, now, output
            elif kind == "STEP_FAILED":
                row.status, row.finished_at = StepStatus.FAILED, now
                row.error_message = message[:1000]
            done = sum(s.status in (StepStatus.SUCCEEDED, StepStatus.REUSED) for s in steps)
            running = fraction if kind == "STEP_PROGRESS" else 0.0
            run.percent = min(99, int(100 * (done + running) / max(len(steps), 1)))
            await append_run_event(session, outbox, run, kind, message=message, step=step)
        await outbox.publish(self.bus)

    async def finish(
        self,
        run_id: uuid.UUID,
        status: RunStatus,
        *,
        output_summary: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> bool:
        """End the run if we still hold it; False if the lease was lost (someone else ends it)."""
        now = utcnow()
        outbox = Outbox()
        async with self.db.begin() as session:
            run = await self._owned(session, run_id)
            if run is None:
                return False
            run.status = status
            run.finished_at = now
            run.lease_owner = None
            run.lease_expires_at = None
            run.output_summary = output_summary
            run.error_code = error_code
            run.error_message = error_message[:1000] if error_message else None
            if status is RunStatus.SUCCEEDED:
                run.percent = 100
            else:
                await session.execute(
                    update(RunStep)
                    .where(
                        RunStep.run_id == run_id,
                        RunStep.status.in_([StepStatus.PENDING, StepStatus.RUNNING]),
                    )
                    .values(status=StepStatus.CANCELLED, finished_at=now)
                )
            message = {
                RunStatus.SUCCEEDED: output_summary or "done",
                RunStatus.FAILED: error_message or "failed",
                RunStatus.CANCELLED: error_message or "cancelled",
            }[status]
            await append_run_event(session, outbox, run, f"RUN_{status.value}", message=message)
            await append_workspace_event(
                session,
                outbox,
                run.workspace_id,
                "RUN_FINISHED",
                message=f"{run.workflow} {status.value.lower()} for {run.subject_label}",
                actor_id=run.triggered_by_id,
                run=run,
            )
        await outbox.publish(self.bus)
        return True

    async def release(self, run_id: uuid.UUID) -> None:
        """Give up our lease now (worker shutdown), so the next sweep resumes the run."""
        async with self.db.begin() as session:
            await session.execute(
                update(Run)
                .where(
                    Run.id == run_id, Run.lease_owner == self.owner, Run.status == RunStatus.RUNNING
                )
                .values(lease_expires_at=utcnow())
            )

    async def stale(self, *, queued_for_seconds: float) -> list[uuid.UUID]:
        """Runs to hand out again: RUNNING with an expired lease, or QUEUED for too long."""
        now = utcnow()
        async with self.db() as session:
            rows = await session.execute(
                select(Run.id).where(
                    or_(
                        (Run.status == RunStatus.RUNNING) & (Run.lease_expires_at < now),
                        (Run.status == RunStatus.QUEUED)
                        & (Run.created_at < now - timedelta(seconds=queued_for_seconds)),
                    )
                )
            )
            return list(rows.scalars())

    async def _owned(self, session: AsyncSession, run_id: uuid.UUID) -> Run | None:
        return (
            await session.execute(
                select(Run)
                .where(
                    Run.id == run_id, Run.lease_owner == self.owner, Run.status == RunStatus.RUNNING
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
