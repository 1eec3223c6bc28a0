"""Document queries (screen 7). The lists live on Workspace (see resolvers/workspaces/types)."""

from typing import Annotated

import strawberry

from resolvers.core.context import Info
from resolvers.core.relay import find_by_id
from resolvers.documents.types import Collection, Document


@strawberry.type
class DocumentQueries:
    @strawberry.field(description="A document in one of your workspaces; null for any other id.")
    async def document(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Document id.")],
    ) -> Document | None:
        info.context.principal.require_user()
        document = await find_by_id(
            id, "Document", info.context.loaders.document_by_id.load, Document.of
        )
        return None if document is None else document.with_annotations(info)

    @strawberry.field(description="A collection in one of your workspaces; null for any other id.")
    async def collection(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="Collection id.")],
    ) -> Collection | None:
        info.context.principal.require_user()
        return await find_by_id(
            id, "Collection", info.context.loaders.collection_by_id.load, Collection.of
        )
