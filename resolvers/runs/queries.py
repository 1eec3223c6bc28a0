"""Run queries (screen 10, and the shell's toast cursor). The runs list lives on Workspace (see
resolvers/workspaces/types)."""

from typing import Annotated

import strawberry

from resolvers.core.context import Info
from resolvers.core.relay import find_by_id
from resolvers.runs.types import Run
from workflows.runs import MY_RUN_EVENTS_CURSOR


@strawberry.type
class RunQueries:
    @strawberry.field(description="A run in one of your workspaces; null for any other id.")
    async def run(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="Run id.")]
    ) -> Run | None:
        info.context.principal.require_user()
        return await find_by_id(id, "Run", info.context.loaders.run_by_id.load, Run.of)

    @strawberry.field(
        description="Where your toast stream stands now (a position in each of your "
        "workspaces): pass it as `after` to `myRunEvents`, so that a run of yours that ends "
        "before the subscription starts still comes."
    )
    async def my_run_events_cursor(self, info: Info) -> str:
        cursor: str = await info.context.run(MY_RUN_EVENTS_CURSOR)
        return cursor
