"""Collection mutations (screen 4) and document mutations (screens 5 and 7)."""

from typing import Annotated, Any, cast

import strawberry

from base.errors import DomainError, NotFound
from base.models.documents import EntityKind as DomainEntityKind
from resolvers.core.context import Info
from resolvers.core.errors import UserError, as_payload
from resolvers.core.inputs import INPUT
from resolvers.core.relay import decode_id, global_id
from resolvers.documents.inputs import (
    CreateCollectionInput,
    CreateDownloadLinkInput,
    CreateTextDocumentInput,
    DeleteCollectionInput,
    DeleteDocumentsInput,
    MoveDocumentsInput,
    ReprocessDocumentInput,
    ReprocessDocumentsInput,
    UpdateCollectionInput,
    UpdateDocumentInput,
    UploadDocumentsInput,
)
from resolvers.documents.payloads import (
    CreateCollectionPayload,
    CreateDownloadLinkPayload,
    CreateTextDocumentPayload,
    DeleteCollectionPayload,
    DeleteDocumentsPayload,
    MoveDocumentsPayload,
    ReprocessDocumentPayload,
    ReprocessDocumentsPayload,
    UpdateCollectionPayload,
    UpdateDocumentPayload,
    UploadDocumentsPayload,
    UploadedFile,
)
from resolvers.documents.types import Collection, Document, download_path
from resolvers.runs.types import Run
from services.documents import EntityInput
from services.uploads import Duplicate, UploadSource
from services.views import ItemError
from workflows.documents import (
    CREATE_COLLECTION,
    CREATE_DOWNLOAD_LINK,
    CREATE_TEXT_DOCUMENT,
    DELETE_COLLECTION,
    DELETE_DOCUMENTS,
    MOVE_DOCUMENTS,
    UPDATE_COLLECTION,
    UPDATE_DOCUMENT,
    UPLOAD_DOCUMENTS,
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


def _upload_source(value: object) -> UploadSource | None:
    """A file of the multipart request; None for anything else sent in its place (a form
    field, or a JSON value: the Upload scalar takes whatever the variables hold)."""
    if hasattr(value, "read") and hasattr(value, "filename"):
        return cast("UploadSource", value)
    return None


def _item_error(error: ItemError) -> UserError:
    return UserError.from_domain(DomainError(error.message, code=error.code, field=error.field))


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
            return {"deleted_collection_id": global_id("Collection", deleted)}

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
            deleted_ids=[global_id("Document", i) for i in result.ids],
            errors=_item_errors(result.errors),
        )

    @strawberry.mutation(
        description="Upload files into a collection (screen 6), as a GraphQL multipart request "
        "with the `GraphQL-Require-Preflight` header. Each file becomes its own document with "
        "its own ingest run, or is refused alone with its own error; follow them all with "
        "`uploadProgress`." + _EDITOR
    )
    async def upload_documents(
        self, info: Info, input: Annotated[UploadDocumentsInput, INPUT]
    ) -> UploadDocumentsPayload:
        try:
            result = await info.context.run(
                UPLOAD_DOCUMENTS,
                collection_id=decode_id(input.collection_id, "Collection", field="collectionId"),
                files=[_upload_source(f) for f in input.files],
            )
        except DomainError as error:
            return UploadDocumentsPayload(errors=[UserError.from_domain(error)])
        return UploadDocumentsPayload(
            files=[
                UploadedFile(
                    index=f.index,
                    file_name=f.filename,
                    document=Document.of(f.document) if f.document else None,
                    run=Run.of(f.run) if f.run else None,
                    error=_item_error(f.error) if f.error else None,
                    duplicate_of=Document.of(f.duplicate_of) if f.duplicate_of else None,
                )
                for f in result.files
            ],
            errors=[],
        )

    @strawberry.mutation(
        description="Paste text into a collection as a document (screen 6), with its own "
        "ingest run." + _EDITOR
    )
    async def create_text_document(
        self, info: Info, input: Annotated[CreateTextDocumentInput, INPUT]
    ) -> CreateTextDocumentPayload:
        try:
            created = await info.context.run(
                CREATE_TEXT_DOCUMENT,
                collection_id=decode_id(input.collection_id, "Collection", field="collectionId"),
                title=input.title,
                text=input.text,
            )
        except Duplicate as duplicate:
            return CreateTextDocumentPayload(
                duplicate_of=Document.of(duplicate.existing),
                errors=[UserError.from_domain(duplicate)],
            )
        except DomainError as error:
            return CreateTextDocumentPayload(errors=[UserError.from_domain(error)])
        return CreateTextDocumentPayload(
            document=Document.of(created.document), run=Run.of(created.run), errors=[]
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
        description="A short-lived link to download a document's original (screen 7), for a "
        "plain link or a navigation: the download route otherwise needs the Authorization "
        "header. Any member may. The link is the caller's: following it checks their "
        "membership again."
    )
    async def create_download_link(
        self, info: Info, input: Annotated[CreateDownloadLinkInput, INPUT]
    ) -> CreateDownloadLinkPayload:
        async def work() -> dict[str, Any]:
            document_id = decode_id(input.id, "Document", field="id")
            link = await info.context.run(CREATE_DOWNLOAD_LINK, document_id=document_id)
            path = download_path(global_id("Document", document_id))
            return {"url": f"{path}?token={link.token}", "expires_at": link.expires_at}

        return await as_payload(CreateDownloadLinkPayload, work())

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
