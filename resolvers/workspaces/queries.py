"""Workspace queries (screens 2 and 11)."""

from typing import Annotated

import strawberry

from resolvers.core.context import Info
from resolvers.core.relay import PAGE_ARGS_DESCRIPTION, After, Connection, First, find_by_id
from resolvers.workspaces.types import Workspace
from workflows.accounts import LIST_MY_WORKSPACES


@strawberry.type
class WorkspaceQueries:
    @strawberry.field(
        description=f"The signed-in user's workspaces, oldest membership first. "
        f"{PAGE_ARGS_DESCRIPTION}"
    )
    async def workspaces(
        self,
        info: Info,
        first: First = None,
        after: After = None,
    ) -> Connection[Workspace]:
        page = await info.context.run(LIST_MY_WORKSPACES, first=first, after=after)
        return Connection.from_page(page, Workspace.of)

    @strawberry.field(
        description="A workspace you belong to; null for any other id (as for a missing one)."
    )
    async def workspace(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Workspace id.")],
    ) -> Workspace | None:
        info.context.principal.require_user()
        return await find_by_id(
            id, "Workspace", info.context.loaders.workspace_by_id.load, Workspace.of
        )
