"""Ask queries (screen 9). The conversation list lives on Workspace (resolvers/workspaces)."""

from typing import Annotated

import strawberry

from resolvers.chat.types import Conversation
from resolvers.core.context import Info
from resolvers.core.relay import find_by_id


@strawberry.type
class ChatQueries:
    @strawberry.field(
        description="A conversation of yours; null for any other id (another member's, "
        "another workspace's, or missing)."
    )
    async def conversation(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Conversation id.")],
    ) -> Conversation | None:
        info.context.principal.require_user()
        return await find_by_id(
            id, "Conversation", info.context.loaders.conversation_by_id.load, Conversation.of
        )
