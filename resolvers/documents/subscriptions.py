"""The upload screen's live rows (screen 6): one subscription for a whole batch of files."""

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from resolvers.core.context import Info
from resolvers.core.relay import decode_id
from resolvers.documents.types import UploadProgress
from services import live
from workflows.documents import REQUIRE_UPLOADS


@strawberry.type
class DocumentSubscriptions:
    @strawberry.subscription(
        description="The stage and percent of each uploaded document: one message per "
        "document with where it is now, then one each time a document moves; ends once every "
        "one is READY or FAILED. Up to 100 documents of one workspace; a missing or foreign id "
        "errors with NOT_FOUND."
    )
    async def upload_progress(
        self,
        info: Info,
        workspace_id: Annotated[strawberry.ID, strawberry.argument(description="The workspace.")],
        document_ids: Annotated[
            list[strawberry.ID],
            strawberry.argument(description="The documents uploadDocuments made."),
        ],
    ) -> AsyncGenerator[UploadProgress, None]:
        workspace = decode_id(workspace_id, "Workspace", field="workspaceId")
        documents = [decode_id(i, "Document", field="documentIds") for i in document_ids]
        await info.context.run(REQUIRE_UPLOADS, workspace_id=workspace, document_ids=documents)
        async for progress in live.upload_progress(
            info.context.deps, workspace_id=workspace, document_ids=documents
        ):
            yield UploadProgress.of(progress)
