"""GraphQL types of runs (screen 10), their steps and events, and workspace activity."""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import strawberry
from strawberry import relay

from resolvers.accounts.types import User
from resolvers.core.context import Info
from resolvers.core.execution import NOT_LOADED, prefetched
from resolvers.core.lookahead import PageLoad, load_selected, now_or_later, selected_names
from resolvers.core.relay import (
    PAGE_ARGS_DESCRIPTION,
    After,
    Connection,
    First,
    global_id,
    load_nodes,
)
from services.runs import RunEventsQuery
from services.views import Page, RunEventView, RunsPage, RunStepView, RunView


@strawberry.enum(description="Where a run is in its life.")
class RunStatus(enum.Enum):
    QUEUED = strawberry.enum_value("QUEUED", description="Waiting for an executor.")
    RUNNING = strawberry.enum_value("RUNNING", description="Executing.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Ended well.")
    FAILED = strawberry.enum_value("FAILED", description="Ended with an error; can be retried.")
    CANCELLED = strawberry.enum_value("CANCELLED", description="Stopped by a user.")


@strawberry.enum(description="Where a step of a run is.")
class StepStatus(enum.Enum):
    PENDING = strawberry.enum_value("PENDING", description="Not started.")
    RUNNING = strawberry.enum_value("RUNNING", description="Executing.")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="Done.")
    FAILED = strawberry.enum_value("FAILED", description="Failed; see `error`.")
    CANCELLED = strawberry.enum_value("CANCELLED", description="Not run: the run ended first.")
    REUSED = strawberry.enum_value(
        "REUSED", description="Not run again: a retry reused the result of the failed attempt."
    )


@strawberry.enum(description="What a run event records.")
class RunEventType(enum.Enum):
    RUN_QUEUED = strawberry.enum_value("RUN_QUEUED", description="The run was created.")
    RUN_STARTED = strawberry.enum_value("RUN_STARTED", description="An executor took it.")
    RUN_RESUMED = strawberry.enum_value(
        "RUN_RESUMED", description="Its executor died; another took over after the last step."
    )
    STEP_STARTED = strawberry.enum_value("STEP_STARTED", description="A step began.")
    STEP_PROGRESS = strawberry.enum_value("STEP_PROGRESS", description="Progress within a step.")
    STEP_SUCCEEDED = strawberry.enum_value("STEP_SUCCEEDED", description="A step finished.")
    STEP_FAILED = strawberry.enum_value("STEP_FAILED", description="A step failed.")
    RUN_SUCCEEDED = strawberry.enum_value("RUN_SUCCEEDED", description="Final: succeeded.")
    RUN_FAILED = strawberry.enum_value("RUN_FAILED", description="Final: failed.")
    RUN_CANCELLED = strawberry.enum_value("RUN_CANCELLED", description="Final: cancelled.")


@strawberry.enum(description="What a run or an activity entry is about.")
class SubjectType(enum.Enum):
    WORKSPACE = strawberry.enum_value(
        "WORKSPACE", description="The workspace (model check, rename)."
    )
    DOCUMENT = strawberry.enum_value("DOCUMENT", description="A document.")
    CONVERSATION = strawberry.enum_value("CONVERSATION", description="A conversation.")
    COLLECTION = strawberry.enum_value("COLLECTION", description="A collection (activity only).")
    USER = strawberry.enum_value("USER", description="A member (activity only).")


@strawberry.type(description="What a run works on, or what an activity entry is about.")
class Subject:
    type: SubjectType = strawberry.field(description="Kind of subject.")
    id: strawberry.ID = strawberry.field(
        description="Global id of the subject; it may since have been deleted (`node` is null)."
    )
    label: str = strawberry.field(
        description="Its name at the time: when the run started, or when the event happened."
    )

    @classmethod
    def of(cls, type_name: str, subject_id: uuid.UUID | str, label: str) -> Subject:
        return cls(
            type=SubjectType[type_name],
            id=global_id(type_name.title(), subject_id),
            label=label,
        )


# A plain attribute, worked out when the object is built for a response (to now while running),
# so that GraphQL reads it directly (ADR 0138's amendment).
DURATION_MS = "Milliseconds from start to end (or to now while running)."


def _duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    if start is None:
        return None
    finish = end or datetime.now(start.tzinfo)
    return int((finish - start).total_seconds() * 1000)


@strawberry.type(description="One user-facing stage of a run.")
class RunStep:
    position: int = strawberry.field(description="Order within the run, from 0.")
    name: str = strawberry.field(description="Stage name, e.g. EXTRACTING or CHAT.")
    status: StepStatus = strawberry.field(description="Where the step is.")
    attempts: int = strawberry.field(description="How many times it was started in this run.")
    started_at: datetime | None = strawberry.field(description="When it last started (UTC).")
    finished_at: datetime | None = strawberry.field(description="When it ended (UTC).")
    error: str | None = strawberry.field(description="Why it failed.")
    duration_ms: int | None = strawberry.field(description=DURATION_MS)

    @classmethod
    def of(cls, view: RunStepView) -> RunStep:
        return cls(
            position=view.position,
            name=view.name,
            status=StepStatus[view.status],
            attempts=view.attempts,
            started_at=view.started_at,
            finished_at=view.finished_at,
            error=view.error_message,
            duration_ms=_duration_ms(view.started_at, view.finished_at),
        )


@strawberry.type(description="One entry of a run's event log; `cursor` resumes after it.")
class RunEvent:
    cursor: str = strawberry.field(
        description="Its place in the run's log (1, 2, 3, ...): pass as `after` to runProgress."
    )
    run_id: strawberry.ID = strawberry.field(description="The run.")
    type: RunEventType = strawberry.field(description="What happened.")
    status: RunStatus = strawberry.field(description="The run's status after it.")
    step: str | None = strawberry.field(description="The step it concerns, or the current one.")
    percent: int = strawberry.field(description="The run's progress after it, 0 to 100.")
    message: str = strawberry.field(description="For people.")
    at: datetime = strawberry.field(description="When (UTC).")

    @classmethod
    def of(cls, event: RunEventView | dict[str, Any]) -> RunEvent:
        # A bus message (services.run_log.run_event_dict) or the same fields read from a view.
        e: dict[str, Any] = (
            event
            if isinstance(event, dict)
            else {
                "cursor": event.seq,
                "run_id": str(event.run_id),
                "type": event.type,
                "status": event.status,
                "step": event.step,
                "percent": event.percent,
                "message": event.message,
                "at": event.at,
            }
        )
        at = e["at"] if isinstance(e["at"], datetime) else datetime.fromisoformat(e["at"])
        return cls(
            cursor=str(e["cursor"]),
            run_id=global_id("Run", e["run_id"]),
            type=RunEventType[e["type"]],
            status=RunStatus[e["status"]],
            step=e["step"],
            percent=e["percent"],
            message=e["message"],
            at=at,
        )


@strawberry.type(description="One execution of a workflow: ingesting a document, a model check...")
class Run(relay.Node):
    id: relay.NodeID[str]
    workflow: str = strawberry.field(description="Workflow name, e.g. check_models.")
    status: RunStatus = strawberry.field(description="Where the run is.")
    percent: int = strawberry.field(description="Progress, 0 to 100.")
    current_step: str | None = strawberry.field(description="The step executing or last executed.")
    attempt: int = strawberry.field(description="1, or more for retries of a failed run.")
    subject: Subject = strawberry.field(description="What the run works on.")
    input_summary: str = strawberry.field(description="Short summary of its input.")
    output_summary: str | None = strawberry.field(description="Short summary of its output.")
    error_code: str | None = strawberry.field(description="Stable code of the failure, if any.")
    error_message: str | None = strawberry.field(description="The failure, for people.")
    created_at: datetime = strawberry.field(description="When it was queued (UTC).")
    started_at: datetime | None = strawberry.field(description="When it started (UTC).")
    finished_at: datetime | None = strawberry.field(description="When it ended (UTC).")
    cancel_requested: bool = strawberry.field(description="A user asked it to stop.")
    duration_ms: int | None = strawberry.field(description=DURATION_MS)
    view: strawberry.Private[RunView]
    # What a page's loads already found (load_run_fields), read without the resolvers.
    loaded_triggered_by: strawberry.Private[User | None] = NOT_LOADED
    loaded_retry_of: strawberry.Private[Run | None] = NOT_LOADED
    loaded_steps: strawberry.Private[list[RunStep]] = NOT_LOADED

    @strawberry.field(
        description="Who started it; null if they left the workspace.",
        metadata=prefetched("loaded_triggered_by"),
    )
    async def triggered_by(self, info: Info) -> User | None:
        if self.loaded_triggered_by is not NOT_LOADED:
            return self.loaded_triggered_by
        if self.view.triggered_by_id is None:
            return None
        return User.of_found(await info.context.loaders.user_by_id.load(self.view.triggered_by_id))

    @strawberry.field(
        description="The failed run this one retries.", metadata=prefetched("loaded_retry_of")
    )
    async def retry_of(self, info: Info) -> Run | None:
        if self.loaded_retry_of is not NOT_LOADED:
            return self.loaded_retry_of
        if self.view.retry_of_id is None:
            return None
        return _run(await info.context.loaders.run_by_id.load(self.view.retry_of_id))

    @strawberry.field(description="Its steps in order.", metadata=prefetched("loaded_steps"))
    async def steps(self, info: Info) -> list[RunStep]:
        if self.loaded_steps is not NOT_LOADED:
            return self.loaded_steps
        return _steps(await info.context.loaders.steps_by_run_id.load(self.view.id))

    @strawberry.field(description=f"Its event log, oldest first. {PAGE_ARGS_DESCRIPTION}")
    async def events(
        self,
        info: Info,
        first: First = None,
        after: After = None,
    ) -> Connection[RunEvent]:
        query = RunEventsQuery(run_id=self.view.id, first=first, after=after)
        page = await info.context.loaders.run_events_page.load(query)
        return Connection.from_page(page, RunEvent.of)

    @classmethod
    def of(cls, view: RunView) -> Run:
        return cls(
            id=str(view.id),
            workflow=view.workflow,
            status=RunStatus[view.status],
            percent=view.percent,
            current_step=view.current_step,
            attempt=view.attempt,
            subject=Subject.of(view.subject_type, view.subject_id, view.subject_label),
            input_summary=view.input_summary,
            output_summary=view.output_summary,
            error_code=view.error_code,
            error_message=view.error_message,
            created_at=view.created_at,
            started_at=view.started_at,
            finished_at=view.finished_at,
            cancel_requested=view.cancel_requested_at is not None,
            duration_ms=_duration_ms(view.started_at, view.finished_at),
            view=view,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]  # Node overloads it on `required`
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Run | None]:
        return await load_nodes(info.context.loaders.run_by_id.load_many, list(node_ids), cls.of)


@strawberry.enum(description="What a workspace event records.")
class WorkspaceEventType(enum.Enum):
    RUN_QUEUED = strawberry.enum_value("RUN_QUEUED", description="A run was queued.")
    RUN_STARTED = strawberry.enum_value("RUN_STARTED", description="A run started.")
    RUN_FINISHED = strawberry.enum_value(
        "RUN_FINISHED", description="A run ended (see `run.status`): the shell's toast."
    )
    RUN_PROGRESS = strawberry.enum_value(
        "RUN_PROGRESS",
        description="Live only, never stored: a running run's step started, progressed or "
        "ended (see `runId`, `percent`, `step`); at most a few per run per second. Its `cursor` "
        "is that of the last stored event, and `run` is null.",
    )
    WORKSPACE_RENAMED = strawberry.enum_value(
        "WORKSPACE_RENAMED", description="The workspace was renamed (subject: the workspace)."
    )
    CHAT_MODEL_CHANGED = strawberry.enum_value(
        "CHAT_MODEL_CHANGED",
        description="An admin chose the workspace's chat model, or went back to the "
        "deployment's (subject: the workspace; `message` names both models).",
    )
    MEMBER_INVITED = strawberry.enum_value(
        "MEMBER_INVITED",
        description="Someone was invited (no subject: the address is for admins only).",
    )
    INVITE_REVOKED = strawberry.enum_value(
        "INVITE_REVOKED",
        description="A pending invite was revoked (no subject, as for MEMBER_INVITED).",
    )
    MEMBER_JOINED = strawberry.enum_value(
        "MEMBER_JOINED", description="An invite was accepted (subject and actor: the new member)."
    )
    MEMBER_ROLE_CHANGED = strawberry.enum_value(
        "MEMBER_ROLE_CHANGED", description="A member's role changed (subject: the member)."
    )
    MEMBER_REMOVED = strawberry.enum_value(
        "MEMBER_REMOVED", description="A member was removed (subject: the member)."
    )
    MEMBER_LEFT = strawberry.enum_value(
        "MEMBER_LEFT", description="A member left (subject and actor: the member)."
    )
    COLLECTION_CREATED = strawberry.enum_value(
        "COLLECTION_CREATED", description="A collection was created (subject: it)."
    )
    COLLECTION_UPDATED = strawberry.enum_value(
        "COLLECTION_UPDATED",
        description="A collection was renamed or its description changed (subject: it).",
    )
    COLLECTION_DELETED = strawberry.enum_value(
        "COLLECTION_DELETED", description="A collection was deleted (subject: it, as it was)."
    )
    DOCUMENT_UPDATED = strawberry.enum_value(
        "DOCUMENT_UPDATED",
        description="A person edited a document's title, summary, key points, tags or entities "
        "(subject: the document; the message names the fields).",
    )
    DOCUMENTS_MOVED = strawberry.enum_value(
        "DOCUMENTS_MOVED",
        description="Documents were moved (subject: the collection they went to; the message "
        "says how many).",
    )
    DOCUMENTS_DELETED = strawberry.enum_value(
        "DOCUMENTS_DELETED",
        description="Documents were deleted (subject: the document when one, else none; the "
        "message names up to three).",
    )


@strawberry.type(
    description="An entry of the workspace's activity: who did what to which object, when."
)
class WorkspaceEvent:
    cursor: str = strawberry.field(
        description="Pass as `after` to the subscription that sent it: workspaceEvents (a "
        "position in the workspace, as in Workspace.activity) or myRunEvents (a position in "
        "each of your workspaces)."
    )
    type: WorkspaceEventType = strawberry.field(description="What happened.")
    workspace_id: strawberry.ID = strawberry.field(
        description="The workspace it happened in (for a toast from myRunEvents: which one)."
    )
    message: str = strawberry.field(description="For people.")
    at: datetime = strawberry.field(description="When (UTC).")
    run_status: RunStatus | None = strawberry.field(description="For run events: its status then.")
    run_id: strawberry.ID | None = strawberry.field(
        description="For run events: the run's global id (no lookup, unlike `run`)."
    )
    percent: int | None = strawberry.field(
        description="For RUN_PROGRESS: the run's progress then, 0 to 100; null otherwise."
    )
    step: str | None = strawberry.field(
        description="For RUN_PROGRESS: the run's current step then; null otherwise."
    )
    subject: Subject | None = strawberry.field(
        description="What it is about (for run events, the run's subject), named as it was "
        "then; null for RUN_PROGRESS, MEMBER_INVITED and INVITE_REVOKED, and for "
        "DOCUMENTS_DELETED of more than one document."
    )
    actor_name: str | None = strawberry.field(
        description="Who did it, named as they were then; kept after they leave (null for a "
        "system action)."
    )
    event: strawberry.Private[dict[str, Any]]

    @strawberry.field(
        description="Who did it, as they are now; null once they share no workspace with you "
        "(see `actorName`)."
    )
    def actor(self, info: Info) -> User | None:
        actor_id = _actor_id(self.event)
        if actor_id is None:
            return None
        return now_or_later(info.context.loaders.user_by_id, actor_id, User.of_found)

    @strawberry.field(
        description="The run it is about, as it is now; null for RUN_PROGRESS (a live message "
        "costs no read: use `runId`, `percent` and `step`)."
    )
    def run(self, info: Info) -> Run | None:
        run_id = _run_id(self.event)
        if run_id is None:
            return None
        return now_or_later(info.context.loaders.run_by_id, run_id, _run)

    @classmethod
    def of(cls, event: dict[str, Any]) -> WorkspaceEvent:
        return cls(
            cursor=str(event["cursor"]),
            type=WorkspaceEventType[event["type"]],
            workspace_id=global_id("Workspace", event["workspace_id"]),
            message=event["message"],
            at=datetime.fromisoformat(event["at"]),
            run_status=RunStatus[event["run_status"]] if event["run_status"] else None,
            run_id=global_id("Run", event["run_id"]) if event["run_id"] else None,
            percent=event.get("percent"),
            step=event.get("step"),
            actor_name=event.get("actor_name"),
            subject=(
                Subject.of(event["subject_type"], event["subject_id"], event["subject_label"])
                if event.get("subject_type")
                else None
            ),
            event=event,
        )


def _actor_id(event: dict[str, Any]) -> uuid.UUID | None:
    return uuid.UUID(event["actor_id"]) if event["actor_id"] else None


def _run_id(event: dict[str, Any]) -> uuid.UUID | None:
    """The run a stored event is about; none for a live RUN_PROGRESS message (no read)."""
    if not event["run_id"] or event.get("transient"):
        return None
    return uuid.UUID(event["run_id"])


async def load_event_fields(info: Info, events: Sequence[dict[str, Any]]) -> None:
    """Load the actors and runs of a list of workspace events that the query selects (one
    batch per loader), so that each event's own fields find them loaded. A failed load is left
    to the field that reads it."""
    wanted = selected_names(info)
    loaders = info.context.loaders
    loads: list[Awaitable[Any]] = []
    if "actor" in wanted:
        loads.append(loaders.user_by_id.load_many([a for e in events if (a := _actor_id(e))]))
    if "run" in wanted:
        loads.append(loaders.run_by_id.load_many([r for e in events if (r := _run_id(e))]))
    await asyncio.gather(*loads, return_exceptions=True)


def _run(view: RunView | None) -> Run | None:
    return Run.of(view) if view else None


def _steps(views: list[RunStepView]) -> list[RunStep]:
    return [RunStep.of(s) for s in views]


def selects_steps(info: Info) -> bool:
    """Whether a connection of runs selects their steps: its query then reads them with the
    page (`with_steps`)."""
    return "steps" in selected_names(info, "edges", "node")


async def load_run_fields(info: Info, page: Page[RunView], *path: str) -> Callable[[RunView], Run]:
    """Load who started, what they retry and the steps of a page of runs that the query selects
    at `path` (one batch per loader; steps a RunsPage holds are not read again), and return how
    to build each of those runs with them (read then without their resolvers, ADR 0146). A
    failed load is left to the field's resolver, which reports it."""
    loaders = info.context.loaders
    if isinstance(page, RunsPage):
        loaders.steps_by_run_id.prime_many(page.steps)
    views = [e.node for e in page.edges]
    user_ids = list(dict.fromkeys(v.triggered_by_id for v in views if v.triggered_by_id))
    retry_ids = list(dict.fromkeys(v.retry_of_id for v in views if v.retry_of_id))
    found_users, found_retries, found_steps = await load_selected(
        info,
        path,
        PageLoad("triggeredBy", loaders.user_by_id, user_ids, User.of_found),
        PageLoad("retryOf", loaders.run_by_id, retry_ids, _run),
        PageLoad("steps", loaders.steps_by_run_id, [v.id for v in views], _steps),
    )

    def run(view: RunView) -> Run:
        built = Run.of(view)
        if found_users is not None:
            by = view.triggered_by_id
            built.loaded_triggered_by = None if by is None else found_users[by]
        if found_retries is not None:
            retried = view.retry_of_id
            built.loaded_retry_of = None if retried is None else found_retries[retried]
        if found_steps is not None:
            built.loaded_steps = found_steps[view.id]
        return built

    return run
