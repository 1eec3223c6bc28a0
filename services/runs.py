"""Runs as users see them: start (for other services), list, read, cancel and retry.

Who may act (the spec's table): any member reads; ADMIN and OWNER cancel or retry any run; an
EDITOR only the runs they started; a VIEWER none.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from base.db.engine import lock_for_write
from base.db.types import utcnow
from base.errors import Conflict, DomainError, Forbidden, NotFound
from base.events.bus import CONTROL_TOPIC
from base.models.accounts import Role
from base.models.runs import (
    Run,
    RunEvent,
    RunStatus,
    RunStep,
    StepStatus,
    SubjectType,
    WorkspaceEvent,
)
from services.access import VIEWER_WORKSPACE_IDS, in_ids, member_workspace_ids, require_role
from services.deps import ServiceDeps
from services.pagination import PageRequest, SortKey, pages_by_parent, paginate_by_parent
from services.run_log import (
    Outbox,
    append_run_event,
    append_workspace_event,
    workspace_event_dict,
)
from services.validation import refuse_control_characters
from services.views import (
    Page,
    RunEventView,
    RunsPage,
    RunStepView,
    RunView,
    view_columns,
    view_of_row,
)

log = logging.getLogger("knowledge_desk.runs")

ENQUEUE_TIMEOUT_SECONDS = 5.0  # a hung queue must not hold up a mutation that has committed


@dataclass(frozen=True)
class RunKind:
    """A kind of run: its workflow name (stored on the run) and its user-facing steps in order.

    Declared next to the service functions that do the steps; `workflows` pairs each step with
    its node, so the step names live in one place.
    """

    name: str
    steps: tuple[str, ...]
    # The run's output summary from each step's result (by step name).
    summarize: Callable[[dict[str, Any]], str] | None = None


def _not_found() -> NotFound:
    return NotFound("No such run.", field="runId")


async def create_run(
    session: AsyncSession,
    outbox: Outbox,
    *,
    workspace_id: uuid.UUID,
    kind: RunKind,
    subject_type: SubjectType,
    subject_id: uuid.UUID,
    subject_label: str,
    triggered_by_id: uuid.UUID | None,
    params: dict[str, Any] | None = None,
    input_summary: str = "",
    attempt: int = 1,
    retry_of: Run | None = None,
    reused_steps: dict[str, RunStep] | None = None,
) -> Run:
    """Insert a QUEUED run with its steps and first event, inside the caller's transaction.

    The caller commits, then calls `launch` so execution never sees an uncommitted run.
    """
    run = Run(
        workspace_id=workspace_id,
        workflow=kind.name,
        subject_type=subject_type,
        subject_id=subject_id,
        subject_label=subject_label[:300],
        triggered_by_id=triggered_by_id,
        status=RunStatus.QUEUED,
        percent=0,
        attempt=attempt,
        retry_of_id=retry_of.id if retry_of else None,
        params=params or {},
        input_summary=input_summary[:500],
        last_seq=0,
    )
    session.add(run)
    await session.flush()
    reused_steps = reused_steps or {}
    for position, name in enumerate(kind.steps):
        previous = reused_steps.get(name)
        session.add(
            RunStep(
                run_id=run.id,
                position=position,
                name=name,
                status=StepStatus.REUSED if previous else StepStatus.PENDING,
                attempts=0,
                output=previous.output if previous else None,
            )
        )
    note = f"attempt {attempt}, retrying run {retry_of.id}" if retry_of else "queued"
    await append_run_event(session, outbox, run, "RUN_QUEUED", message=note)
    await append_workspace_event(
        session,
        outbox,
        workspace_id,
        "RUN_QUEUED",
        message=f"{kind.name} queued for {subject_label}",
        actor_id=triggered_by_id,
        run=run,
    )
    return run


async def launch(deps: ServiceDeps, outbox: Outbox, run_ids: Sequence[uuid.UUID]) -> None:
    """After commit: publish the new events, then hand the runs to execution.

    The runs exist once their transaction has committed, so nothing here fails the caller: a
    lost publish is read from the log by the streams, and a run whose hand-off failed stays
    QUEUED until a sweeper takes it (`RUN_STALE_QUEUED_SECONDS`)."""
    await outbox.publish(deps.bus)
    if deps.launcher is None:
        raise RuntimeError("no run launcher configured")
    for run_id in run_ids:
        try:
            async with asyncio.timeout(ENQUEUE_TIMEOUT_SECONDS):
                await deps.launcher.enqueue(run_id)
        except Exception:
            log.warning(
                "could not hand run %s to execution; a sweeper will take it", run_id, exc_info=True
            )


@dataclass(frozen=True)
class RunsQuery:
    """One page of a workspace's runs, newest first, filtered by status and workflow."""

    workspace_id: uuid.UUID | None
    statuses: tuple[RunStatus, ...] = ()
    workflow: str | None = None
    first: int | None = None
    after: str | None = None
    with_steps: bool = False  # each run's steps too, in the same call (`RunsPage`)


RUNS_ORDER = SortKey("runs", [Run.created_at, Run.id], descending=True)
# Runs and steps are read as Core rows of their views' columns (ADR 0133).
_RUN_COLUMNS = view_columns(RunView, Run)
_STEP_COLUMNS = (*view_columns(RunStepView, RunStep), RunStep.run_id)


@functools.lru_cache(maxsize=4)
def _runs_statement(statuses: bool, workflow: bool) -> Any:
    """The caller's runs with the given filters (built once per set of filters), taking
    `:viewer`, `:statuses` and `:workflow`."""
    stmt = select(*_RUN_COLUMNS).where(Run.workspace_id.in_(VIEWER_WORKSPACE_IDS))
    if statuses:
        stmt = stmt.where(Run.status.in_(bindparam("statuses", expanding=True)))
    if workflow:
        stmt = stmt.where(Run.workflow == bindparam("workflow"))
    return stmt


async def list_runs(
    deps: ServiceDeps, *, queries: Sequence[RunsQuery]
) -> list[Page[RunView] | DomainError]:
    """A page of runs per query, two statements per distinct filters and page, whatever the
    number of workspaces. A workspace the caller does not belong to has no runs (the
    workspace itself would not have resolved)."""
    user_id = deps.principal.require_user()

    async def load(
        query: RunsQuery, page: PageRequest, workspace_ids: list[Any]
    ) -> dict[Any, Page[RunView]]:
        return await paginate_by_parent(
            session,
            _runs_statement(bool(query.statuses), bool(query.workflow)),
            params={
                "viewer": user_id,
                "statuses": list(query.statuses),
                "workflow": refuse_control_characters(query.workflow or "", field="workflow"),
            },
            parent=Run.workspace_id,
            parent_ids=workspace_ids,
            sort=RUNS_ORDER,
            page=page,
            to_node=functools.partial(view_of_row, RunView),
            sort_values=lambda r: (r.created_at, r.id),
        )

    async with deps.read() as session:
        pages = await pages_by_parent(queries, parent="workspace_id", load=load)
        return await _with_steps(session, user_id, queries, pages)


@dataclass(frozen=True)
class SubjectRunsQuery:
    """One page of the runs that worked on a subject (a document's processing history), newest
    first."""

    subject_id: uuid.UUID | None
    subject_type: SubjectType = SubjectType.DOCUMENT
    first: int | None = None
    after: str | None = None
    with_steps: bool = False  # each run's steps too, in the same call (`RunsPage`)


@dataclass(frozen=True)
class ActivityQuery:
    """A workspace's latest stored events, newest first (the dashboard's feed)."""

    workspace_id: uuid.UUID | None
    first: int | None = None
    after: str | None = None


ACTIVITY_ORDER = SortKey("activity", [WorkspaceEvent.id], descending=True)
_VIEWER_ACTIVITY = select(*WorkspaceEvent.__table__.c).where(
    WorkspaceEvent.workspace_id.in_(VIEWER_WORKSPACE_IDS)
)


async def list_activity(
    deps: ServiceDeps, *, queries: Sequence[ActivityQuery]
) -> list[Page[dict[str, Any]] | DomainError]:
    """Each workspace's latest stored events (as the workspace's stream sends them), newest
    first, in one statement whatever the number of workspaces; no total. Live RUN_PROGRESS
    messages are never stored, so they are not here."""
    user_id = deps.principal.require_user()

    async def load(
        query: ActivityQuery, page: PageRequest, workspace_ids: list[Any]
    ) -> dict[Any, Page[dict[str, Any]]]:
        return await paginate_by_parent(
            session,
            _VIEWER_ACTIVITY,
            params={"viewer": user_id},
            parent=WorkspaceEvent.workspace_id,
            parent_ids=workspace_ids,
            sort=ACTIVITY_ORDER,
            page=page,
            to_node=workspace_event_dict,
            sort_values=lambda r: (r.id,),
            count=False,
        )

    async with deps.read() as session:
        return await pages_by_parent(queries, parent="workspace_id", load=load)


SUBJECT_RUNS_ORDER = SortKey("subject_runs", [Run.created_at, Run.id], descending=True)
_VIEWER_SUBJECT_RUNS = select(*_RUN_COLUMNS).where(
    Run.subject_type == bindparam("subject_type"), Run.workspace_id.in_(VIEWER_WORKSPACE_IDS)
)


async def list_subject_runs(
    deps: ServiceDeps, *, queries: Sequence[SubjectRunsQuery]
) -> list[Page[RunView] | DomainError]:
    """A page of runs per subject, one statement per distinct first page (two for a later
    one) whatever the number of subjects. A subject outside the caller's workspaces has no
    runs."""
    user_id = deps.principal.require_user()

    async def load(
        query: SubjectRunsQuery, page: PageRequest, subject_ids: list[Any]
    ) -> dict[Any, Page[RunView]]:
        return await paginate_by_parent(
            session,
            _VIEWER_SUBJECT_RUNS,
            params={"viewer": user_id, "subject_type": query.subject_type},
            parent=Run.subject_id,
            parent_ids=subject_ids,
            sort=SUBJECT_RUNS_ORDER,
            page=page,
            to_node=functools.partial(view_of_row, RunView),
            sort_values=lambda r: (r.created_at, r.id),
            few_per_parent=True,
        )

    async with deps.read() as session:
        pages = await pages_by_parent(queries, parent="subject_id", load=load)
        return await _with_steps(session, user_id, queries, pages)


async def _with_steps(
    session: AsyncSession,
    user_id: uuid.UUID,
    queries: Sequence[RunsQuery | SubjectRunsQuery],
    pages: list[Page[RunView] | DomainError],
) -> list[Page[RunView] | DomainError]:
    """Each page whose query asked for steps as a RunsPage holding them (one statement for
    all); the others as they are."""
    asked = [
        page if query.with_steps and isinstance(page, Page) else None
        for query, page in zip(queries, pages, strict=True)
    ]
    if not any(asked):
        return pages
    run_ids = list(dict.fromkeys(e.node.id for page in asked if page for e in page.edges))
    steps = await _steps_by_run_id(session, user_id, run_ids) if run_ids else {}
    return [
        page
        if with_steps is None
        else RunsPage(
            edges=with_steps.edges,
            total_count=with_steps.total_count,
            has_next_page=with_steps.has_next_page,
            has_previous_page=with_steps.has_previous_page,
            steps={e.node.id: steps[e.node.id] for e in with_steps.edges},
        )
        for page, with_steps in zip(pages, asked, strict=True)
    ]


_VIEWER_RUNS_BY_IDS = select(*_RUN_COLUMNS).where(
    in_ids(Run.id), Run.workspace_id.in_(VIEWER_WORKSPACE_IDS)
)
_VIEWER_STEPS_BY_RUN_IDS = (
    select(*_STEP_COLUMNS)
    .join(Run, Run.id == RunStep.run_id)
    .where(in_ids(RunStep.run_id), Run.workspace_id.in_(VIEWER_WORKSPACE_IDS))
    .order_by(RunStep.position)
)


async def runs_by_ids(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[RunView | None]:
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = await session.execute(_VIEWER_RUNS_BY_IDS, {"viewer": user_id, "ids": ids})
        found = {r.id: view_of_row(RunView, r) for r in rows}
    return [found.get(i) for i in ids]


async def steps_by_run_ids(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[list[RunStepView]]:
    """Steps of each run, in order; a run outside the caller's workspaces has none."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        grouped = await _steps_by_run_id(session, user_id, ids)
    return [grouped[i] for i in ids]


async def _steps_by_run_id(
    session: AsyncSession, user_id: uuid.UUID, ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[RunStepView]]:
    rows = await session.execute(_VIEWER_STEPS_BY_RUN_IDS, {"viewer": user_id, "ids": ids})
    grouped: dict[uuid.UUID, list[RunStepView]] = {i: [] for i in ids}
    for step in rows:
        grouped[step.run_id].append(view_of_row(RunStepView, step))
    return grouped


@dataclass(frozen=True)
class RunEventsQuery:
    """One page of a run's event log, oldest first."""

    run_id: uuid.UUID | None
    first: int | None = None
    after: str | None = None


RUN_EVENTS_ORDER = SortKey("run_events", [RunEvent.seq])
_VIEWER_RUN_EVENTS = select(RunEvent).where(
    RunEvent.run_id.in_(select(Run.id).where(Run.workspace_id.in_(VIEWER_WORKSPACE_IDS)))
)


async def list_run_events(
    deps: ServiceDeps, *, queries: Sequence[RunEventsQuery]
) -> list[Page[RunEventView] | DomainError]:
    """A page of each run's event log (a connection: page with its edges' cursors), one
    statement per distinct first page (two for a later one) whatever the number of runs. A run
    the caller may not see has no events (the run itself would not have resolved)."""
    user_id = deps.principal.require_user()

    async def load(
        _query: RunEventsQuery, page: PageRequest, run_ids: list[Any]
    ) -> dict[Any, Page[RunEventView]]:
        return await paginate_by_parent(
            session,
            _VIEWER_RUN_EVENTS,
            params={"viewer": user_id},
            parent=RunEvent.run_id,
            parent_ids=run_ids,
            sort=RUN_EVENTS_ORDER,
            page=page,
            to_node=lambda r: RunEventView.model_validate(r[0]),
            sort_values=lambda r: (r[0].seq,),
            few_per_parent=True,
        )

    async with deps.read() as session:
        return await pages_by_parent(queries, parent="run_id", load=load)


async def require_run(deps: ServiceDeps, *, run_id: uuid.UUID) -> RunView:
    """The run if the caller may see it; NotFound otherwise (same as a missing run)."""
    [run] = await runs_by_ids(deps, ids=[run_id])
    if run is None:
        raise _not_found()
    return run


async def require_member(deps: ServiceDeps, *, workspace_id: uuid.UUID) -> None:
    """NotFound unless the caller belongs to the workspace (for the activity stream)."""
    async with deps.read() as session:
        await require_role(session, deps.principal.require_user(), workspace_id, Role.VIEWER)


async def _run_for_action(session: AsyncSession, deps: ServiceDeps, run_id: uuid.UUID) -> Run:
    """Lock the run and check the caller may cancel or retry it."""
    user_id = deps.principal.require_user()
    await lock_for_write(session)
    run = (
        await session.execute(
            select(Run)
            .where(Run.id == run_id, Run.workspace_id.in_(member_workspace_ids(user_id)))
            .with_for_update()
        )
    ).scalar_one_or_none()
    if run is None:
        raise _not_found()
    role = await require_role(session, user_id, run.workspace_id, Role.EDITOR)
    if role is Role.EDITOR and run.triggered_by_id != user_id:
        raise Forbidden("An EDITOR can cancel or retry only the runs they started.")
    return run


async def cancel_run(deps: ServiceDeps, *, run_id: uuid.UUID) -> RunView:
    """A queued run ends CANCELLED now; a running one is asked to stop (its executor ends it)."""
    outbox = Outbox()
    async with deps.db.begin() as session:
        run = await _run_for_action(session, deps, run_id)
        if run.status.is_terminal:
            raise Conflict(f"The run has already ended ({run.status.value}).", code="RUN_FINISHED")
        await request_cancel(session, outbox, run)
        view = RunView.model_validate(run)
    await outbox.publish(deps.bus)
    if view.status == RunStatus.RUNNING.value:
        await signal_cancel(deps, run_id)
    return view


async def request_cancel(session: AsyncSession, outbox: Outbox, run: Run) -> None:
    """Inside the caller's transaction (who may cancel is the caller's rule): a queued run ends
    CANCELLED now; a running one is marked, and `signal_cancel` after commit stops it."""
    run.cancel_requested_at = run.cancel_requested_at or utcnow()
    if run.status is RunStatus.QUEUED:
        await _cancel_queued(session, outbox, run)


async def signal_cancel(deps: ServiceDeps, run_id: uuid.UUID) -> None:
    """After commit: tell the executor of a running run to stop it now (never raises)."""
    try:
        await deps.bus.publish(CONTROL_TOPIC, {"type": "CANCEL", "run_id": str(run_id)})
    except Exception:  # the executor's heartbeat reads the request from the database
        log.warning("could not publish the cancel request of run %s", run_id, exc_info=True)


async def _cancel_queued(session: AsyncSession, outbox: Outbox, run: Run) -> None:
    now = utcnow()
    run.status = RunStatus.CANCELLED
    run.finished_at = now
    run.error_code = "CANCELLED"
    run.error_message = "Cancelled before it started."
    await session.execute(
        update(RunStep)
        .where(RunStep.run_id == run.id, RunStep.status == StepStatus.PENDING)
        .values(status=StepStatus.CANCELLED)
    )
    await append_run_event(session, outbox, run, "RUN_CANCELLED", message=run.error_message)
    await append_workspace_event(
        session,
        outbox,
        run.workspace_id,
        "RUN_FINISHED",
        message=f"{run.workflow} cancelled",
        actor_id=run.triggered_by_id,
        run=run,
    )


async def retry_run(deps: ServiceDeps, *, run_id: uuid.UUID) -> RunView:
    """A new attempt of a FAILED run, linked to it, resuming after its last good step."""
    outbox = Outbox()
    async with deps.db.begin() as session:
        previous = await _run_for_action(session, deps, run_id)
        if previous.status is not RunStatus.FAILED:
            raise Conflict(
                f"Only a FAILED run can be retried; this one is {previous.status.value}.",
                code="RUN_NOT_RETRYABLE",
            )
        # The row lock above serialises retries of one run, so this sees an earlier retry.
        earlier = await session.execute(select(Run.id).where(Run.retry_of_id == previous.id))
        if earlier.first() is not None:
            raise Conflict("This run has been retried already.", code="RUN_NOT_RETRYABLE")
        steps = (
            (
                await session.execute(
                    select(RunStep).where(RunStep.run_id == previous.id).order_by(RunStep.position)
                )
            )
            .scalars()
            .all()
        )
        reusable = {
            s.name: s for s in steps if s.status in (StepStatus.SUCCEEDED, StepStatus.REUSED)
        }
        run = await create_run(
            session,
            outbox,
            workspace_id=previous.workspace_id,
            # The same steps as the failed attempt, so the reused ones line up.
            kind=RunKind(previous.workflow, tuple(s.name for s in steps)),
            subject_type=previous.subject_type,
            subject_id=previous.subject_id,
            subject_label=previous.subject_label,
            triggered_by_id=deps.principal.require_user(),
            params=previous.params,
            input_summary=previous.input_summary,
            attempt=previous.attempt + 1,
            retry_of=previous,
            reused_steps=reusable,
        )
        view = RunView.model_validate(run)
    await launch(deps, outbox, [run.id])
    return view
