"""Database side of executing a run: claim with a lease, record steps, finish, sweep.

The lease is what makes execution exclusive: a run is RUNNING under one owner whose lease is
renewed by a heartbeat. A dead owner stops renewing; once the lease expires anyone may claim
the run again and resume it after its last finished step.

Lease times are the database's clock (`clock_timestamp()` on PostgreSQL; on SQLite, a file on
this host, this host's clock), never the executor's, so hosts whose clocks disagree still agree
on who holds a run. Every write an executor makes for a run is fenced: it happens only while the
run is RUNNING under its lease with at least `margin` of the lease left, and PostgreSQL ends any
of these transactions that sits idle for `margin`, so a write that passed the fence commits
before the lease ends even when its executor freezes mid-transaction. A late writer records
nothing and gets `LeaseLost`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, DateTime, and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from base.db.types import utcnow
from base.events.bus import EventBus, workspace_topic
from base.models.runs import Run, RunStatus, RunStep, StepStatus
from services.run_log import (
    Outbox,
    append_run_event,
    append_workspace_event,
    publish_transient,
    run_progress_message,
)

MARGIN_MAX_SECONDS = 2.0


@dataclass(frozen=True)
class StepChange:
    """One change of a run's step, as its executor saw it."""

    step: str
    kind: str  # STEP_STARTED, STEP_PROGRESS, STEP_SUCCEEDED or STEP_FAILED
    message: str = ""
    fraction: float = 0.0  # how far a STEP_PROGRESS is through its step
    output: Any = None  # a STEP_SUCCEEDED's output, kept for a retry to reuse


class LeaseLost(Exception):
    """The run is no longer ours to write (its lease expired or another executor holds it)."""


def _db_now(session: AsyncSession) -> Any:
    """The database's current time, as an SQL expression (a value on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.clock_timestamp(type_=DateTime(timezone=True))
    return utcnow()  # SQLite is a file on this host: the host's clock is the database's


def _settled(steps: Sequence[RunStep]) -> int:
    return sum(s.status in (StepStatus.SUCCEEDED, StepStatus.REUSED) for s in steps)


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
        self,
        db: async_sessionmaker[Any],
        bus: EventBus,
        owner: str,
        lease_seconds: float,
        *,
        progress_interval: float = 0.25,
    ) -> None:
        self.db = db
        self.bus = bus
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        # The part of a lease its holder may not write in (see the module docstring). It is also
        # how long PostgreSQL lets one of our transactions idle, so it must stay well above a
        # stall of a busy process between two statements (a few ms normally).
        self.margin = timedelta(seconds=min(MARGIN_MAX_SECONDS, lease_seconds / 4))
        # WORKSPACE_PROGRESS_INTERVAL_SECONDS: run id -> when its last STEP_PROGRESS went out on
        # the workspace's stream (RUN_PROGRESS), so a chatty step sends a few per second at most.
        self.progress_interval = progress_interval
        self._progress_sent: dict[uuid.UUID, float] = {}

    @property
    def usable_lease_seconds(self) -> float:
        """How long after a claim or renewal starts its holder may still write."""
        return (self.lease - self.margin).total_seconds()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.db.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                idle_ms = int(self.margin.total_seconds() * 1000)
                await session.execute(
                    text(f"SET LOCAL idle_in_transaction_session_timeout = {idle_ms}")
                )
            yield session

    def _fence(self, now: Any) -> ColumnElement[bool]:
        """Ours, still RUNNING, with more than the margin of the lease left."""
        return and_(
            Run.lease_owner == self.owner,
            Run.status == RunStatus.RUNNING,
            Run.lease_expires_at > now + self.margin,
        )

    async def claim(self, run_id: uuid.UUID) -> ClaimedRun | None:
        """Take the run if it is QUEUED or its lease has expired; None if someone else has it."""
        outbox = Outbox()
        async with self._transaction() as session:
            now = _db_now(session)
            # An UPDATE returns a CursorResult (with rowcount); mypy picks the generic overload.
            claimed: CursorResult[Any] = await session.execute(  # type: ignore[assignment]
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
                ),
                execution_options={"synchronize_session": False},
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
                run.started_at = utcnow()
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
        """Extend our lease from the database's now: (still ours, cancel requested).

        Not ours also when our lease is (nearly) over: a lease that ran out is not revived, since
        another executor may be claiming the run at this moment."""
        async with self._transaction() as session:
            now = _db_now(session)
            row = (
                await session.execute(
                    update(Run)
                    .where(Run.id == run_id, self._fence(now))
                    .values(lease_expires_at=now + self.lease)
                    .returning(Run.cancel_requested_at)
                    .execution_options(synchronize_session=False)
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
        """Record one step change (see `step_events`)."""
        await self.step_events(
            run_id, [StepChange(step, kind, message=message, fraction=fraction, output=output)]
        )

    async def step_events(self, run_id: uuid.UUID, changes: Sequence[StepChange]) -> None:
        """Record STEP_STARTED / STEP_PROGRESS / STEP_SUCCEEDED / STEP_FAILED events, in order,
        in one transaction, and publish them.

        Raises LeaseLost when the run is not ours to write. A transition the step is already in
        is not written again (a retried write whose commit went through but was not heard)."""
        now = utcnow()
        outbox = Outbox()
        progress: list[dict[str, Any]] = []
        async with self._transaction() as session:
            run = await self._owned(session, run_id)
            steps = (
                (
                    await session.execute(
                        select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.position)
                    )
                )
                .scalars()
                .all()
            )
            by_name = {s.name: s for s in steps}
            for change in changes:
                row, kind = by_name[change.step], change.kind
                already = {
                    "STEP_STARTED": StepStatus.RUNNING,
                    "STEP_SUCCEEDED": StepStatus.SUCCEEDED,
                    "STEP_FAILED": StepStatus.FAILED,
                }.get(kind)
                if already is not None and row.status is already:
                    continue
                if kind == "STEP_STARTED":
                    row.status, row.started_at, row.finished_at = StepStatus.RUNNING, now, None
                    row.attempts += 1
                    row.error_message = None
                    run.current_step = change.step
                elif kind == "STEP_SUCCEEDED":
                    row.status, row.finished_at, row.output = (
                        StepStatus.SUCCEEDED,
                        now,
                        change.output,
                    )
                elif kind == "STEP_FAILED":
                    row.status, row.finished_at = StepStatus.FAILED, now
                    row.error_message = change.message[:1000]
                running = change.fraction if kind == "STEP_PROGRESS" else 0.0
                run.percent = min(99, int(100 * (_settled(steps) + running) / max(len(steps), 1)))
                await append_run_event(
                    session, outbox, run, kind, message=change.message, step=change.step
                )
                message = self._progress_message(run, kind)
                if message is not None:
                    progress.append(message)
            topic = workspace_topic(run.workspace_id)
        await outbox.publish(self.bus)
        for message in progress:
            await publish_transient(self.bus, topic, message)

    def _progress_message(self, run: Run, kind: str) -> dict[str, Any] | None:
        """The RUN_PROGRESS message for the workspace's stream, or None when throttled.

        Step starts and ends always go (a few per step); progress within a step goes at most once
        per `progress_interval` per run."""
        now = time.monotonic()
        if kind == "STEP_PROGRESS":
            if now - self._progress_sent.get(run.id, float("-inf")) < self.progress_interval:
                return None
            if len(self._progress_sent) > 10_000:  # bound it: forgetting costs one message
                self._progress_sent.clear()
            self._progress_sent[run.id] = now
        return run_progress_message(run)

    async def finish(
        self,
        run_id: uuid.UUID,
        status: RunStatus,
        *,
        output_summary: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> None:
        """End the run; raises LeaseLost if it is not ours to end (someone else ends it).

        No step is left open in an ended run. Ending SUCCEEDED needs every step's output
        (`outputs`, by step name): a step whose STEP_SUCCEEDED was not recorded is recorded now,
        with its output, before RUN_SUCCEEDED. Ending FAILED or CANCELLED closes a RUNNING step
        as FAILED or CANCELLED, and the steps not reached as CANCELLED."""
        now = utcnow()
        outbox = Outbox()
        async with self._transaction() as session:
            run = await self._owned(session, run_id)
            steps = list(
                (
                    await session.execute(
                        select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.position)
                    )
                )
                .scalars()
                .all()
            )
            open_steps = [s for s in steps if s.status in (StepStatus.PENDING, StepStatus.RUNNING)]
            if status is RunStatus.SUCCEEDED:
                missing = [s.name for s in open_steps if outputs is None or s.name not in outputs]
                if missing:
                    raise ValueError(f"no output for step(s) {missing} of a succeeded run")
                assert outputs is not None
                for step in open_steps:
                    step.status, step.finished_at = StepStatus.SUCCEEDED, now
                    step.output = outputs[step.name]
                    step.attempts = max(step.attempts, 1)
                    run.percent = min(99, int(100 * _settled(steps) / max(len(steps), 1)))
                    await append_run_event(
                        session,
                        outbox,
                        run,
                        "STEP_SUCCEEDED",
                        message=f"{step.name} done",
                        step=step.name,
                    )
                run.percent = 100
            else:
                for step in open_steps:
                    step.finished_at = now
                    if step.status is StepStatus.RUNNING and status is RunStatus.FAILED:
                        step.status = StepStatus.FAILED
                        step.error_message = step.error_message or (error_message or "")[:1000]
                    else:
                        step.status = StepStatus.CANCELLED
            run.status = status
            run.finished_at = now
            run.lease_owner = None
            run.lease_expires_at = None
            run.output_summary = output_summary
            run.error_code = error_code
            run.error_message = error_message[:1000] if error_message else None
            message = {
                RunStatus.SUCCEEDED: output_summary or "done",
                RunStatus.FAILED: error_message or "failed",
                RunStatus.CANCELLED: error_message or "cancelled",
            }[status]
            await append_run_event(session, outbox, run, f"RUN_{status.value}", message=message)
            self._progress_sent.pop(run.id, None)
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

    async def release(self, run_id: uuid.UUID) -> None:
        """Give up our lease now (worker shutdown), so the next sweep resumes the run."""
        async with self._transaction() as session:
            now = _db_now(session)
            await session.execute(
                update(Run)
                .where(Run.id == run_id, self._fence(now))
                .values(lease_expires_at=now)
                .execution_options(synchronize_session=False)
            )

    async def stale(self, *, queued_for_seconds: float) -> list[uuid.UUID]:
        """Runs to hand out again: RUNNING with an expired lease, or QUEUED for too long."""
        async with self.db() as session:
            now = _db_now(session)
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

    async def _owned(self, session: AsyncSession, run_id: uuid.UUID) -> Run:
        """The run, locked, if it passes the fence; LeaseLost otherwise."""
        run = (
            await session.execute(
                select(Run).where(Run.id == run_id, self._fence(_db_now(session))).with_for_update()
            )
        ).scalar_one_or_none()
        if run is None:
            raise LeaseLost(f"run {run_id} is not held by {self.owner}")
        return run
