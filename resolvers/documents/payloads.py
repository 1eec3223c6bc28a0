"""Payloads of the collection and document mutations."""

import strawberry

from resolvers.core.errors import UserError
from resolvers.documents.types import Collection, Document
from resolvers.runs.types import Run

_ERRORS = "Expected failures, empty on success."
_ITEM_ERRORS = (
    "Expected failures: of the whole action (and then nothing changed), or of single documents, "
    "with `field` naming the position in `ids` (`ids.3`); the other documents were done."
)


@strawberry.type(description="Result of createCollection.")
class CreateCollectionPayload:
    collection: Collection | None = strawberry.field(
        default=None, description="The new collection."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of updateCollection.")
class UpdateCollectionPayload:
    collection: Collection | None = strawberry.field(
        default=None, description="The collection as changed."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of deleteCollection.")
class DeleteCollectionPayload:
    deleted_collection_id: strawberry.ID | None = strawberry.field(
        default=None, description="Id of the deleted collection."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of updateDocument.")
class UpdateDocumentPayload:
    document: Document | None = strawberry.field(
        default=None, description="The document as changed."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of moveDocuments.")
class MoveDocumentsPayload:
    documents: list[Document] | None = strawberry.field(
        default=None, description="The documents now in the collection, in the order given."
    )
    errors: list[UserError] = strawberry.field(description=_ITEM_ERRORS)


@strawberry.type(description="Result of deleteDocuments.")
class DeleteDocumentsPayload:
    deleted_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Ids of the deleted documents, in the order given."
    )
    errors: list[UserError] = strawberry.field(description=_ITEM_ERRORS)


@strawberry.type(description="Result of reprocessDocument.")
class ReprocessDocumentPayload:
    document: Document | None = strawberry.field(
        default=None, description="The document, QUEUED again."
    )
    run: Run | None = strawberry.field(
        default=None, description="Its new ingestion run (QUEUED): follow it with runProgress."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of reprocessDocuments.")
class ReprocessDocumentsPayload:
    documents: list[Document] | None = strawberry.field(
        default=None, description="The documents queued again, in the order given."
    )
    runs: list[Run] | None = strawberry.field(
        default=None, description="Their new ingestion runs, in the same order."
    )
    errors: list[UserError] = strawberry.field(description=_ITEM_ERRORS)
