"""Live run progress and workspace activity: replay after the cursor, then follow."""

import uuid
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from resolvers.core.context import Context, Info
from resolvers.core.relay import decode_id
from resolvers.runs.fanout import shared_run_events
from resolvers.runs.types import RunEvent, WorkspaceEvent
from services import live
from workflows.runs import AUTHORIZE_MY_RUN_EVENTS, REQUIRE_MEMBER, REQUIRE_RUN

AFTER = strawberry.argument(
    description="The last cursor you saw; events after it are sent first, then live ones."
)


async def open_run_progress(context: Context, run_id: uuid.UUID) -> None:
    """The check before a run's stream opens, shared (ADR 0040): NotFound unless the caller may
    read the run. A kept replay of the run passes the same check (resolvers/router.py)."""
    await live.open_run_progress(
        context.deps, run_id=run_id, check=lambda: context.run(REQUIRE_RUN, run_id=run_id)
    )


@strawberry.type
class RunSubscriptions:
    @strawberry.subscription(
        description="A run's events: those after `after` (from the start when omitted), then "
        "live ones; ends with the run's final event. Each message holds one or more events in "
        "order: the stored ones together (up to 500 a message), then each live one as it "
        "happens. An id outside your workspaces errors with NOT_FOUND, as a missing run does."
    )
    async def run_progress(
        self,
        info: Info,
        run_id: Annotated[strawberry.ID, strawberry.argument(description="The run.")],
        after: Annotated[str | None, AFTER] = None,
    ) -> AsyncGenerator[list[RunEvent], None]:
        run = decode_id(run_id, "Run", field="runId")
        await open_run_progress(info.context, run)
        async for batch in live.run_progress(info.context.deps, run_id=run, after=after):
            yield shared_run_events(batch)

    @strawberry.subscription(
        description="The workspace's activity (runs queued, started, finished, live run "
        "progress, and who changed which member, collection or document): events after "
        "`after`, then live ones (only live ones when `after` is omitted). Never ends."
    )
    async def workspace_events(
        self,
        info: Info,
        workspace_id: Annotated[strawberry.ID, strawberry.argument(description="The workspace.")],
        after: Annotated[str | None, AFTER] = None,
    ) -> AsyncGenerator[WorkspaceEvent, None]:
        workspace = decode_id(workspace_id, "Workspace", field="workspaceId")
        deps = info.context.deps
        await live.open_workspace_events(
            deps,
            workspace_id=workspace,
            check=lambda: info.context.run(REQUIRE_MEMBER, workspace_id=workspace),
        )
        async for event in live.workspace_events(deps, workspace_id=workspace, after=after):
            yield WorkspaceEvent.of(event)

    @strawberry.subscription(
        description="The shell's toast: the RUN_FINISHED events of the runs you started, in "
        "every workspace you belong to (see `workspaceId`): events after `after`, then live "
        "ones (only live ones when `after` is omitted). Never ends. A run is yours when you "
        "started it: a retry is started by whoever retried it, so an admin's retry of your "
        "failed run toasts the admin, not you. A workspace you leave stops at once; one you "
        "join is followed from then on. The cursor holds a position per workspace (a "
        "workspaceEvents cursor does not fit); anything else is INVALID_CURSOR."
    )
    async def my_run_events(
        self,
        info: Info,
        after: Annotated[str | None, AFTER] = None,
    ) -> AsyncGenerator[WorkspaceEvent, None]:
        await info.context.run(AUTHORIZE_MY_RUN_EVENTS)
        async for event in live.my_run_events(info.context.deps, after=after):
            yield WorkspaceEvent.of(event)
