"""Inputs of the collection and document fields and mutations."""

import strawberry
from strawberry.file_uploads import Upload

from resolvers.documents.types import DocumentSortField, DocumentStatus, EntityKind, SortDirection


@strawberry.input(description="Filters of the documents list; all given ones apply.")
class DocumentsFilter:
    collection_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only documents in this collection."
    )
    status: DocumentStatus | None = strawberry.field(
        default=None, description="Only documents with this status."
    )
    tag: str | None = strawberry.field(
        default=None,
        description="Only documents with this tag (exact; at most 100 characters, TOO_LONG).",
    )
    owner_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only documents this user uploaded."
    )
    title_contains: str | None = strawberry.field(
        default=None,
        description="Only documents whose title contains this text (case-insensitive for "
        "ASCII letters; % and _ are literal; at most 300 characters, TOO_LONG).",
    )


@strawberry.input(description="Order of the documents list.")
class DocumentsSort:
    field: DocumentSortField = strawberry.field(
        default=DocumentSortField.UPDATED_AT, description="What to sort by."
    )
    direction: SortDirection = strawberry.field(
        default=SortDirection.DESC, description="Which way."
    )


@strawberry.input(description="A new collection.")
class CreateCollectionInput:
    workspace_id: strawberry.ID = strawberry.field(description="The workspace.")
    name: str = strawberry.field(description="Name: 1-200 characters, unique in the workspace.")
    description: str | None = strawberry.field(
        default=None, description="Description: at most 2,000 characters."
    )


@strawberry.input(description="Change a collection; a field left out stays as it is.")
class UpdateCollectionInput:
    id: strawberry.ID = strawberry.field(description="The collection.")
    name: str | None = strawberry.field(
        default=None, description="New name: 1-200 characters, unique in the workspace."
    )
    description: str | None = strawberry.field(
        default=None, description="New description: at most 2,000 characters."
    )


@strawberry.input(description="Delete an empty collection.")
class DeleteCollectionInput:
    id: strawberry.ID = strawberry.field(description="The collection.")


@strawberry.input(description="An entity of a document.")
class EntityInput:
    name: str = strawberry.field(description="Its name: 1-200 characters.")
    kind: EntityKind = strawberry.field(description="What kind of thing it is.")


@strawberry.input(
    description="Edit a document; a field left out stays as it is. Each field whose value "
    "changes is marked as edited by you."
)
class UpdateDocumentInput:
    id: strawberry.ID = strawberry.field(description="The document.")
    title: str | None = strawberry.field(
        default=None, description="New title: 1-300 characters, stored as written."
    )
    summary: str | None = strawberry.field(
        default=None, description="New summary: at most 10,000 characters."
    )
    key_points: list[str] | None = strawberry.field(
        default=None, description="New key points: at most 20, each 1-500 characters."
    )
    tags: list[str] | None = strawberry.field(
        default=None,
        description="New tags: at most 30, each 1-100 characters; repeats are dropped "
        "(ignoring case).",
    )
    entities: list[EntityInput] | None = strawberry.field(
        default=None, description="New entities: at most 50."
    )


@strawberry.input(description="Move documents into a collection of their workspace.")
class MoveDocumentsInput:
    ids: list[strawberry.ID] = strawberry.field(description="The documents: 1 to 100.")
    collection_id: strawberry.ID = strawberry.field(description="The collection to move into.")


@strawberry.input(description="Delete documents with their text, chunks and AI-written fields.")
class DeleteDocumentsInput:
    ids: list[strawberry.ID] = strawberry.field(description="The documents: 1 to 100.")


@strawberry.input(
    description="Files to upload into a collection, sent as a GraphQL multipart request (with "
    "the `GraphQL-Require-Preflight` header)."
)
class UploadDocumentsInput:
    collection_id: strawberry.ID = strawberry.field(description="The collection.")
    files: list[Upload] = strawberry.field(
        description="1 to UPLOAD_MAX_FILES (20) files of at most UPLOAD_MAX_FILE_BYTES (20 MiB) "
        "each: text, Markdown, HTML or PDF, recognised from their bytes."
    )


@strawberry.input(description="Pasted text to add to a collection as a document.")
class CreateTextDocumentInput:
    collection_id: strawberry.ID = strawberry.field(description="The collection.")
    title: str = strawberry.field(description="Title: 1-300 characters, stored as written.")
    text: str = strawberry.field(
        description="The text (plain, Markdown or HTML), stored as written; at most "
        "UPLOAD_MAX_FILE_BYTES bytes in UTF-8 (TOO_LONG). The whole request must also fit in "
        "GRAPHQL_MAX_BODY_BYTES (1,000,000 bytes by default), or it is refused with HTTP 413 "
        "and PAYLOAD_TOO_LARGE: upload longer text as a file."
    )


@strawberry.input(description="Process a document again from its original file.")
class ReprocessDocumentInput:
    id: strawberry.ID = strawberry.field(description="The document.")


@strawberry.input(description="A link to download a document's original.")
class CreateDownloadLinkInput:
    id: strawberry.ID = strawberry.field(description="The document.")


@strawberry.input(description="Process documents again from their original files.")
class ReprocessDocumentsInput:
    ids: list[strawberry.ID] = strawberry.field(description="The documents: 1 to 100.")
