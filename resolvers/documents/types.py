"""GraphQL types of collections and documents (screens 3, 4, 5 and 7)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from urllib.parse import quote

import strawberry
from strawberry import relay

from resolvers.accounts.types import User
from resolvers.core.context import Info
from resolvers.core.execution import NOT_LOADED, prefetched
from resolvers.core.lookahead import PageLoad, load_selected, now_or_later, selected_names
from resolvers.core.relay import (
    PAGE_ARGS_DESCRIPTION,
    After,
    Connection,
    First,
    global_id,
    load_nodes,
)
from resolvers.runs.types import Run, load_run_fields, selects_steps
from services.documents import ChunksQuery, DocumentAnnotations
from services.extraction import ERROR_CODES as EXTRACTION_ERROR_CODES
from services.runs import SubjectRunsQuery
from services.uploads import FileProgress
from services.views import (
    ChunkView,
    CollectionTotalsView,
    CollectionView,
    DocumentView,
    EntityView,
    FieldEditView,
    FieldSourceView,
    RelatedDocumentView,
    TagCountView,
    WorkspaceCountsView,
)


@strawberry.enum(description="Where a document is in its processing.")
class DocumentStatus(enum.Enum):
    QUEUED = strawberry.enum_value("QUEUED", description="Uploaded, waiting to be processed.")
    PROCESSING = strawberry.enum_value("PROCESSING", description="Being processed; see `stage`.")
    READY = strawberry.enum_value("READY", description="Processed: searchable and askable.")
    FAILED = strawberry.enum_value(
        "FAILED", description="Processing failed; see `errorCode` and `errorMessage`."
    )


@strawberry.enum(description="The processing stage a document is in, in this order.")
class DocumentStage(enum.Enum):
    EXTRACTING = strawberry.enum_value("EXTRACTING", description="Reading the text out.")
    CHUNKING = strawberry.enum_value("CHUNKING", description="Cutting the text into passages.")
    INDEXING = strawberry.enum_value("INDEXING", description="Indexing for full-text search.")
    EMBEDDING = strawberry.enum_value("EMBEDDING", description="Computing passage vectors.")
    SUMMARIZING = strawberry.enum_value("SUMMARIZING", description="Writing the summary.")
    TAGGING = strawberry.enum_value("TAGGING", description="Finding tags and entities.")


@strawberry.enum(description="What kind of thing an entity is.")
class EntityKind(enum.Enum):
    PERSON = strawberry.enum_value("PERSON", description="A person.")
    ORGANIZATION = strawberry.enum_value("ORGANIZATION", description="An organization.")
    PLACE = strawberry.enum_value("PLACE", description="A place.")
    PRODUCT = strawberry.enum_value("PRODUCT", description="A product.")
    OTHER = strawberry.enum_value("OTHER", description="Anything else.")


@strawberry.enum(description="A field of a document that the AI writes and a person may edit.")
class DocumentField(enum.Enum):
    TITLE = strawberry.enum_value("TITLE", description="The title.")
    SUMMARY = strawberry.enum_value("SUMMARY", description="The summary.")
    KEY_POINTS = strawberry.enum_value("KEY_POINTS", description="The key points.")
    TAGS = strawberry.enum_value("TAGS", description="The tags.")
    ENTITIES = strawberry.enum_value("ENTITIES", description="The entities.")


@strawberry.enum(description="Who or what wrote the value a document's field holds.")
class FieldSource(enum.Enum):
    PERSON = strawberry.enum_value(
        "PERSON",
        description="A person: an edit (see `Document.edits` for who and when), or the title "
        "typed with pasted text.",
    )
    MODEL = strawberry.enum_value("MODEL", description="The AI model, while processing.")
    TEXT = strawberry.enum_value(
        "TEXT",
        description="Taken from the document's text because the model's reply was unusable: "
        "its first sentences (summary), its headings (key points), its most frequent words "
        "(tags).",
    )
    FILE = strawberry.enum_value(
        "FILE",
        description="The title from the file: its name, or its HTML title or PDF metadata.",
    )


@strawberry.type(description="Who or what wrote the value a field of a document holds.")
class DocumentFieldSource:
    field: DocumentField = strawberry.field(description="The field.")
    source: FieldSource = strawberry.field(description="Who or what wrote its value.")

    @classmethod
    def of(cls, view: FieldSourceView) -> DocumentFieldSource:
        return cls(field=DocumentField[view.field], source=FieldSource[view.source])


@strawberry.type(description="A named group of documents in a workspace.")
class Collection(relay.Node):
    id: relay.NodeID[str]
    name: str = strawberry.field(description="Name, unique in the workspace.")
    description: str = strawberry.field(description="Description; may be empty.")
    created_at: datetime = strawberry.field(description="When it was created (UTC).")
    view: strawberry.Private[CollectionView]

    async def _totals(self, info: Info) -> CollectionTotalsView:
        totals = await info.context.loaders.collection_totals_by_id.load(self.view.id)
        if totals is None:  # deleted since it was read: it holds nothing
            return CollectionTotalsView(
                id=self.view.id, document_count=0, last_updated_at=self.view.updated_at
            )
        return totals

    @strawberry.field(description="How many documents it holds.")
    async def document_count(self, info: Info) -> int:
        if self.view.document_count is not None:
            return self.view.document_count
        return (await self._totals(info)).document_count

    @strawberry.field(
        description="Last updated (UTC): the latest change to the collection or its documents."
    )
    async def updated_at(self, info: Info) -> datetime:
        if self.view.last_updated_at is not None:
            return self.view.last_updated_at
        return (await self._totals(info)).last_updated_at

    @strawberry.field(description="Who created it; null if they left the workspace.")
    async def created_by(self, info: Info) -> User | None:
        if self.view.created_by_id is None:
            return None
        user = await info.context.loaders.user_by_id.load(self.view.created_by_id)
        return User.of(user) if user else None

    @classmethod
    def of(cls, view: CollectionView) -> Collection:
        return cls(
            id=str(view.id),
            name=view.name,
            description=view.description,
            created_at=view.created_at,
            view=view,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Collection | None]:
        return await load_nodes(
            info.context.loaders.collection_by_id.load_many, list(node_ids), cls.of
        )


@strawberry.type(description="A named thing the document mentions.")
class Entity:
    name: str = strawberry.field(description="Its name as written.")
    kind: EntityKind = strawberry.field(description="What kind of thing it is.")

    @classmethod
    def of(cls, view: EntityView) -> Entity:
        return cls(name=view.name, kind=EntityKind[view.kind])


@strawberry.type(
    description="A field a person edited: its value is theirs, and reprocessing keeps it."
)
class FieldEdit:
    field: DocumentField = strawberry.field(description="The field.")
    edited_at: datetime = strawberry.field(description="When it was last edited (UTC).")
    view: strawberry.Private[FieldEditView]

    @strawberry.field(description="Who edited it last; null if they left the workspace.")
    async def edited_by(self, info: Info) -> User | None:
        if self.view.edited_by_id is None:
            return None
        user = await info.context.loaders.user_by_id.load(self.view.edited_by_id)
        return User.of(user) if user else None

    @classmethod
    def of(cls, view: FieldEditView) -> FieldEdit:
        return cls(field=DocumentField[view.field], edited_at=view.edited_at, view=view)


@strawberry.type(description="A passage of a document's text, in order.")
class Chunk:
    position: int = strawberry.field(description="Its order in the document, from 0.")
    text: str = strawberry.field(description="The passage.")
    heading_path: list[str] = strawberry.field(
        description="The headings it sits under, outermost first."
    )
    char_start: int = strawberry.field(description="Offset of its first character in the text.")
    char_end: int = strawberry.field(description="Offset just after its last character.")
    token_count: int = strawberry.field(description="Its length in tokens.")

    @classmethod
    def of(cls, view: ChunkView) -> Chunk:
        return cls(
            position=view.position,
            text=view.text,
            heading_path=[str(h) for h in view.heading_path],
            char_start=view.char_start,
            char_end=view.char_end,
            token_count=view.token_count,
        )


# A string, not ErrorCode: reading a file has codes of its own, and a run may add more.
FAILURE_CODES = (
    "Stable code of the failure, if FAILED. Reading the file: "
    + ", ".join(sorted(EXTRACTION_ERROR_CODES))
    + ". Otherwise MODEL_UNAVAILABLE (the model did not answer), NOT_FOUND (the original is "
    "missing from the store), CANCELLED or INTERNAL."
)


# The fields served by the annotations loader (`annotations_by_document_ids`).
_ANNOTATION_FIELDS = frozenset({"entities", "edits", "fieldSources"})


def _tags(annotations: DocumentAnnotations) -> list[str]:
    return annotations.tags


@strawberry.type(description="A document in a workspace: its file, text and AI-written fields.")
class Document(relay.Node):
    id: relay.NodeID[str]
    title: str = strawberry.field(description="Title, stored as written.")
    status: DocumentStatus = strawberry.field(description="Where it is in its processing.")
    stage: DocumentStage | None = strawberry.field(
        description="The stage while PROCESSING (or the one that failed); null otherwise."
    )
    error_code: str | None = strawberry.field(description=FAILURE_CODES)
    error_message: str | None = strawberry.field(description="The failure, for people.")
    content_type: str = strawberry.field(description="Media type of the original file.")
    original_filename: str | None = strawberry.field(
        description="Name of the uploaded file; null for pasted text."
    )
    size_bytes: int = strawberry.field(description="Size of the original file in bytes.")
    word_count: int | None = strawberry.field(description="Words in its text, once extracted.")
    language: str | None = strawberry.field(
        description="Detected language (ISO 639-1, e.g. en), once known."
    )
    summary: str | None = strawberry.field(description="Summary, once written.")
    key_points: list[str] = strawberry.field(description="Key points, in order.")
    created_at: datetime = strawberry.field(description="When it was uploaded (UTC).")
    updated_at: datetime = strawberry.field(description="When it last changed (UTC).")
    view: strawberry.Private[DocumentView]
    # What a page's loads already found (load_document_fields), read without the resolvers.
    loaded_collection: strawberry.Private[Collection | None] = NOT_LOADED
    loaded_owner: strawberry.Private[User | None] = NOT_LOADED
    loaded_tags: strawberry.Private[list[str]] = NOT_LOADED
    # Set where the query also selects the document's annotations (`with_annotations`): its tags
    # then come with them, in the same statement.
    tags_with_annotations: strawberry.Private[bool] = False

    @strawberry.field(
        description="The collection it is in.", metadata=prefetched("loaded_collection")
    )
    def collection(self, info: Info) -> Collection | None:
        if self.loaded_collection is not NOT_LOADED:
            return self.loaded_collection
        return now_or_later(
            info.context.loaders.collection_by_id, self.view.collection_id, _collection
        )

    @strawberry.field(
        description="Who uploaded it; null if they left the workspace.",
        metadata=prefetched("loaded_owner"),
    )
    def owner(self, info: Info) -> User | None:
        if self.loaded_owner is not NOT_LOADED:
            return self.loaded_owner
        if self.view.owner_id is None:
            return None
        return now_or_later(info.context.loaders.user_by_id, self.view.owner_id, User.of_found)

    @strawberry.field(
        description="Tags, in order (at most 30).", metadata=prefetched("loaded_tags")
    )
    def tags(self, info: Info) -> list[str]:
        if self.loaded_tags is not NOT_LOADED:
            return self.loaded_tags
        loaders = info.context.loaders
        if self.tags_with_annotations:
            return now_or_later(loaders.annotations_by_document_id, self.view.id, _tags)
        return now_or_later(loaders.tags_by_document_id, self.view.id, list)

    def with_annotations(self, info: Info) -> Document:
        """This document, its tags read with its annotations when the query (`info`, at the
        document's field) selects both: one statement for the detail screen (ADR 0148)."""
        selected = selected_names(info)
        self.tags_with_annotations = "tags" in selected and not _ANNOTATION_FIELDS.isdisjoint(
            selected
        )
        return self

    @strawberry.field(description="Entities it mentions, in order (at most 50).")
    async def entities(self, info: Info) -> list[Entity]:
        annotations = await info.context.loaders.annotations_by_document_id.load(self.view.id)
        return [Entity.of(v) for v in annotations.entities]

    @strawberry.field(
        description="The fields a person edited (who, when), in the order of DocumentField. "
        "Reprocessing keeps them."
    )
    async def edits(self, info: Info) -> list[FieldEdit]:
        annotations = await info.context.loaders.annotations_by_document_id.load(self.view.id)
        return [FieldEdit.of(v) for v in annotations.edits]

    @strawberry.field(
        description="Who or what wrote each field's value, in the order of DocumentField: "
        "label AI-written values by it (MODEL). A field is listed once something wrote it: "
        "the title at upload, the summary and key points after SUMMARIZING, the tags and "
        "entities after TAGGING (entities only when the model's reply was usable)."
    )
    async def field_sources(self, info: Info) -> list[DocumentFieldSource]:
        annotations = await info.context.loaders.annotations_by_document_id.load(self.view.id)
        return [DocumentFieldSource.of(v) for v in annotations.sources]

    @strawberry.field(
        description="Where to download the original file: a path on this API's origin (GET, "
        "with the same `Authorization: Bearer` header as /graphql; for a plain link, use "
        "`createDownloadLink`). The answer is always an attachment, in the stored content type."
    )
    def download_url(self) -> str:
        return download_path(global_id("Document", self.view.id))

    @strawberry.field(description=f"Its text in passages, in order. {PAGE_ARGS_DESCRIPTION}")
    async def chunks(
        self, info: Info, first: First = None, after: After = None
    ) -> Connection[Chunk]:
        query = ChunksQuery(document_id=self.view.id, first=first, after=after)
        page = await info.context.loaders.chunks_page.load(query)
        return Connection.from_page(page, Chunk.of)

    @strawberry.field(
        description="Its processing history: the runs that worked on it (ingestion, "
        "reprocessing, their retries), newest first, each with its steps and durations. "
        + PAGE_ARGS_DESCRIPTION
    )
    async def runs(self, info: Info, first: First = None, after: After = None) -> Connection[Run]:
        query = SubjectRunsQuery(
            subject_id=self.view.id, first=first, after=after, with_steps=selects_steps(info)
        )
        page = await info.context.loaders.subject_runs_page.load(query)
        run = await load_run_fields(info, page, "edges", "node")
        return Connection.from_page(page, run)

    @strawberry.field(
        description="The 5 documents of its workspace most similar to it, most similar first "
        "(the cosine similarity of the mean embeddings of their passages); empty until it "
        "has been embedded."
    )
    async def related_documents(self, info: Info) -> list[RelatedDocument]:
        views = await info.context.loaders.related_by_document_id.load(self.view.id)
        info.context.loaders.prime_collections(v.collection for v in views)
        return [RelatedDocument.of(v) for v in views]

    @classmethod
    def of(cls, view: DocumentView) -> Document:
        return cls(
            id=str(view.id),
            title=view.title,
            status=DocumentStatus[view.status],
            stage=DocumentStage[view.stage] if view.stage else None,
            error_code=view.error_code,
            error_message=view.error_message,
            content_type=view.content_type,
            original_filename=view.original_filename,
            size_bytes=view.size_bytes,
            word_count=view.word_count,
            language=view.language,
            summary=view.summary,
            key_points=list(view.key_points),
            created_at=view.created_at,
            updated_at=view.updated_at,
            view=view,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Document | None]:
        return await load_nodes(
            info.context.loaders.document_by_id.load_many, list(node_ids), cls.of
        )


def _collection(view: CollectionView | None) -> Collection | None:
    return Collection.of(view) if view else None


def download_path(document_global_id: str) -> str:
    """The download route of a document (app/downloads.py), its global id percent-encoded."""
    return f"/documents/{quote(document_global_id, safe='')}/original"


@strawberry.type(
    description="One uploaded file on the upload screen: its stage and percent now. A "
    "subscription sends one for every file first, then one each time a file changes."
)
class UploadProgress:
    document_id: strawberry.ID = strawberry.field(description="The document made of the file.")
    file_name: str = strawberry.field(
        description="The file's name as uploaded (the title for pasted text)."
    )
    status: DocumentStatus = strawberry.field(
        description="QUEUED, PROCESSING, then READY or FAILED (the file's last message)."
    )
    stage: DocumentStage | None = strawberry.field(
        description="The stage it is in (or failed at); null while QUEUED."
    )
    percent: int = strawberry.field(description="How far its processing is, 0-100.")
    run_id: strawberry.ID | None = strawberry.field(description="Its ingest run.")
    error_code: str | None = strawberry.field(description=FAILURE_CODES)
    error_message: str | None = strawberry.field(description="The failure, for people.")
    done: bool = strawberry.field(description="READY or FAILED: nothing more comes for it.")

    @classmethod
    def of(cls, progress: FileProgress) -> UploadProgress:
        return cls(
            document_id=global_id("Document", progress.document_id),
            file_name=progress.file_name,
            status=DocumentStatus[progress.status.value],
            stage=DocumentStage[progress.stage] if progress.stage in STAGES else None,
            percent=progress.percent,
            run_id=(global_id("Run", progress.run_id) if progress.run_id else None),
            error_code=progress.error_code,
            error_message=progress.error_message,
            done=progress.done,
        )


STAGES = frozenset(DocumentStage.__members__)


@strawberry.type(description="A document similar to another, with how similar.")
class RelatedDocument:
    document: Document = strawberry.field(description="The similar document.")
    score: float = strawberry.field(
        description="Cosine similarity of the two documents' mean passage embeddings, up to 1."
    )

    @classmethod
    def of(cls, view: RelatedDocumentView) -> RelatedDocument:
        document = Document.of(view.document)
        if view.collection is not None:  # read with it: no loader needed
            document.loaded_collection = Collection.of(view.collection)
        return cls(document=document, score=view.score)


@strawberry.type(description="A workspace's documents by status.")
class DocumentCounts:
    queued: int = strawberry.field(description="QUEUED documents.")
    processing: int = strawberry.field(description="PROCESSING documents.")
    ready: int = strawberry.field(description="READY documents.")
    failed: int = strawberry.field(description="FAILED documents.")
    total: int = strawberry.field(description="All documents.")

    @classmethod
    def of(cls, view: WorkspaceCountsView) -> DocumentCounts:
        return cls(
            queued=view.queued,
            processing=view.processing,
            ready=view.ready,
            failed=view.failed,
            total=view.total,
        )


@strawberry.type(description="A tag of the workspace's documents, for the tag filters.")
class TagCount:
    tag: str = strawberry.field(description="The tag, as written (filters match it exactly).")
    documents: int = strawberry.field(description="How many of the documents carry it.")

    @classmethod
    def of(cls, view: TagCountView) -> TagCount:
        return cls(tag=view.tag, documents=view.documents)


@strawberry.enum(description="What the documents list is sorted by (the id breaks ties).")
class DocumentSortField(enum.Enum):
    UPDATED_AT = strawberry.enum_value("UPDATED_AT", description="When last changed.")
    CREATED_AT = strawberry.enum_value("CREATED_AT", description="When uploaded.")
    TITLE = strawberry.enum_value("TITLE", description="Title, in the database's text order.")


@strawberry.enum(description="Sort direction.")
class SortDirection(enum.Enum):
    ASC = strawberry.enum_value("ASC", description="Smallest, oldest or A first.")
    DESC = strawberry.enum_value("DESC", description="Largest, newest or Z first.")


async def load_document_fields(
    info: Info, views: Sequence[DocumentView], *path: str
) -> Callable[[DocumentView], Document]:
    """Load the collections, owners and tags of a page of documents that the query selects at
    `path` (one batch per loader), and return how to build each of those documents with them
    (read then without their resolvers). A failed load is left to the field's resolver, which
    reports it."""
    loaders = info.context.loaders
    owner_ids = list(dict.fromkeys(v.owner_id for v in views if v.owner_id is not None))
    found_collections, found_owners, found_tags = await load_selected(
        info,
        path,
        PageLoad(
            "collection", loaders.collection_by_id, [v.collection_id for v in views], _collection
        ),
        PageLoad("owner", loaders.user_by_id, owner_ids, User.of_found),
        PageLoad("tags", loaders.tags_by_document_id, [v.id for v in views], list),
    )

    def document(view: DocumentView) -> Document:
        built = Document.of(view)
        if found_collections is not None:
            built.loaded_collection = found_collections[view.collection_id]
        if found_owners is not None:
            owner_id = view.owner_id
            built.loaded_owner = None if owner_id is None else found_owners[owner_id]
        if found_tags is not None:
            built.loaded_tags = found_tags[view.id]
        return built

    return document
