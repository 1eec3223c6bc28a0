"""Run queries (screen 10). The runs list lives on Workspace (see resolvers/workspaces/types)."""

from typing import Annotated

import strawberry

from resolvers.core.context import Info
from resolvers.core.relay import find_by_id
from resolvers.runs.types import Run


@strawberry.type
class RunQueries:
    @strawberry.field(description="A run in one of your workspaces; null for any other id.")
    async def run(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="Run id.")]
    ) -> Run | None:
        info.context.principal.require_user()
        return await find_by_id(id, "Run", info.context.loaders.run_by_id.load, Run.of)
