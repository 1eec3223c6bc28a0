"""Payloads of the collection and document mutations."""

from datetime import datetime

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


@strawberry.type(description="The outcome of one uploaded file.")
class UploadedFile:
    index: int = strawberry.field(description="Its position in `files`, from 0.")
    file_name: str | None = strawberry.field(description="Its name as sent.")
    document: Document | None = strawberry.field(
        default=None, description="The document made of it (QUEUED); null when it failed."
    )
    run: Run | None = strawberry.field(
        default=None, description="Its ingest run; follow it with uploadProgress."
    )
    error: UserError | None = strawberry.field(
        default=None,
        description="Why it was refused (nothing of it was kept): INVALID_FILE_NAME, "
        "NOT_A_FILE, FILE_TOO_LARGE, EMPTY_FILE, UNSUPPORTED_TYPE, UNDECODABLE_TEXT, "
        "PDF_BROKEN (cut short, or too damaged to open), PDF_ENCRYPTED (needs a password), "
        "EXTRACTION_TIMEOUT, EXTRACTION_TOO_LARGE, EXTRACTION_FAILED (the isolated parser "
        "could not open it) or DUPLICATE_DOCUMENT; `field` is `files.<index>`. A PDF is opened "
        "before it is stored; a page that does not load still fails its run at EXTRACTING.",
    )
    duplicate_of: Document | None = strawberry.field(
        default=None,
        description="For DUPLICATE_DOCUMENT: the document of the collection with the same content.",
    )


@strawberry.type(description="Result of uploadDocuments.")
class UploadDocumentsPayload:
    files: list[UploadedFile] | None = strawberry.field(
        default=None,
        description="One outcome per file, in the order sent; null when the request as a whole "
        "was refused.",
    )
    errors: list[UserError] = strawberry.field(
        description="Why the request as a whole was refused (and nothing was written): "
        "NOT_FOUND, FORBIDDEN, REQUIRED or TOO_MANY_FILES. A single file's failure is in its "
        "own `error`."
    )


@strawberry.type(description="Result of createTextDocument.")
class CreateTextDocumentPayload:
    document: Document | None = strawberry.field(
        default=None, description="The new document (QUEUED)."
    )
    run: Run | None = strawberry.field(default=None, description="Its ingest run.")
    duplicate_of: Document | None = strawberry.field(
        default=None,
        description="For DUPLICATE_DOCUMENT: the document of the collection with the same text.",
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of reprocessDocument.")
class ReprocessDocumentPayload:
    document: Document | None = strawberry.field(
        default=None, description="The document, QUEUED again."
    )
    run: Run | None = strawberry.field(
        default=None, description="Its new ingestion run (QUEUED): follow it with runProgress."
    )
    errors: list[UserError] = strawberry.field(description=_ERRORS)


@strawberry.type(description="Result of createDownloadLink.")
class CreateDownloadLinkPayload:
    url: str | None = strawberry.field(
        default=None,
        description="The original's download path on this API's origin, with its token: GET it "
        "with no header (a plain link or a navigation works). Always an attachment, in the "
        "stored content type. Treat it as a secret until it expires.",
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="When the link stops working (UTC): ask for a new one then."
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
