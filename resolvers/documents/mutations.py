"""Collection mutations (screen 4) and document mutations (screens 5 and 7)."""

from typing import Annotated, Any

import strawberry

from base.errors import DomainError, NotFound
from base.models.documents import EntityKind as DomainEntityKind
from resolvers.core.errors import UserError, as_payload
from resolvers.core.inputs import INPUT
from resolvers.core.relay import decode_id, to_global_id
from resolvers.documents.inputs import (
    CreateCollectionInput,
    DeleteCollectionInput,
    DeleteDocumentsInput,
    MoveDocumentsInput,
    ReprocessDocumentInput,
    ReprocessDocumentsInput,
    UpdateCollectionInput,
    UpdateDocumentInput,
)
from resolvers.documents.payloads import (
    CreateCollectionPayload,
    DeleteCollectionPayload,
    DeleteDocumentsPayload,
    MoveDocumentsPayload,
    ReprocessDocumentPayload,
    ReprocessDocumentsPayload,
    UpdateCollectionPayload,
    UpdateDocumentPayload,
)
from resolvers.documents.types import Collection, Document, Info
from resolvers.runs.types import Run
from services.documents import EntityInput
from services.views import ItemError
from workflows.documents import (
    CREATE_COLLECTION,
    DELETE_COLLECTION,
    DELETE_DOCUMENTS,
    MOVE_DOCUMENTS,
    UPDATE_COLLECTION,
    UPDATE_DOCUMENT,
)
from workflows.ingestion import REPROCESS_DOCUMENT, REPROCESS_DOCUMENTS

_EDITOR = " Needs EDITOR or higher."


def _document_ids(ids: list[strawberry.ID]) -> list[Any]:
    """Each id decoded, or None where it is not a document id (reported as NOT_FOUND)."""
    decoded: list[Any] = []
    for value in ids:
        try:
            decoded.append(decode_id(value, "Document", field="ids"))
        except NotFound:
            decoded.append(None)
    return decoded


def _item_errors(errors: list[ItemError]) -> list[UserError]:
    return [
        UserError.from_domain(DomainError(e.message, code=e.code, field=e.field)) for e in errors
    ]


@strawberry.type
class DocumentMutations:
    @strawberry.mutation(description="Create a collection." + _EDITOR)
    async def create_collection(
        self, info: Info, input: Annotated[CreateCollectionInput, INPUT]
    ) -> CreateCollectionPayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(
                CREATE_COLLECTION,
                workspace_id=decode_id(input.workspace_id, "Workspace", field="workspaceId"),
                name=input.name,
                description=input.description,
            )
            return {"collection": Collection.of(view)}

        return await as_payload(CreateCollectionPayload, work())

    @strawberry.mutation(description="Rename a collection or change its description." + _EDITOR)
    async def update_collection(
        self, info: Info, input: Annotated[UpdateCollectionInput, INPUT]
    ) -> UpdateCollectionPayload:
        async def work() -> dict[str, Any]:
            view = await info.context.run(
                UPDATE_COLLECTION,
                collection_id=decode_id(input.id, "Collection", field="id"),
                name=input.name,
                description=input.description,
            )
            return {"collection": Collection.of(view)}

        return await as_payload(UpdateCollectionPayload, work())

    @strawberry.mutation(
        description="Delete an empty collection; one that holds documents is refused with "
        "COLLECTION_NOT_EMPTY (the message says how many)." + _EDITOR
    )
    async def delete_collection(
        self, info: Info, input: Annotated[DeleteCollectionInput, INPUT]
    ) -> DeleteCollectionPayload:
        async def work() -> dict[str, Any]:
            deleted = await info.context.run(
                DELETE_COLLECTION, collection_id=decode_id(input.id, "Collection", field="id")
            )
            return {
                "deleted_collection_id": strawberry.ID(str(to_global_id("Collection", deleted)))
            }

        return await as_payload(DeleteCollectionPayload, work())

    @strawberry.mutation(
        description="Edit a document's title, summary, key points, tags or entities; each "
        "changed field is marked as edited by you." + _EDITOR
    )
    async def update_document(
        self, info: Info, input: Annotated[UpdateDocumentInput, INPUT]
    ) -> UpdateDocumentPayload:
        async def work() -> dict[str, Any]:
            entities = (
                [
                    EntityInput(name=e.name, kind=DomainEntityKind[e.kind.name])
                    for e in input.entities
                ]
                if input.entities is not None
                else None
            )
            view = await info.context.run(
                UPDATE_DOCUMENT,
                document_id=decode_id(input.id, "Document", field="id"),
                title=input.title,
                summary=input.summary,
                key_points=input.key_points,
                tags=input.tags,
                entities=entities,
            )
            return {"document": Document.of(view)}

        return await as_payload(UpdateDocumentPayload, work())

    @strawberry.mutation(
        description="Move up to 100 documents into a collection of their workspace. Every "
        "allowed document moves; the others are reported in `errors` by position." + _EDITOR
    )
    async def move_documents(
        self, info: Info, input: Annotated[MoveDocumentsInput, INPUT]
    ) -> MoveDocumentsPayload:
        try:
            result = await info.context.run(
                MOVE_DOCUMENTS,
                ids=_document_ids(input.ids),
                collection_id=decode_id(input.collection_id, "Collection", field="collectionId"),
            )
        except DomainError as error:
            return MoveDocumentsPayload(errors=[UserError.from_domain(error)])
        return MoveDocumentsPayload(
            documents=[Document.of(v) for v in result.documents],
            errors=_item_errors(result.errors),
        )

    @strawberry.mutation(
        description="Delete up to 100 documents. Every allowed document is deleted; the others "
        "are reported in `errors` by position." + _EDITOR
    )
    async def delete_documents(
        self, info: Info, input: Annotated[DeleteDocumentsInput, INPUT]
    ) -> DeleteDocumentsPayload:
        try:
            result = await info.context.run(DELETE_DOCUMENTS, ids=_document_ids(input.ids))
        except DomainError as error:
            return DeleteDocumentsPayload(errors=[UserError.from_domain(error)])
        return DeleteDocumentsPayload(
            deleted_ids=[strawberry.ID(str(to_global_id("Document", i))) for i in result.ids],
            errors=_item_errors(result.errors),
        )

    @strawberry.mutation(
        description="Process a document again from its original file: a fresh ingestion run "
        "(returned QUEUED). Fields a person edited keep their values. DOCUMENT_BUSY while it is "
        "queued or being processed." + _EDITOR
    )
    async def reprocess_document(
        self, info: Info, input: Annotated[ReprocessDocumentInput, INPUT]
    ) -> ReprocessDocumentPayload:
        async def work() -> dict[str, Any]:
            result = await info.context.run(
                REPROCESS_DOCUMENT, document_id=decode_id(input.id, "Document", field="id")
            )
            return {"document": Document.of(result.document), "run": Run.of(result.run)}

        return await as_payload(ReprocessDocumentPayload, work())

    @strawberry.mutation(
        description="Process up to 100 documents again, each with its own ingestion run. Every "
        "allowed document is queued; the others are reported in `errors` by position "
        "(NOT_FOUND, DOCUMENT_BUSY)." + _EDITOR
    )
    async def reprocess_documents(
        self, info: Info, input: Annotated[ReprocessDocumentsInput, INPUT]
    ) -> ReprocessDocumentsPayload:
        try:
            result = await info.context.run(REPROCESS_DOCUMENTS, ids=_document_ids(input.ids))
        except DomainError as error:
            return ReprocessDocumentsPayload(errors=[UserError.from_domain(error)])
        return ReprocessDocumentsPayload(
            documents=[Document.of(v) for v in result.documents],
            runs=[Run.of(v) for v in result.runs],
            errors=_item_errors(result.errors),
        )
