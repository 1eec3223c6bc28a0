"""Documents (screens 3, 5 and 7): the list, the detail, edits marked per field, bulk move and
delete, and the dashboard's counts.

Any member reads; EDITOR or higher edits, moves and deletes. A document of a workspace the
caller does not belong to behaves as a missing one (NOT_FOUND). Uploads are services/uploads.py's
and processing the ingestion run's; this module reads and edits what they wrote, and opens a
document's original for download.
"""

from __future__ import annotations

import enum
import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    String,
    and_,
    bindparam,
    delete,
    func,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from base.auth.tokens import issue_download_token
from base.db.engine import lock_for_write
from base.db.types import LIKE_ESCAPE, case_folded, like_literal, utcnow
from base.errors import DomainError, Invalid, NotFound
from base.models.accounts import Role, User
from base.models.documents import (
    MAX_ENTITY_NAME,
    MAX_TAG,
    MAX_TITLE,
    Chunk,
    Collection,
    Document,
    DocumentEntity,
    DocumentField,
    DocumentFieldEdit,
    DocumentFieldSource,
    DocumentStatus,
    DocumentTag,
    EntityKind,
    FieldSource,
)
from base.models.runs import SubjectType
from services.access import (
    VIEWER_WORKSPACE_IDS,
    in_ids,
    member_workspace_ids,
    require_role,
    seen_by_viewer,
)
from services.blobs import blob_store
from services.collections import (
    COLLECTION_OF_DOCUMENT,
    collection_not_found,
    collection_of_document,
    collection_subject,
    documents_phrase,
)
from services.deps import ServiceDeps
from services.originals import OriginalFile, download_name, media_type_of, release_after
from services.pagination import (
    MAX_PAGE_SIZE,
    PageRequest,
    SortKey,
    pages_by_parent,
    paginate_by_parent,
)
from services.run_log import Subject, append_workspace_event, transaction_with_events
from services.validation import clean_filter_text, clean_name, clean_paragraphs
from services.views import (
    ChunkView,
    CollectionView,
    DeletedDocuments,
    DocumentByIdView,
    DocumentView,
    EntityView,
    FieldEditView,
    FieldSourceView,
    ItemError,
    ListedDocumentView,
    MovedDocuments,
    Page,
    TagCountView,
    UserView,
    view_columns,
    view_of_row,
)

MAX_BULK = 100
MAX_SUMMARY = 10_000
MAX_KEY_POINTS = 20
MAX_KEY_POINT = 500
MAX_TAGS = 30
MAX_ENTITIES = 50


class DocumentSortField(enum.StrEnum):
    UPDATED_AT = "UPDATED_AT"
    CREATED_AT = "CREATED_AT"
    TITLE = "TITLE"


_SORT_COLUMNS = {
    DocumentSortField.UPDATED_AT: Document.updated_at,
    DocumentSortField.CREATED_AT: Document.created_at,
    DocumentSortField.TITLE: Document.title,
}

# One list name per sort and direction: a cursor of one order is refused by another.
DOCUMENT_ORDERS = {
    (field, descending): SortKey(
        f"documents.{field.value.lower()}.{'desc' if descending else 'asc'}",
        [_SORT_COLUMNS[field], Document.id],
        descending=descending,
    )
    for field in DocumentSortField
    for descending in (False, True)
}


def document_not_found(field: str | None = "id") -> NotFound:
    return NotFound("No such document.", field=field)


def _view(document: Any) -> DocumentView:
    """The view of a mapped document (a row of `DOCUMENT_COLUMNS` goes through `view_of_row`)."""
    return DocumentView.model_validate(document)


# What a document's view is made of, read as a row of columns (ADR 0133).
DOCUMENT_COLUMNS = view_columns(DocumentView, Document)


@dataclass(frozen=True)
class DocumentsQuery:
    """One page of a workspace's documents, filtered and sorted (newest update first by
    default). A filter that matches nothing (a foreign collection) gives an empty page."""

    workspace_id: uuid.UUID | None
    collection_id: uuid.UUID | None = None
    status: DocumentStatus | None = None
    tag: str | None = None
    owner_id: uuid.UUID | None = None
    title_contains: str | None = None
    sort: DocumentSortField = DocumentSortField.UPDATED_AT
    descending: bool = True
    first: int | None = None
    after: str | None = None
    # False for a list shown without its total (the dashboard's recent documents): no COUNT.
    counted: bool = True


@functools.lru_cache(maxsize=64)
def _documents_statement(
    collection: bool, status: bool, owner: bool, tag: bool, title: bool, ascii_title: bool
) -> Any:
    """The caller's documents with the given filters (built once per set of filters), taking
    `:viewer` and `:collection_id`, `:status`, `:owner_id`, `:tag`, `:title_like`
    (`ascii_title`: whether that text is ASCII, see `case_folded`)."""
    stmt = select(*DOCUMENT_COLUMNS).where(Document.workspace_id.in_(VIEWER_WORKSPACE_IDS))
    if collection:
        stmt = stmt.where(Document.collection_id == bindparam("collection_id"))
    if status:
        stmt = stmt.where(Document.status == bindparam("status"))
    if owner:
        stmt = stmt.where(Document.owner_id == bindparam("owner_id"))
    if tag:
        tagged = select(DocumentTag.document_id).where(DocumentTag.tag == bindparam("tag"))
        stmt = stmt.where(Document.id.in_(tagged))
    if title:
        folded = case_folded(Document.title, ascii_text=ascii_title)
        stmt = stmt.where(folded.contains(bindparam("title_like"), escape=LIKE_ESCAPE))
    return stmt


def _listing() -> Callable[[Any], ListedDocumentView]:
    """Rows of DOCUMENT_COLUMNS and COLLECTION_OF_DOCUMENT to views, one view per collection
    (a page's documents share a few)."""
    collections: dict[uuid.UUID, CollectionView] = {}

    def listed(row: Any) -> ListedDocumentView:
        collection = collections.get(row.collection_id)
        if collection is None:
            collection = collections[row.collection_id] = collection_of_document(row)
        return ListedDocumentView(document=view_of_row(DocumentView, row), collection=collection)

    return listed


def _with_collections(page: Any) -> Any:
    """A page of documents with their collections' columns (the COUNT goes without them)."""
    return page.join(Collection, Collection.id == Document.collection_id).add_columns(
        *COLLECTION_OF_DOCUMENT
    )


async def list_documents(
    deps: ServiceDeps, *, queries: Sequence[DocumentsQuery]
) -> list[Page[ListedDocumentView] | DomainError]:
    """A page of documents per query, each with its collection: per distinct filters and page,
    one statement for one workspace (its total rides on the page) and two for several (a
    grouped COUNT). The collections come with the page so that a screen naming them needs no
    read of its own (the dashboard's recent documents: a turn of the event loop and a workflow
    execution less)."""
    user_id = deps.principal.require_user()
    listed = _listing()

    async def load(
        query: DocumentsQuery, page: PageRequest, workspace_ids: list[Any]
    ) -> dict[Any, Page[ListedDocumentView]]:
        tag = clean_filter_text(query.tag or "", field="filter.tag", max_length=MAX_TAG)
        title = clean_filter_text(
            query.title_contains or "", field="filter.titleContains", max_length=MAX_TITLE
        ).lower()
        params = {
            "viewer": user_id,
            "collection_id": query.collection_id,
            "status": query.status,
            "owner_id": query.owner_id,
            "tag": tag,
            "title_like": like_literal(title),
        }
        stmt = _documents_statement(
            query.collection_id is not None,
            query.status is not None,
            query.owner_id is not None,
            bool(query.tag),  # a blank tag filters on "" (matches nothing), as typed
            bool(title),
            title.isascii(),
        )
        column = _SORT_COLUMNS[query.sort].key
        return await paginate_by_parent(
            session,
            stmt,
            params=params,
            parent=Document.workspace_id,
            parent_ids=workspace_ids,
            sort=DOCUMENT_ORDERS[(query.sort, query.descending)],
            page=page,
            to_node=listed,
            with_page=_with_collections,
            sort_values=lambda r: (getattr(r, column), r.id),
            count=query.counted,
        )

    async with deps.read() as session:
        return await pages_by_parent(queries, parent="workspace_id", load=load)


# The documents of `:ids` the caller `:viewer` may see.
VIEWER_SEES_DOCUMENT_IDS = and_(
    in_ids(Document.id), Document.workspace_id.in_(VIEWER_WORKSPACE_IDS)
)
_VISIBLE_IDS = select(Document.id).where(VIEWER_SEES_DOCUMENT_IDS)
# The owner under the users' own visibility rule: one the caller shares no workspace with any
# more reads as none, as `users_by_ids` would answer.
_OWNER_COLUMNS = {f"owner_user_{name}": name for name in UserView.model_fields}
_DOCUMENTS_BY_IDS = (
    select(
        *DOCUMENT_COLUMNS,
        *COLLECTION_OF_DOCUMENT,
        *(getattr(User, name).label(key) for key, name in _OWNER_COLUMNS.items()),
    )
    .join(Collection, Collection.id == Document.collection_id)
    .outerjoin(User, (User.id == Document.owner_id) & seen_by_viewer(User.id))
    .where(VIEWER_SEES_DOCUMENT_IDS)
)
_TAGS_BY_DOCUMENT_IDS = (
    select(DocumentTag.document_id, DocumentTag.tag)
    .where(DocumentTag.document_id.in_(_VISIBLE_IDS))
    .order_by(DocumentTag.document_id, DocumentTag.position)
)
# Entities, edit marks, recorded sources and tags in one statement, a row being one of the four
# (its `part`): the detail screen shows them all, and each statement more is a round trip and
# an execution more on every detail (ADR 0137). Entities and tags carry their `position` and
# are put in order in Python. The documents the caller may see are found once for all four.
_ENTITY, _EDIT, _SOURCE, _TAG = "entity", "edit", "source", "tag"
_NO_FIELD = null().cast(DocumentFieldEdit.field.type)
_NO_SOURCE = null().cast(DocumentFieldSource.source.type)
_NO_EDITOR = null().cast(DocumentFieldEdit.edited_by_id.type)
_NO_EDIT_TIME = null().cast(DocumentFieldEdit.edited_at.type)
_NO_NAME = null().cast(DocumentEntity.name.type)
_NO_KIND = null().cast(DocumentEntity.kind.type)
_NO_POSITION = null().cast(DocumentEntity.position.type)
_ANNOTATED = _VISIBLE_IDS.cte("annotated")
_ANNOTATED_IDS = select(_ANNOTATED.c.id)
_ANNOTATIONS_BY_DOCUMENT_IDS = union_all(
    select(
        DocumentEntity.document_id,
        literal(_ENTITY, String).label("part"),
        _NO_FIELD.label("field"),
        _NO_SOURCE.label("source"),
        _NO_EDITOR.label("edited_by_id"),
        _NO_EDIT_TIME.label("edited_at"),
        DocumentEntity.name.label("name"),  # an entity's name, or a tag
        DocumentEntity.kind.label("entity_kind"),
        DocumentEntity.position.label("position"),
    ).where(DocumentEntity.document_id.in_(_ANNOTATED_IDS)),
    select(
        DocumentFieldEdit.document_id,
        literal(_EDIT, String),
        DocumentFieldEdit.field,
        _NO_SOURCE,
        DocumentFieldEdit.edited_by_id,
        DocumentFieldEdit.edited_at,
        _NO_NAME,
        _NO_KIND,
        _NO_POSITION,
    ).where(DocumentFieldEdit.document_id.in_(_ANNOTATED_IDS)),
    select(
        DocumentFieldSource.document_id,
        literal(_SOURCE, String),
        DocumentFieldSource.field,
        DocumentFieldSource.source,
        _NO_EDITOR,
        _NO_EDIT_TIME,
        _NO_NAME,
        _NO_KIND,
        _NO_POSITION,
    ).where(DocumentFieldSource.document_id.in_(_ANNOTATED_IDS)),
    select(
        DocumentTag.document_id,
        literal(_TAG, String),
        _NO_FIELD,
        _NO_SOURCE,
        _NO_EDITOR,
        _NO_EDIT_TIME,
        DocumentTag.tag,
        _NO_KIND,
        DocumentTag.position,
    ).where(DocumentTag.document_id.in_(_ANNOTATED_IDS)),
)


async def documents_by_ids(
    deps: ServiceDeps, *, ids: list[uuid.UUID]
) -> list[DocumentByIdView | None]:
    """The documents the caller may see, each with its collection and its owner (read in the
    same statement: a document's screen names both)."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = await session.execute(_DOCUMENTS_BY_IDS, {"viewer": user_id, "ids": ids})
        found = {
            row.id: DocumentByIdView(
                document=view_of_row(DocumentView, row),
                collection=collection_of_document(row),
                owner=_owner_of(row),
            )
            for row in rows
        }
    return [found.get(i) for i in ids]


def _owner_of(row: Any) -> UserView | None:
    """The owner's columns of a row of `_DOCUMENTS_BY_IDS` (None: no owner the caller sees)."""
    mapping = row._mapping  # a column by key, not by attribute (ADR 0139)
    if mapping["owner_user_id"] is None:
        return None
    return UserView(**{name: mapping[key] for key, name in _OWNER_COLUMNS.items()})


async def tags_by_document_ids(deps: ServiceDeps, *, ids: list[uuid.UUID]) -> list[list[str]]:
    """Each document's tags in order (none for a document the caller may not see)."""
    user_id = deps.principal.require_user()
    async with deps.read() as session:
        rows = await session.execute(_TAGS_BY_DOCUMENT_IDS, {"viewer": user_id, "ids": ids})
        grouped: dict[uuid.UUID, list[str]] = {i: [] for i in ids}
        for document_id, tag in rows:
            grouped[document_id].append(tag)
    return [grouped[i] for i in ids]


@dataclass(frozen=True)
class DocumentAnnotations:
    """What the detail screen shows of a document beside its own columns: its entities, its
    edit marks, who or what wrote each field, and its tags (as `tags_by_document_ids` gives
    them: the detail reads them here, a statement fewer)."""

    entities: list[EntityView]
    edits: list[FieldEditView]  # in the order of DocumentField
    # In the order of DocumentField, the fields that hold a written value: PERSON where edited,
    # else what processing or upload recorded.
    sources: list[FieldSourceView]
    tags: list[str]  # in order


async def annotations_by_document_ids(
    deps: ServiceDeps, *, ids: list[uuid.UUID]
) -> list[DocumentAnnotations]:
    """The entities, the edit marks, the fields' sources and the tags of each document, in one
    statement and one loader run: more loaders cost a Kailash workflow and a dispatch more per
    request."""
    user_id = deps.principal.require_user()
    params = {"viewer": user_id, "ids": ids}
    entities: dict[uuid.UUID, list[tuple[int, EntityView]]] = {i: [] for i in ids}
    tags: dict[uuid.UUID, list[tuple[int, str]]] = {i: [] for i in ids}
    edits: dict[uuid.UUID, dict[DocumentField, FieldEditView]] = {i: {} for i in ids}
    recorded: dict[uuid.UUID, dict[DocumentField, str]] = {i: {} for i in ids}
    async with deps.read() as session:
        rows = (await session.execute(_ANNOTATIONS_BY_DOCUMENT_IDS, params)).all()
    for row in rows:
        if row.part == _ENTITY:
            entity = EntityView(name=row.name, kind=row.entity_kind)
            entities[row.document_id].append((row.position, entity))
        elif row.part == _TAG:
            tags[row.document_id].append((row.position, row.name))
        elif row.part == _EDIT:
            field = DocumentField(row.field)
            edits[row.document_id][field] = FieldEditView(
                field=field, edited_by_id=row.edited_by_id, edited_at=row.edited_at
            )
        else:
            recorded[row.document_id][DocumentField(row.field)] = row.source
    return [
        DocumentAnnotations(
            entities=[entity for _, entity in sorted(entities[i], key=lambda e: e[0])],
            edits=[edits[i][f] for f in DocumentField if f in edits[i]],
            sources=[
                FieldSourceView(field=f, source=FieldSource.PERSON if f in edits[i] else source)
                for f in DocumentField
                if (source := recorded[i].get(f)) is not None or f in edits[i]
            ],
            tags=[tag for _, tag in sorted(tags[i])],
        )
        for i in ids
    ]


@dataclass(frozen=True)
class ChunksQuery:
    """One page of a document's chunks, in order."""

    document_id: uuid.UUID | None
    first: int | None = None
    after: str | None = None


CHUNKS_ORDER = SortKey("chunks", [Chunk.position])
_VIEWER_CHUNKS = select(*view_columns(ChunkView, Chunk)).where(
    Chunk.workspace_id.in_(VIEWER_WORKSPACE_IDS)
)


async def list_chunks(
    deps: ServiceDeps, *, queries: Sequence[ChunksQuery]
) -> list[Page[ChunkView] | DomainError]:
    user_id = deps.principal.require_user()

    async def load(
        _query: ChunksQuery, page: PageRequest, document_ids: list[Any]
    ) -> dict[Any, Page[ChunkView]]:
        return await paginate_by_parent(
            session,
            _VIEWER_CHUNKS,
            params={"viewer": user_id},
            parent=Chunk.document_id,
            parent_ids=document_ids,
            sort=CHUNKS_ORDER,
            page=page,
            to_node=functools.partial(view_of_row, ChunkView),
            sort_values=lambda r: (r.position,),
            few_per_parent=True,
        )

    async with deps.read() as session:
        return await pages_by_parent(queries, parent="document_id", load=load)


@dataclass(frozen=True)
class TagsQuery:
    """The tags of a workspace's documents that start with `starts_with` (ignoring case)."""

    workspace_id: uuid.UUID
    starts_with: str = ""
    first: int = 20


@functools.lru_cache(maxsize=2)
def _tag_counts_statement(ascii_prefix: bool) -> Any:
    folded = case_folded(DocumentTag.tag, ascii_text=ascii_prefix)
    return (
        select(DocumentTag.tag, func.count().label("documents"))
        .join(Document, Document.id == DocumentTag.document_id)
        .where(
            Document.workspace_id == bindparam("workspace_id"),
            Document.workspace_id.in_(VIEWER_WORKSPACE_IDS),
            folded.startswith(bindparam("prefix"), escape=LIKE_ESCAPE),
        )
        .group_by(DocumentTag.tag)
        .order_by(func.count().desc(), DocumentTag.tag)
        .limit(bindparam("first"))
    )


async def tag_counts(deps: ServiceDeps, *, queries: list[TagsQuery]) -> list[list[TagCountView]]:
    """Per query, the workspace's tags that start with its prefix (ignoring case), most used
    first, at most `first` (0-100); none for a workspace the caller does not belong to. A
    document carries a tag once (repeats are dropped when tags are written), so the count is
    of documents."""
    user_id = deps.principal.require_user()
    results: list[list[TagCountView]] = []
    async with deps.read() as session:
        for query in queries:
            if not 0 <= query.first <= MAX_PAGE_SIZE:
                raise Invalid(
                    f"`first` must be between 0 and {MAX_PAGE_SIZE}.",
                    code="BAD_USER_INPUT",
                    field="first",
                )
            prefix = clean_filter_text(
                query.starts_with, field="startsWith", max_length=MAX_TAG
            ).lower()
            params = {
                "viewer": user_id,
                "workspace_id": query.workspace_id,
                "prefix": like_literal(prefix),
                "first": query.first,
            }
            rows = await session.execute(_tag_counts_statement(prefix.isascii()), params)
            results.append([TagCountView(tag=tag, documents=count) for tag, count in rows])
    return results


async def open_original(deps: ServiceDeps, *, document_id: uuid.UUID) -> OriginalFile:
    """The original of a document the caller may read (any member); NOT_FOUND otherwise, the
    same for a document of another workspace as for a missing one."""
    user_id = deps.principal.require_user()
    async with deps.db() as session:
        document = (
            await session.execute(
                select(Document).where(
                    Document.id == document_id,
                    Document.workspace_id.in_(member_workspace_ids(user_id)),
                )
            )
        ).scalar_one_or_none()
    if document is None:
        raise document_not_found()
    chunks = await blob_store(deps.settings.blob_root).open_chunks(document.content_sha256)
    return OriginalFile(
        chunks=chunks,
        media_type=media_type_of(document.content_type),
        filename=download_name(document),
        size_bytes=document.size_bytes,
    )


@dataclass(frozen=True)
class DownloadLink:
    token: str
    expires_at: datetime


async def create_download_link(deps: ServiceDeps, *, document_id: uuid.UUID) -> DownloadLink:
    """A token that lets the caller download the document's original without the Authorization
    header until it expires (DOWNLOAD_LINK_TTL_SECONDS), so that a plain link works. Any member
    may; NOT_FOUND otherwise, as for `open_original`. Following the link checks membership
    again (`open_original` as the token's user), so a member removed since gets NOT_FOUND."""
    user_id = deps.principal.require_user()
    async with deps.db() as session:
        readable = await session.scalar(
            select(Document.id).where(
                Document.id == document_id,
                Document.workspace_id.in_(member_workspace_ids(user_id)),
            )
        )
    if readable is None:
        raise document_not_found()
    token, expires_at = issue_download_token(
        user_id,
        document_id,
        secret=deps.settings.jwt_secret,
        now=utcnow(),
        ttl_seconds=deps.settings.download_link_ttl_seconds,
    )
    return DownloadLink(token=token, expires_at=expires_at)


# --- edits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityInput:
    name: str
    kind: EntityKind


def _clean_list(
    values: Sequence[str], *, field: str, max_items: int, max_length: int, dedupe: bool
) -> list[str]:
    if len(values) > max_items:
        raise Invalid(f"Give at most {max_items} values.", code="TOO_LONG", field=field)
    cleaned: list[str] = []
    for n, value in enumerate(values):
        text = clean_name(value, field=f"{field}.{n}", max_length=max_length)
        if dedupe and text.casefold() in {c.casefold() for c in cleaned}:
            continue
        cleaned.append(text)
    return cleaned


async def _locked_document(
    session: AsyncSession, user_id: uuid.UUID, document_id: uuid.UUID, *, field: str = "id"
) -> Document:
    await lock_for_write(session)
    document = (
        await session.execute(
            select(Document)
            .where(
                Document.id == document_id,
                Document.workspace_id.in_(member_workspace_ids(user_id)),
            )
            .with_for_update()
        )
    ).scalar_one_or_none()
    if document is None:
        raise document_not_found(field)
    await require_role(session, user_id, document.workspace_id, Role.EDITOR)
    return document


async def record_sources(
    session: AsyncSession,
    document_id: uuid.UUID,
    sources: Mapping[DocumentField, FieldSource | None],
) -> None:
    """Record who or what wrote each given field's value (None: nothing did, the row goes).
    Processing and upload call it as they write; edits are marked apart (`_mark_edited`)."""
    await session.execute(
        delete(DocumentFieldSource).where(
            DocumentFieldSource.document_id == document_id,
            DocumentFieldSource.field.in_(list(sources)),
        )
    )
    session.add_all(
        DocumentFieldSource(document_id=document_id, field=field, source=source)
        for field, source in sources.items()
        if source is not None
    )


async def _mark_edited(
    session: AsyncSession, document_id: uuid.UUID, field: DocumentField, user_id: uuid.UUID
) -> None:
    edit = await session.get(DocumentFieldEdit, (document_id, field))
    now = utcnow()
    if edit is None:
        session.add(
            DocumentFieldEdit(
                document_id=document_id, field=field, edited_by_id=user_id, edited_at=now
            )
        )
    else:
        edit.edited_by_id = user_id
        edit.edited_at = now


async def update_document(
    deps: ServiceDeps,
    *,
    document_id: uuid.UUID,
    title: str | None = None,
    summary: str | None = None,
    key_points: list[str] | None = None,
    tags: list[str] | None = None,
    entities: list[EntityInput] | None = None,
) -> DocumentView:
    """Change the given fields (None leaves a field as it is). Each field whose value changes
    is marked as edited by the caller, now; a value sent unchanged marks nothing."""
    user_id = deps.principal.require_user()
    new_title = None if title is None else clean_name(title, field="title", max_length=MAX_TITLE)
    new_summary = (
        clean_paragraphs(summary, field="summary", max_length=MAX_SUMMARY)
        if summary is not None
        else None
    )
    new_points = (
        _clean_list(
            key_points,
            field="keyPoints",
            max_items=MAX_KEY_POINTS,
            max_length=MAX_KEY_POINT,
            dedupe=False,
        )
        if key_points is not None
        else None
    )
    new_tags = (
        _clean_list(tags, field="tags", max_items=MAX_TAGS, max_length=MAX_TAG, dedupe=True)
        if tags is not None
        else None
    )
    new_entities: list[tuple[str, EntityKind]] | None = None
    if entities is not None:
        if len(entities) > MAX_ENTITIES:
            raise Invalid(f"Give at most {MAX_ENTITIES} values.", code="TOO_LONG", field="entities")
        new_entities = [
            (clean_name(e.name, field=f"entities.{n}.name", max_length=MAX_ENTITY_NAME), e.kind)
            for n, e in enumerate(entities)
        ]
    async with transaction_with_events(deps) as (session, outbox):
        document = await _locked_document(session, user_id, document_id)
        changed: list[DocumentField] = []
        if new_title is not None and new_title != document.title:
            document.title = new_title
            changed.append(DocumentField.TITLE)
        if new_summary is not None and new_summary != (document.summary or ""):
            document.summary = new_summary
            changed.append(DocumentField.SUMMARY)
        if new_points is not None and new_points != list(document.key_points or []):
            document.key_points = new_points
            changed.append(DocumentField.KEY_POINTS)
        if new_tags is not None:
            current = (
                await session.execute(
                    select(DocumentTag.tag)
                    .where(DocumentTag.document_id == document.id)
                    .order_by(DocumentTag.position)
                )
            ).scalars()
            if list(current) != new_tags:
                await session.execute(
                    delete(DocumentTag).where(DocumentTag.document_id == document.id)
                )
                session.add_all(
                    DocumentTag(document_id=document.id, position=n, tag=tag)
                    for n, tag in enumerate(new_tags)
                )
                changed.append(DocumentField.TAGS)
        if new_entities is not None:
            rows = (
                await session.execute(
                    select(DocumentEntity)
                    .where(DocumentEntity.document_id == document.id)
                    .order_by(DocumentEntity.position)
                )
            ).scalars()
            if [(e.name, EntityKind(e.kind)) for e in rows] != new_entities:
                await session.execute(
                    delete(DocumentEntity).where(DocumentEntity.document_id == document.id)
                )
                session.add_all(
                    DocumentEntity(document_id=document.id, position=n, name=name, kind=kind)
                    for n, (name, kind) in enumerate(new_entities)
                )
                changed.append(DocumentField.ENTITIES)
        for field in changed:
            await _mark_edited(session, document.id, field, user_id)
        if changed:
            document.updated_at = utcnow()
            await append_workspace_event(
                session,
                outbox,
                document.workspace_id,
                "DOCUMENT_UPDATED",
                message=f"edited the {_field_names(changed)} of {document.title}",
                actor_id=user_id,
                subject=document_subject(document),
            )
        await session.flush()
        return _view(document)


def document_subject(document: Document) -> Subject:
    return Subject(SubjectType.DOCUMENT, document.id, document.title)


def _field_names(fields: Sequence[DocumentField]) -> str:
    names = [f.value.lower().replace("_", " ") for f in fields]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# --- bulk actions --------------------------------------------------------------------------

TITLES_NAMED = 3  # in the activity message of a bulk delete


def _by_workspace(documents: Iterable[Document]) -> dict[uuid.UUID, list[Document]]:
    grouped: dict[uuid.UUID, list[Document]] = {}
    for document in documents:
        grouped.setdefault(document.workspace_id, []).append(document)
    return grouped


def _titles(documents: Sequence[Document]) -> str:
    """`Title`, or `3 documents: A, B, C`, or `5 documents: A, B, C and 2 more`."""
    if len(documents) == 1:
        return documents[0].title
    named = ", ".join(d.title for d in documents[:TITLES_NAMED])
    rest = len(documents) - TITLES_NAMED
    return f"{documents_phrase(len(documents))}: {named}" + (
        f" and {rest} more" if rest > 0 else ""
    )


def check_bulk(ids: Sequence[uuid.UUID | None]) -> None:
    if not ids:
        raise Invalid("Select at least one document.", code="REQUIRED", field="ids")
    if len(ids) > MAX_BULK:
        raise Invalid(
            f"Select at most {MAX_BULK} documents at a time.", code="TOO_LONG", field="ids"
        )


def missing_item(index: int) -> ItemError:
    return ItemError(code="NOT_FOUND", message="No such document.", field=f"ids.{index}")


async def visible_documents_for_update(
    session: AsyncSession, user_id: uuid.UUID, ids: Sequence[uuid.UUID | None]
) -> dict[uuid.UUID, Document]:
    wanted = [i for i in ids if i is not None]
    rows = (
        await session.execute(
            select(Document)
            .where(
                Document.id.in_(wanted),
                Document.workspace_id.in_(member_workspace_ids(user_id)),
            )
            .with_for_update()
        )
    ).scalars()
    return {d.id: d for d in rows}


async def require_editor_everywhere(
    session: AsyncSession, user_id: uuid.UUID, workspace_ids: set[uuid.UUID]
) -> None:
    """Forbidden (and nothing changes) unless the caller may edit in every workspace named."""
    for workspace_id in sorted(workspace_ids):
        await require_role(session, user_id, workspace_id, Role.EDITOR)


async def move_documents(
    deps: ServiceDeps, *, ids: list[uuid.UUID | None], collection_id: uuid.UUID
) -> MovedDocuments:
    """Move every allowed document into the collection (of the same workspace).

    `ids` holds None for an id that did not decode. A missing or foreign id, or one of another
    workspace than the collection's, is reported as NOT_FOUND at its index; content the
    collection already holds as DUPLICATE_DOCUMENT. The others move. A caller below EDITOR is
    refused as a whole (FORBIDDEN) and nothing moves."""
    user_id = deps.principal.require_user()
    check_bulk(ids)
    async with transaction_with_events(deps) as (session, outbox):
        await lock_for_write(session)
        target = (
            await session.execute(
                select(Collection).where(
                    Collection.id == collection_id,
                    Collection.workspace_id.in_(member_workspace_ids(user_id)),
                )
            )
        ).scalar_one_or_none()
        if target is None:
            raise collection_not_found()
        await require_role(session, user_id, target.workspace_id, Role.EDITOR)
        found = await visible_documents_for_update(session, user_id, ids)
        in_target = select(Document.content_sha256, Document.title).where(
            Document.collection_id == target.id
        )
        taken: dict[str, str] = {
            row.content_sha256: row.title for row in await session.execute(in_target)
        }
        errors: list[ItemError] = []
        moved: list[Document] = []
        arrived = 0  # moved from another collection (the others were there already)
        seen: set[uuid.UUID] = set()
        left: set[uuid.UUID] = set()  # the collections documents moved out of
        now = utcnow()
        for index, document_id in enumerate(ids):
            document = found.get(document_id) if document_id is not None else None
            if document is None or document.workspace_id != target.workspace_id:
                errors.append(missing_item(index))
                continue
            if document.id in seen:
                continue
            seen.add(document.id)
            if document.collection_id == target.id:
                moved.append(document)
                continue
            if document.content_sha256 in taken:
                errors.append(
                    ItemError(
                        code="DUPLICATE_DOCUMENT",
                        message=f"The collection already holds this content as "
                        f"“{taken[document.content_sha256]}”.",
                        field=f"ids.{index}",
                    )
                )
                continue
            taken[document.content_sha256] = document.title
            left.add(document.collection_id)
            document.collection_id = target.id
            document.updated_at = now
            moved.append(document)
            arrived += 1
        await session.flush()
        if moved:
            target.updated_at = now
        await _touch_collections(session, left, now)
        if arrived:
            await append_workspace_event(
                session,
                outbox,
                target.workspace_id,
                "DOCUMENTS_MOVED",
                message=f"moved {documents_phrase(arrived)} to {target.name}",
                actor_id=user_id,
                subject=collection_subject(target),
            )
        return MovedDocuments(documents=[_view(d) for d in moved], errors=errors)


async def _touch_collections(
    session: AsyncSession, collection_ids: set[uuid.UUID], now: datetime
) -> None:
    """Mark collections that lost documents as changed now. A collection's last update is the
    later of its own and its newest document's (`services.collections`), so without this it
    would go back in time when its newest document leaves."""
    if collection_ids:
        await session.execute(
            update(Collection).where(Collection.id.in_(collection_ids)).values(updated_at=now)
        )


async def delete_document_rows(session: AsyncSession, documents: Any) -> None:
    """Delete `documents` (ids, or a SELECT of ids) with their chunks (whose vectors and search
    rows go with them), tags, entities, edit marks and field sources. Their originals are the
    caller's to release after commit (`release_after`)."""
    for model in (Chunk, DocumentTag, DocumentEntity, DocumentFieldEdit, DocumentFieldSource):
        await session.execute(delete(model).where(model.document_id.in_(documents)))
    await session.execute(delete(Document).where(Document.id.in_(documents)))


async def delete_documents(deps: ServiceDeps, *, ids: list[uuid.UUID | None]) -> DeletedDocuments:
    """Delete every allowed document with its tags, entities, edit marks and chunks, and then
    each original that no document references any more.

    A missing or foreign id is reported as NOT_FOUND at its index; the others are deleted. A
    caller below EDITOR in a workspace of any of them is refused as a whole (FORBIDDEN) and
    nothing is deleted."""
    user_id = deps.principal.require_user()
    check_bulk(ids)
    async with transaction_with_events(deps) as (session, outbox):
        await lock_for_write(session)
        found = await visible_documents_for_update(session, user_id, ids)
        await require_editor_everywhere(session, user_id, {d.workspace_id for d in found.values()})
        errors = [
            missing_item(index)
            for index, document_id in enumerate(ids)
            if document_id is None or document_id not in found
        ]
        doomed = list(found)
        # In the order of the selection, for the activity's message.
        grouped = _by_workspace(
            found[i] for i in dict.fromkeys(ids) if i is not None and i in found
        )
        if doomed:
            await delete_document_rows(session, doomed)
            await _touch_collections(session, {d.collection_id for d in found.values()}, utcnow())
        for workspace_id, documents in grouped.items():
            await append_workspace_event(
                session,
                outbox,
                workspace_id,
                "DOCUMENTS_DELETED",
                message=f"deleted {_titles(documents)}",
                actor_id=user_id,
                subject=document_subject(documents[0]) if len(documents) == 1 else None,
            )
        deleted = [i for i in dict.fromkeys(ids) if i is not None and i in found]
    # After commit: each original that no document references any more goes too.
    await release_after(deps, (d.content_sha256 for d in found.values()))
    return DeletedDocuments(ids=deleted, errors=errors)
